/** The table `npm run bench` prints, from the raw results. */
import { DEFAULT_BUNDLE_SIZE } from '../src/config/schema';
import type { CatchupRun } from './catchup';
import { CAPTURE_007_EXPERIMENTS, COST_VARIANTS, NARROW_COPY_EXPERIMENTS, TRIGGER_EXPERIMENTS, type CostPhase } from './cost';
import type { LatencyRun } from './latency';
import type { Results } from './plan';
import { fixed, int, pct, spread, summary, table, type Summary } from './lib/stats';

function verdict(ok: boolean | null): string {
  return ok === null ? 'n/a' : ok ? 'met' : 'MISSED';
}

/** Queue growth, rows/s (older results have only the trend: mean of the last third − the first, 2/3 of the window apart). */
export function queueGrowth(l: LatencyRun): number {
  return Number.isFinite(l.queueSlope) ? l.queueSlope : l.queueTrend / ((2 / 3) * l.windowS);
}

/**
 * A live run kept up: the writers reached 90% of the rate, nothing was lost, and the queue did
 * not grow by more than 1% of the movers arriving (half the rows are door rows).
 */
export function keptUp(l: LatencyRun): boolean {
  return l.missing === 0 && l.achievedRowsPerS >= 0.9 * l.targetRowsPerS && queueGrowth(l) <= 0.01 * (l.achievedRowsPerS / 2);
}

/** rows/s of each phase ÷ the "off" phase of the same round and shape. */
function costRatios(phases: CostPhase[], shape: number, variant: string): Summary {
  return summary(
    phases
      .filter((p) => p.rowsPerTransaction === shape && p.variant === variant)
      .map((p) => p.rowsPerS / (phases.find((o) => o.rowsPerTransaction === shape && o.round === p.round && o.variant === 'off')?.rowsPerS ?? NaN)),
  );
}

/** Writers' backend CPU per row of each phase ÷ the "off" phase of the same round and shape. */
function cpuRatios(phases: CostPhase[], shape: number, variant: string): Summary {
  return summary(
    phases
      .filter((p) => p.rowsPerTransaction === shape && p.variant === variant)
      .map((p) => p.writerCpuUsPerRow / (phases.find((o) => o.rowsPerTransaction === shape && o.round === p.round && o.variant === 'off')?.writerCpuUsPerRow ?? NaN)),
  );
}

function costTable(phases: CostPhase[], shapes: number[], names: string[], probeNames: Set<string>): string {
  const rows: string[][] = [];
  for (const shape of shapes) {
    for (const variant of names) {
      const ps = phases.filter((p) => p.rowsPerTransaction === shape && p.variant === variant);
      if (!ps.length) continue;
      const ratio = costRatios(phases, shape, variant);
      rows.push([
        `${shape}-row`,
        variant,
        spread(summary(ps.map((p) => p.rowsPerS))),
        variant === 'off' ? '1.00' : spread(ratio, (n) => fixed(n, 2)),
        variant === 'off' ? '' : pct(1 - ratio.median),
        fixed(summary(ps.map((p) => p.commitP50Ms)).median, 1),
        fixed(summary(ps.map((p) => p.commitP99Ms)).median, 1),
        fixed(summary(ps.map((p) => p.writerCpuUsPerRow)).median, 0),
        variant === 'off' ? '1.00' : spread(cpuRatios(phases, shape, variant), (n) => fixed(n, 2)),
        probeNames.has(variant) ? int(summary(ps.map((p) => p.deliveredPerS)).median) : '',
        String(ps.length),
      ]);
    }
  }
  return table(['commits', 'variant', 'rows/s', '÷ off (paired)', 'slower by', 'commit p50 ms', 'commit p99 ms', 'PG µs/row', 'PG ÷ off', 'delivered/s', 'rounds'], rows);
}

export function report(r: Results, elapsedS: number, profileDir: string): string {
  const out: string[] = [];
  const targets: string[] = [];
  const m = r.machine;
  out.push(`dcache-transfer-probe benchmark (${r.plan.mode}), ${m.cpus} CPUs, node ${m.node}, PostgreSQL ${m.postgres} (autovacuum ${m.autovacuum}, shared_buffers ${m.sharedBuffers}); git ${m.gitHead}${m.srcChanges ? ` + ${m.srcChanges} uncommitted changes in src/, sql/` : ''}; ${Math.round(elapsedS)} s`);
  out.push('Medians of the runs, (min–max) in brackets. Ratios are against baselines measured in this same run.');
  const loads = summary([...r.catchup, ...r.sweep, ...r.latency, ...r.cost, ...(r.captureCost ?? [])].map((x) => x.loadAvg1));
  if (loads.n) out.push(`Machine load (1-min load average at the end of each measurement; ${m.cpus} CPUs, shared with other work): ${spread(loads, (n) => fixed(n, 1))}`);

  // ---------------------------------------------------------------------------- 1. catch-up
  if (r.catchup.length) {
    out.push('', `1. CATCH-UP: \`dcache-probe poll --once\`, bundle ${DEFAULT_BUNDLE_SIZE}, 2 workers (the defaults), a backlog of captured movers whose door rows are in doorinfo`);
    const rows: string[][] = [];
    const rates: number[] = [];
    const fractions: number[] = [];
    const peaks: number[] = [];
    let allRate = true;
    let allRss = true;
    let maxPeak = 0;
    for (const size of r.plan.sizes) {
      const runs = r.catchup.filter((c) => c.rows === size);
      if (!runs.length) continue;
      const rate = summary(runs.map((c) => c.rowsPerS));
      const floors = r.copyFloor.filter((f) => f.size === size);
      const accepts = r.acceptance.filter((a) => a.afterSize === size && a.afterRun >= 0);
      const ofFloor = summary(runs.map((c, i) => c.rowsPerS / (floors.find((f) => f.afterRun === i)?.rowsPerS ?? NaN)));
      const ofCollector = summary(runs.map((c, i) => c.rowsPerS / (accepts.find((a) => a.afterRun === i)?.recordsPerS ?? NaN)));
      const rss = summary(runs.map((c) => c.peakRssMb));
      rates.push(rate.median);
      fractions.push(ofCollector.median);
      peaks.push(rss.median);
      maxPeak = Math.max(maxPeak, rss.max);
      allRate &&= rate.median >= 20_000;
      allRss &&= rss.max < 200;
      rows.push([
        int(size),
        spread(rate),
        spread(summary(runs.map((c) => c.steadyRowsPerS))),
        spread(summary(runs.map((c) => c.probeCpuPer100k)), (n) => fixed(n, 1)),
        spread(rss, (n) => fixed(n, 0)),
        fixed(summary(runs.map((c) => c.pgBackendCpuPer100k)).median, 1),
        fixed(summary(runs.map((c) => c.collectorCpuPer100k)).median, 1),
        int(summary(floors.map((f) => f.rowsPerS)).median),
        spread(ofFloor, (n) => pct(n)),
        int(summary(accepts.map((a) => a.recordsPerS)).median),
        spread(ofCollector, (n) => pct(n)),
        runs.every((c) => c.left === 0 && c.delivered === c.rows && c.exitCode === 0) ? 'yes' : 'NO',
      ]);
    }
    out.push(table(['backlog', 'rows/s', 'steady rows/s', 'probe CPU s/100k', 'peak RSS MB', 'PG CPU s/100k', 'collector CPU s/100k', 'COPY floor rows/s', 'probe ÷ floor', 'collector records/s', 'probe ÷ collector', 'all delivered'], rows));
    out.push('   rows/s = rows ÷ the probe process\'s lifetime (start-up included); steady = first to last accepted bundle. CPU = user+system of that process');
    out.push('   (GNU time); PG CPU = the probe\'s PostgreSQL backends (sampled, a lower bound). Limits measured after each run and paired with it:');
    out.push('   COPY floor = COPY (queue ⋈ doorinfo) TO STDOUT into /dev/null; collector = a bare client posting the probe\'s own recorded bundles');
    const sameMoment = (c: number) => r.acceptance.filter((a) => a.clients === c && (c === 2 ? a.afterRun === 0 : a.afterRun === -1));
    const byClients = [1, 2, 4].map((c) => `${c}: ${int(summary(sameMoment(c).map((a) => a.recordsPerS)).median)}`);
    out.push(`   (${DEFAULT_BUNDLE_SIZE} records each) over 2 connections. Collector acceptance by connections (measured together after each size's first run), records/s: ${byClients.join(', ')}.`);
    if (r.sink.length) {
      const sink = summary(r.sink.map((c) => c.rowsPerS));
      const ref = summary(r.catchup.filter((c) => c.rows === r.sink[0]!.rows).map((c) => c.rowsPerS));
      out.push(`   diagnosis: the probe → a null sink (answers OK unread; not a collector), ${int(r.sink[0]!.rows)} rows: ${spread(sink)} rows/s = ${fixed(sink.median / ref.median, 2)}× its rate against the collector; probe CPU ${fixed(summary(r.sink.map((c) => c.probeCpuPer100k)).median, 1)} s/100k`);
    }
    if (r.unanalyzed.length) {
      const u = r.unanalyzed[0]!;
      const ref = summary(r.catchup.filter((c) => c.rows === u.rows).map((c) => c.pgBackendCpuPer100k));
      out.push(`   diagnosis: doorinfo without planner statistics (before ANALYZE), ${int(u.rows)} rows: ${int(u.rowsPerS)} rows/s, PG CPU ${fixed(u.pgBackendCpuPer100k, 1)} s/100k (${fixed(u.pgBackendCpuPer100k / ref.median, 1)}× analyzed)`);
    }
    const last = rates.length - 1;
    const flat = last > 0 ? rates[last]! / rates[0]! : NaN;
    const flatPaired = last > 0 ? fractions[last]! / fractions[0]! : NaN;
    out.push(`   largest ÷ smallest backlog: rows/s ${fixed(flat, 2)}; probe ÷ collector (paired, cancels the machine's load) ${fixed(flatPaired, 2)}; peak RSS ${fixed(peaks[last]! / peaks[0]!, 2)}`);
    targets.push(`catch-up ≥ 20,000 rows/s: ${verdict(allRate)} (median ${rates.map(int).join(' / ')} rows/s)`);
    // Strict: every run under the target, not only the medians.
    targets.push(`catch-up peak RSS < 200 MB in every run: ${verdict(allRss)} (medians ${peaks.map((p) => fixed(p, 0)).join(' / ')} MB, highest run ${fixed(maxPeak, 0)} MB)`);
    targets.push(`catch-up flat as the backlog grows (largest ÷ smallest backlog ≥ 0.9, rows/s and paired fraction of the collector): ${verdict(Number.isFinite(flat) ? flat >= 0.9 && flatPaired >= 0.9 : null)} (${fixed(flat, 2)}, ${fixed(flatPaired, 2)}); peak RSS ${peaks.map((p) => fixed(p, 0)).join(' / ')} MB`);
  }

  // ---------------------------------------------------------------------------- sweep
  if (r.sweep.length) {
    const paired = r.sweep.some((s) => s.seq !== undefined);
    out.push('', `   BUNDLE SIZE × WORKERS, ${int(r.plan.sweepSize)}-row backlog; every other run is the default, and each run is compared with the default runs`);
    out.push('   just before and after it (paired: cancels the machine\'s changing load)');
    const isDefault = (s: CatchupRun) => s.bundleSize === DEFAULT_BUNDLE_SIZE && s.workers === 2;
    const ordered = [...r.sweep].sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
    const neighbours = (i: number): CatchupRun[] => {
      const before = ordered.slice(0, i).reverse().find(isDefault);
      const after = ordered.slice(i + 1).find(isDefault);
      return [before, after].filter((x): x is CatchupRun => x !== undefined);
    };
    const ratioTo = (i: number, f: (c: CatchupRun) => number) => {
      const n = neighbours(i);
      return n.length ? f(ordered[i]!) / (n.reduce((a, c) => a + f(c), 0) / n.length) : NaN;
    };
    const keys = [...new Set(ordered.map((s) => `${s.bundleSize}x${s.workers}`))];
    const rows = keys
      .map((k) => {
        const idx = ordered.map((s, i) => ({ s, i })).filter(({ s }) => `${s.bundleSize}x${s.workers}` === k);
        const runs = idx.map(({ s }) => s);
        const def = isDefault(runs[0]!);
        return {
          b: runs[0]!.bundleSize,
          w: runs[0]!.workers,
          def,
          rate: summary(runs.map((s) => s.rowsPerS)),
          rel: def ? summary([1]) : summary(idx.map(({ i }) => ratioTo(i, (c) => c.rowsPerS))),
          cpuRel: def ? summary([1]) : summary(idx.map(({ i }) => ratioTo(i, (c) => c.probeCpuPer100k))),
          cpu: summary(runs.map((s) => s.probeCpuPer100k)),
          rss: summary(runs.map((s) => s.peakRssMb)),
        };
      })
      .sort((a, b) => a.w - b.w || a.b - b.b);
    const best = rows.reduce((a, b) => (b.rel.median > a.rel.median ? b : a));
    out.push(
      table(
        ['bundle × workers', 'rows/s', paired ? 'rows/s ÷ default (paired)' : 'rows/s ÷ default', 'probe CPU s/100k', 'CPU ÷ default', 'peak RSS MB', 'runs'],
        rows.map((x) => [`${x.b} × ${x.w}${x.def ? ' (default)' : ''}${x === best ? ' (best)' : ''}`, spread(x.rate), x.def ? '1.00' : spread(x.rel, (n) => fixed(n, 2)), fixed(x.cpu.median, 1), x.def ? '1.00' : fixed(x.cpuRel.median, 2), fixed(x.rss.median, 0), String(x.rate.n)]),
      ),
    );
    const def = rows.find((x) => x.def);
    if (def) {
      const ok = best === def || best.rel.median <= 1.05 || best.rel.min <= 1;
      targets.push(`default ${DEFAULT_BUNDLE_SIZE} × 2 is the measured best (no combination faster by more than 5% in the paired median, or within its spread): ${verdict(ok)} (best ${best.b} × ${best.w}: ${fixed(best.rel.median, 2)}× the default)`);
    }
  }

  // ---------------------------------------------------------------------------- 2. latency
  if (r.latency.length) {
    out.push('', '2. LIVE LATENCY: 10 simulated dCache writers (1–200-row transactions, door rows before and after their movers), `dcache-probe run` with');
    out.push('   its defaults; latency = the collector\'s receivedAt of a record − the writer\'s COMMIT returning, for every mover committed in the window');
    const rows: string[][] = [];
    for (const label of [...new Set(r.latency.map((l) => l.probe))].filter((l) => l !== 'profiled')) {
      for (const rate of r.plan.latencyRates) {
        const runs = r.latency.filter((l) => l.targetRowsPerS === rate && l.probe === label);
        if (!runs.length) continue;
        rows.push([
          `${int(rate)}${label === 'shipped' ? '' : ` ${label}`}`,
          spread(summary(runs.map((l) => l.achievedRowsPerS))),
          spread(summary(runs.map((l) => l.p50Ms))),
          spread(summary(runs.map((l) => l.p99Ms))),
          spread(summary(runs.map((l) => l.maxMs))),
          runs.every((l) => l.over1s !== undefined) ? String(runs.reduce((n, l) => n + l.over1s, 0)) : 'n/a',
          int(summary(runs.map((l) => l.queueMax)).median),
          spread(summary(runs.map(queueGrowth))),
          int(summary(runs.map((l) => l.deliveredPerS)).median),
          fixed(summary(runs.map((l) => l.probeCpuPerS)).median, 2),
          fixed(summary(runs.map((l) => l.probePeakRssMb)).median, 0),
          String(runs.reduce((n, l) => n + l.missing, 0)),
          `${runs.filter(keptUp).length}/${runs.length}`,
        ]);
        if (label !== 'shipped') continue;
        const p99 = summary(runs.map((l) => l.p99Ms));
        if (rate === 1000) targets.push(`live p99 < 500 ms at 1,000 rows/s: ${verdict(p99.median < 500)} (p99 ${spread(p99)} ms)`);
        if (rate === 5000) targets.push(`live: keeps up at 5,000 rows/s: ${verdict(runs.every(keptUp))} (${runs.filter(keptUp).length} of ${runs.length} runs; p99 ${spread(p99)} ms)`);
        const slow = runs.reduce((n, l) => n + (l.over1s ?? 0), 0);
        if (slow > 0 && rate === 1000) targets.push(`  (at 1,000 rows/s ${slow} transfers took over 1 s, the slowest ${int(Math.max(...runs.map((l) => l.maxMs)))} ms: see "lost wake-up" in docs/PERFORMANCE.md)`);
      }
    }
    out.push(table(['rows/s asked', 'achieved', 'p50 ms', 'p99 ms', 'max ms', '> 1 s', 'queue max', 'queue growth rows/s', 'records/s', 'probe CPU cores', 'probe RSS MB', 'missing', 'kept up'], rows));
    const l0 = r.latency[0]!;
    out.push(`   ${l0.windowS} s windows, rows = billinginfo + doorinfo rows (a transfer is two). Queue growth = slope of the queue depth over the window;`);
    out.push(`   kept up = writers reached 90% of the rate, nothing missing, and the queue grew by at most 1% of the movers arriving.`);
    out.push(`   Writers' event-loop delay p99 ${fixed(summary(r.latency.map((l) => l.loopDelayP99Ms)).median, 1)} ms (bounds the error of the commit stamps).`);
  }

  // ---------------------------------------------------------------------------- 3. cost
  if (r.cost.length) {
    out.push('', '3. COST TO dCACHE: 10 writers inserting as fast as they can (one INSERT per row, prepared), alternating phases, each paired with the');
    out.push('   "off" phase of its round; the probe (and the collector) run on the same 2 CPUs as PostgreSQL and the writers. PG µs/row = CPU of the');
    out.push('   writers\' PostgreSQL backends (where the triggers run) per inserted row, which a busy machine disturbs much less than the rate.');
    const probeNames = new Set(COST_VARIANTS.filter((v) => v.probe).map((v) => v.name));
    out.push(costTable(r.cost, r.plan.costShapes, COST_VARIANTS.map((v) => v.name), probeNames));
    for (const shape of r.plan.costShapes) {
      const alone = costRatios(r.cost, shape, 'capture');
      const withProbe = costRatios(r.cost, shape, 'capture+probe');
      const naive = costRatios(r.cost, shape, 'naive');
      const naiveProbe = costRatios(r.cost, shape, 'naive+probe');
      if (!withProbe.n) continue;
      const aloneCpu = cpuRatios(r.cost, shape, 'capture');
      targets.push(`cost, ${shape}-row commits, ≤ 10% slower: triggers alone ${verdict(alone.median >= 0.9)} (${pct(1 - alone.median)} slower; ${Number.isFinite(aloneCpu.median) ? `${fixed(aloneCpu.median, 2)}× the database CPU per row` : 'CPU n/a'}); with the probe and collector draining on the same CPUs ${verdict(withProbe.median >= 0.9)} (${pct(1 - withProbe.median)}); naive NOTIFY reference ${naive.n ? pct(1 - naive.median) : 'n/a'} alone${naiveProbe.n ? `, ${pct(1 - naiveProbe.median)} with the probe` : ''}`);
    }
  }

  // ---------------------------------------------------------------------------- encode
  if (r.encode) {
    const e = r.encode;
    out.push('', '5. ENCODING, per record (microbenchmark in the bench process, CPU µs; shipped functions vs the string-built prototype in bench/experiments/fast-encode.ts)');
    if (e.error) out.push(`   n/a: ${e.error}`);
    else {
      out.push(
        table(
          ['step', 'shipped µs/record', 'prototype µs/record', 'same bytes'],
          [
            ['mapRow', fixed(e.mapUs, 1), '', ''],
            ['usageRecordXml (a template per record shape)', fixed(e.xmlUs, 1), fixed(e.fastXmlUs, 1), e.identicalXml ? 'yes' : 'NO'],
            ...(Number.isFinite(e.builtXmlUs) ? [['… the whole record through the builder (before)', fixed(e.builtXmlUs, 1), '', e.identicalXml ? 'yes' : 'NO']] : []),
            [`multiupdateForm (${DEFAULT_BUNDLE_SIZE}/bundle)`, fixed(e.formUs, 1), '', ''],
            ['planBodies (1,000/bundle: split)', fixed(e.planUs, 1), '', ''],
          ],
        ),
      );
      out.push(`   ${int(e.records)} simulated records, ${int(e.bytesPerRecord)} bytes of form body each; includes the garbage collection the step causes.`);
      if (Number.isFinite(e.onePassPlanUs)) {
        out.push(
          '   The delivery\'s encoding, 1,000-record bundles (planned under the size limit: split), per record:',
          table(
            ['path', 'µs/record', 'same bodies'],
            [
              ['before: usageRecordXml, planBodies (encodes each line), Buffer.from', fixed(e.xmlPlanUs, 1), ''],
              ...(Number.isFinite(e.baselineXmlPlanUs) ? [[`… the same in ${e.baselineDir}`, fixed(e.baselineXmlPlanUs, 1), '']] : []),
              ['now: usageRecordForm (one pass), planEncodedBodies (bytes)', fixed(e.onePassPlanUs, 1), e.identicalForm ? 'yes' : 'NO'],
              ['… usageRecordForm alone', fixed(e.onePassUs, 1), ''],
              ['… planEncodedBodies alone', fixed(e.planEncodedUs, 1), ''],
            ],
          ),
        );
      }
    }
  }

  // ---------------------------------------------------------------------------- experiments
  if (r.experimentCatchup.length || r.experimentCost.length || r.captureCost?.length || r.narrowCost?.length) {
    out.push('', 'EXPERIMENTS (bench/experiments/: proposed changes measured before anyone makes them in src/)');
  }
  if (r.experimentCatchup.length) {
    const rows: string[][] = [];
    for (const target of ['collector', 'sink'] as const) {
      const runs = r.experimentCatchup.filter((x) => x.collector === target);
      for (const probe of ['shipped', 'x: fast encode']) {
        const p = runs.filter((x) => x.probe === probe);
        if (!p.length) continue;
        const paired = summary(p.map((x) => x.rowsPerS / (runs.find((y) => y.pair === x.pair && y.probe === 'shipped')?.rowsPerS ?? NaN)));
        const cpuPaired = summary(p.map((x) => x.probeCpuPer100k / (runs.find((y) => y.pair === x.pair && y.probe === 'shipped')?.probeCpuPer100k ?? NaN)));
        rows.push([target, probe, spread(summary(p.map((x) => x.rowsPerS))), probe === 'shipped' ? '1.00' : spread(paired, (n) => fixed(n, 2)), fixed(summary(p.map((x) => x.probeCpuPer100k)).median, 1), probe === 'shipped' ? '1.00' : spread(cpuPaired, (n) => fixed(n, 2)), fixed(summary(p.map((x) => x.peakRssMb)).median, 0)]);
      }
    }
    out.push(`   a. string-built XML and form (same bytes), catch-up of ${int(r.plan.experimentSize)} rows, paired runs:`);
    out.push(table(['delivering to', 'probe', 'rows/s', '÷ shipped', 'probe CPU s/100k', '÷ shipped', 'peak RSS MB'], rows));
  }
  if (r.experimentCost.length) {
    out.push('   c. what the trigger cost is made of (variants of our functions, bench database only, no probe running):');
    out.push(costTable(r.experimentCost, r.plan.costShapes, ['off', 'capture', ...TRIGGER_EXPERIMENTS.map((v) => v.name)], new Set()));
    for (const v of TRIGGER_EXPERIMENTS) out.push(`      ${v.name}: ${v.description}`);
  }
  if (r.captureCost?.length) {
    out.push('   d. the capture of migration 006 against ours (007), alternating phases, ratios against "off" of the same round:');
    out.push(costTable(r.captureCost, r.plan.costShapes, ['off', 'capture', ...CAPTURE_007_EXPERIMENTS.map((v) => v.name)], new Set()));
    for (const shape of r.plan.costShapes) {
      const cpu = (variant: string) => r.captureCost!.filter((p) => p.rowsPerTransaction === shape && p.variant === variant);
      const paired = summary(cpu('capture').map((p) => p.writerCpuUsPerRow / (cpu('x: 006').find((o) => o.round === p.round)?.writerCpuUsPerRow ?? NaN)));
      out.push(`      ${shape}-row commits: 007 ÷ 006, database CPU per row, same round: ${spread(paired, (n) => fixed(n, 2))}`);
    }
    for (const v of CAPTURE_007_EXPERIMENTS) out.push(`      ${v.name}: ${v.description}`);
  }
  if (r.narrowCost?.length) {
    const names = [...new Set(r.narrowCost.map((p) => p.variant))];
    out.push('   e. narrower copies than ours (the copy alone, no probe running), alternating phases, ratios against "off" of the same round:');
    out.push(costTable(r.narrowCost, r.plan.costShapes, names, new Set()));
    for (const v of [...TRIGGER_EXPERIMENTS.filter((x) => names.includes(x.name) && !NARROW_COPY_EXPERIMENTS.includes(x)), ...NARROW_COPY_EXPERIMENTS]) out.push(`      ${v.name}: ${v.description}`);
  }

  // ---------------------------------------------------------------------------- 7. memory
  if (r.memory?.length) {
    const sizes = r.plan.memorySizes ?? [...new Set(r.memory.map((x) => x.rows))];
    out.push('', `7. MEMORY: peak RSS (MB, VmHWM) through a catch-up of each backlog, the defaults (bundle ${DEFAULT_BUNDLE_SIZE}, 2 workers; the daemon with statistics and its HTTP server);`);
    out.push('   flags "deployed" = the systemd unit\'s and the image\'s NODE_OPTIONS, "none" = plain node (an `npm i -g` install)');
    const rows: string[][] = [];
    const keys = [...new Set(r.memory.map((x) => `${x.mode}|${x.flags}|${x.probe}`))];
    for (const key of keys) {
      const [mode, flags, probe] = key.split('|');
      const runs = r.memory.filter((x) => x.mode === mode && x.flags === flags && x.probe === probe);
      const peakAt = (size: number) => summary(runs.filter((x) => x.rows === size).map((x) => x.peakRssMb));
      const first = peakAt(sizes[0]!).median;
      const last = peakAt(sizes[sizes.length - 1]!).median;
      rows.push([mode === 'daemon' ? 'run (daemon)' : 'poll --once', flags!, probe!, ...sizes.map((n) => fixed(peakAt(n).median, 0)), fixed(last / first, 2), runs.every((x) => x.ok) ? 'yes' : 'NO']);
      if (probe === 'current' && mode === 'daemon') {
        targets.push(`Daemon peak RSS < 200 MB with flags "${flags}" through ${int(sizes[sizes.length - 1]!)} rows: ${fixed(Math.max(...runs.map((x) => x.peakRssMb)), 0)} MB → ${verdict(runs.every((x) => x.peakRssMb < 200))}; flat (last ÷ first ≤ 1.10): ${fixed(last / first, 2)} → ${verdict(last / first <= 1.1)}`);
      }
    }
    out.push(table(['probe', 'node flags', 'build', ...sizes.map((n) => `${int(n)} rows`), 'last ÷ first', 'all delivered'], rows));
    for (const d of r.memoryDiagnosis ?? []) {
      const b = d.atPeak;
      if (!b) continue;
      out.push(`   ${d.mode} ${d.flags}, ${int(d.rows)} rows, at its highest RSS sample ${fixed(b.rss, 0)} MB: V8 heap ${fixed(b.heapTotal, 0)} (new space ${fixed(b.newSpace, 0)}, old ${fixed(b.oldSpace, 0)}, large objects ${fixed(b.largeObjects, 0)}, code ${fixed(b.code, 0)}; used ${fixed(b.heapUsed, 0)}, live and not yet collected), external ${fixed(b.external, 0)} (array buffers ${fixed(b.arrayBuffers, 0)}), the rest (node, native, malloc) ${fixed(b.outsideHeap, 0)}`);
    }
  }

  // ---------------------------------------------------------------------------- misc
  if (r.daemonStops.length) {
    const killed = r.daemonStops.filter((s) => s.exitMs === null).length;
    out.push('', `Probe daemon stops: ${r.daemonStops.length}; SIGTERM → "stopped" median ${int(summary(r.daemonStops.map((s) => s.stoppedMs)).median)} ms; ${killed} had not exited 0.5 s after "stopped" and were killed.`);
  }
  if (Object.keys(r.profiles).length) {
    out.push('', `CPU PROFILES (self time; full text and .cpuprofile files in ${profileDir})`);
    for (const [name, p] of Object.entries(r.profiles)) {
      const busy = p.totalMs - (p.groups.find((g) => g.name === '(idle)')?.selfMs ?? 0);
      out.push(`  ${name}: busy ${int(busy)} of ${int(p.totalMs)} ms sampled; by module: ` + p.groups.filter((g) => g.name !== '(idle)').slice(0, 8).map((g) => `${g.name} ${pct(g.selfMs / busy)}`).join(', '));
      out.push('    hottest: ' + p.functions.filter((f) => f.name !== '(idle)').slice(0, 7).map((f) => `${f.name.replace(/\s+\S*\//, ' ')} ${pct(f.selfMs / busy)}`).join('; '));
    }
  }
  out.push('', 'TARGETS', ...targets.map((t) => `  ${t}`));
  return out.join('\n');
}

if (require.main === module) {
  // Re-renders a saved result: node dist/bench/report.js bench/results/latest-full.json
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node dist/bench/report.js RESULTS.json\n');
    process.exit(2);
  }
  const r = JSON.parse(require('node:fs').readFileSync(file, 'utf8')) as Results;
  const elapsed = r.finishedAt ? (Date.parse(r.finishedAt) - Date.parse(r.startedAt)) / 1000 : NaN;
  process.stdout.write(report(r, elapsed, '(see bench/results/profiles/)') + '\n');
}
