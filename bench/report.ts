/** The table `npm run bench` prints, from the raw results. */
import { DEFAULT_BUNDLE_SIZE } from '../src/config';
import type { CatchupRun } from './catchup';
import { COST_VARIANTS, TRIGGER_EXPERIMENTS, type CostPhase } from './cost';
import type { LatencyRun } from './latency';
import type { Results } from './plan';
import { fixed, int, pct, spread, summary, table, type Summary } from './lib/stats';

function verdict(ok: boolean | null): string {
  return ok === null ? 'n/a' : ok ? 'met' : 'MISSED';
}

/** A live run kept up: the writers reached 90% of the rate, the queue did not grow, nothing was lost. */
export function keptUp(l: LatencyRun): boolean {
  return l.missing === 0 && l.queueTrend < 0.5 * l.targetRowsPerS && l.achievedRowsPerS >= 0.9 * l.targetRowsPerS;
}

/** rows/s of each phase ÷ the "off" phase of the same round and shape. */
function costRatios(phases: CostPhase[], shape: number, variant: string): Summary {
  return summary(
    phases
      .filter((p) => p.rowsPerTransaction === shape && p.variant === variant)
      .map((p) => p.rowsPerS / (phases.find((o) => o.rowsPerTransaction === shape && o.round === p.round && o.variant === 'off')?.rowsPerS ?? NaN)),
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
        probeNames.has(variant) ? int(summary(ps.map((p) => p.deliveredPerS)).median) : '',
        String(ps.length),
      ]);
    }
  }
  return table(['commits', 'variant', 'rows/s', '÷ off (paired)', 'slower by', 'commit p50 ms', 'commit p99 ms', 'delivered/s', 'rounds'], rows);
}

export function report(r: Results, elapsedS: number, profileDir: string): string {
  const out: string[] = [];
  const targets: string[] = [];
  const m = r.machine;
  out.push(`dcache-transfer-probe benchmark (${r.plan.mode}), ${m.cpus} CPUs, node ${m.node}, PostgreSQL ${m.postgres} (autovacuum ${m.autovacuum}, shared_buffers ${m.sharedBuffers}); git ${m.gitHead}${m.srcChanges ? ` + ${m.srcChanges} uncommitted changes in src/, sql/` : ''}; ${Math.round(elapsedS)} s`);
  out.push('Medians of the runs, (min–max) in brackets. Ratios are against baselines measured in this same run.');
  const loads = summary([...r.catchup, ...r.sweep, ...r.latency, ...r.cost].map((x) => x.loadAvg1));
  if (loads.n) out.push(`Machine load (1-min load average at the end of each measurement; ${m.cpus} CPUs, shared with other work): ${spread(loads, (n) => fixed(n, 1))}`);

  // ---------------------------------------------------------------------------- 1. catch-up
  if (r.catchup.length) {
    out.push('', `1. CATCH-UP: \`dcache-probe poll --once\`, bundle ${DEFAULT_BUNDLE_SIZE}, 2 workers (the defaults), a backlog of captured movers whose door rows are in doorinfo`);
    const rows: string[][] = [];
    const rates: number[] = [];
    let allRate = true;
    let allRss = true;
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
    const byClients = [1, 2, 4].map((c) => `${c}: ${int(summary(r.acceptance.filter((a) => a.clients === c).map((a) => a.recordsPerS)).median)}`);
    out.push(`   (${DEFAULT_BUNDLE_SIZE} records each) over 2 connections. Collector acceptance by connections, records/s: ${byClients.join(', ')}.`);
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
    const flat = rates.length > 1 ? rates[rates.length - 1]! / rates[0]! : NaN;
    out.push(`   largest ÷ smallest backlog, rows/s: ${fixed(flat, 2)}`);
    targets.push(`catch-up ≥ 20,000 rows/s: ${verdict(allRate)} (median ${rates.map(int).join(' / ')} rows/s)`);
    targets.push(`catch-up peak RSS < 200 MB: ${verdict(allRss)}`);
    targets.push(`catch-up flat as the backlog grows (largest ÷ smallest ≥ 0.9): ${verdict(Number.isFinite(flat) ? flat >= 0.9 : null)} (${fixed(flat, 2)})`);
  }

  // ---------------------------------------------------------------------------- sweep
  if (r.sweep.length) {
    out.push('', `   BUNDLE SIZE × WORKERS, ${int(r.plan.sweepSize)}-row backlog${r.catchup.length ? ' (the default\'s runs are the catch-up runs above)' : ''}`);
    const all: CatchupRun[] = [...r.sweep, ...r.catchup.filter((c) => c.rows === r.plan.sweepSize)];
    const keys = [...new Set(all.map((s) => `${s.bundleSize}x${s.workers}`))];
    const medians = keys
      .map((k) => {
        const runs = all.filter((s) => `${s.bundleSize}x${s.workers}` === k);
        return { b: runs[0]!.bundleSize, w: runs[0]!.workers, rate: summary(runs.map((s) => s.rowsPerS)), steady: summary(runs.map((s) => s.steadyRowsPerS)), cpu: summary(runs.map((s) => s.probeCpuPer100k)), rss: summary(runs.map((s) => s.peakRssMb)) };
      })
      .sort((a, b) => a.w - b.w || a.b - b.b);
    const best = medians.reduce((a, b) => (b.rate.median > a.rate.median ? b : a));
    const def = medians.find((x) => x.b === DEFAULT_BUNDLE_SIZE && x.w === 2);
    out.push(
      table(
        ['bundle × workers', 'rows/s', '÷ best', 'steady rows/s', 'probe CPU s/100k', 'peak RSS MB', 'runs'],
        medians.map((x) => [`${x.b} × ${x.w}${x === best ? ' (best)' : ''}${x === def ? ' (default)' : ''}`, spread(x.rate), pct(x.rate.median / best.rate.median), int(x.steady.median), fixed(x.cpu.median, 1), fixed(x.rss.median, 0), String(x.rate.n)]),
      ),
    );
    if (def) {
      const close = def.rate.median >= 0.95 * best.rate.median || def.rate.max >= best.rate.min;
      targets.push(`default ${DEFAULT_BUNDLE_SIZE} × 2 is the measured best (within 5% or within the spread): ${verdict(close)} (best ${best.b} × ${best.w}, default at ${pct(def.rate.median / best.rate.median)} of it)`);
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
          int(summary(runs.map((l) => l.queueMax)).median),
          int(summary(runs.map((l) => l.queueTrend)).median),
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
      }
    }
    out.push(table(['rows/s asked', 'achieved', 'p50 ms', 'p99 ms', 'max ms', 'queue max', 'queue trend', 'records/s', 'probe CPU cores', 'probe RSS MB', 'missing', 'kept up'], rows));
    const l0 = r.latency[0]!;
    out.push(`   ${l0.windowS} s windows; queue trend = mean depth in the last third of the window − the first third; kept up = writers reached 90% of the rate,`);
    out.push(`   trend < half a second of traffic, nothing missing. Writers' event-loop delay p99 ${fixed(summary(r.latency.map((l) => l.loopDelayP99Ms)).median, 1)} ms (bounds the error of the commit stamps).`);
  }

  // ---------------------------------------------------------------------------- 3. cost
  if (r.cost.length) {
    out.push('', '3. COST TO dCACHE: 10 writers inserting as fast as they can (one INSERT per row, prepared), alternating phases, each paired with the');
    out.push('   "off" phase of its round; the probe (and the collector) run on the same 2 CPUs as PostgreSQL and the writers');
    const probeNames = new Set(COST_VARIANTS.filter((v) => v.probe).map((v) => v.name));
    out.push(costTable(r.cost, r.plan.costShapes, COST_VARIANTS.map((v) => v.name), probeNames));
    for (const shape of r.plan.costShapes) {
      const alone = costRatios(r.cost, shape, 'capture');
      const withProbe = costRatios(r.cost, shape, 'capture+probe');
      const naive = costRatios(r.cost, shape, 'naive+probe');
      if (!withProbe.n) continue;
      targets.push(`cost, ${shape}-row commits, ≤ 10% slower: triggers alone ${verdict(alone.median >= 0.9)} (${pct(1 - alone.median)} slower); with the probe and collector draining on the same CPUs ${verdict(withProbe.median >= 0.9)} (${pct(1 - withProbe.median)}); naive NOTIFY reference ${pct(1 - naive.median)}`);
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
            ['usageRecordXml', fixed(e.xmlUs, 1), fixed(e.fastXmlUs, 1), e.identicalXml ? 'yes' : 'NO'],
            [`multiupdateForm (${DEFAULT_BUNDLE_SIZE}/bundle)`, fixed(e.formUs, 1), fixed(e.fastFormUs, 1), e.identicalForms ? 'yes' : 'NO'],
            ['planBodies (1,000/bundle: split)', fixed(e.planUs, 1), fixed(e.fastPlanUs, 1), e.identicalPlans ? 'yes' : 'NO'],
          ],
        ),
      );
      out.push(`   ${int(e.records)} simulated records, ${int(e.bytesPerRecord)} bytes of form body each; includes the garbage collection the step causes.`);
    }
  }

  // ---------------------------------------------------------------------------- experiments
  if (r.experimentCatchup.length || r.experimentCost.length) {
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
  const drain = r.latency.filter((l) => l.probe === 'x: drain fix' || l.probe === 'shipped (paired)');
  if (drain.length) {
    out.push('   b. drain workers stop only on an empty claim (bench/experiments/drain-fix-patch.ts): see the "x: drain fix" and "shipped (paired)" rows in 2.');
  }
  if (r.experimentCost.length) {
    out.push('   c. what the trigger cost is made of (variants of our functions, bench database only, no probe running):');
    out.push(costTable(r.experimentCost, r.plan.costShapes, ['off', 'capture', ...TRIGGER_EXPERIMENTS.map((v) => v.name)], new Set()));
    for (const v of TRIGGER_EXPERIMENTS) out.push(`      ${v.name}: ${v.description}`);
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
