/**
 * `npm run bench [-- --quick] [-- --sections catchup,sweep,latency,cost,encode,experiments]
 *                [-- --runs N] [-- --profile | --no-profile]`
 *
 * Measures the probe against the real local PostgreSQL and the project's collector run as a
 * separate process, and prints one table (docs/PERFORMANCE.md explains every figure). Figures
 * are also given as ratios against baselines measured in the same run: the machine is shared.
 * Raw results go to bench/results/ (ignored by git). Never part of `npm test`.
 *
 * Default sections: catchup, sweep, latency, cost, encode; `--sections experiments` measures the
 * proposed src/ changes of bench/experiments/ (about 15 minutes in full size), or one of them:
 * x-encode, x-triggers; `--sections x-capture` measures the capture of migration 006 against ours
 * (007) and 007 without its queue check, paired (with --quick: about a minute); `--sections
 * memory` measures peak RSS of the daemon and of poll --once through 100k / 300k / 1M-row
 * catch-ups (about 90 minutes; --quick: 50k / 150k, about 20 minutes), beside another build when
 * one is given; `--sections x-narrow` what narrower copies than ours would cost dCache (the copy
 * alone, paired); `--sections citizen` the good citizen: 10 saturating writers during a catch-up with it on and off, against `capture`
 * and `off`, and the idle catch-up with it on and off (bench/cost.ts; with --quick: about 10 minutes).
 * --quick: small backlogs and short windows, no profiles (about 2–3 minutes on 2 CPUs); the full
 * run takes 20–35 minutes, depending on how busy the machine is.
 */
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { DEFAULT_BUNDLE_SIZE } from '../src/config/schema';
import { collectorAcceptance, copyFloor, recordedBundles } from './baselines';
import { catchupRun } from './catchup';
import { CAPTURE_007_EXPERIMENTS, CITIZEN_VARIANTS, COST_VARIANTS, NARROW_COPY_EXPERIMENTS, TRIGGER_EXPERIMENTS, citizenSummary, costRuns, idleCatchupRuns } from './cost';
import { encodeBench } from './encode';
import { latencyRun } from './latency';
import { memoryRun, memoryVariants } from './memory';
import { analyzeBilling, createBenchDatabase, fillBacklog, restoreQueue, snapshotQueue, type BenchDatabase } from './lib/db';
import { DIST, PG_ADMIN_URL, RESULTS_DIR, ROOT, SINK_MAIN, note } from './lib/env';
import { daemonStops, startCollector, type CollectorProcess } from './lib/proc';
import { formatProfile, summariseProfile } from './lib/profile';
import { fixed, int } from './lib/stats';
import { ALL_SECTIONS, makePlan, type Results, type Section } from './plan';
import { report } from './report';

const EXPERIMENT = (name: string) => join(DIST, 'bench', 'experiments', `${name}.js`);

/**
 * Runs the bench from a private copy of dist/ and sql/: other developers rebuild dist/ (which
 * starts with rm -rf dist) while it runs. The copy lives under bench/results/ (ignored by git)
 * so that node_modules still resolves from the checkout.
 */
async function relaunchFromSnapshot(): Promise<number> {
  const snapshot = join(ROOT, 'bench', 'results', `.snapshot-${process.pid}`);
  rmSync(snapshot, { recursive: true, force: true });
  mkdirSync(snapshot, { recursive: true });
  for (const part of ['src', 'bench']) cpSync(join(DIST, part), join(snapshot, 'dist', part), { recursive: true });
  cpSync(join(ROOT, 'sql'), join(snapshot, 'sql'), { recursive: true });
  cpSync(join(ROOT, 'package.json'), join(snapshot, 'package.json')); // src/version.ts reads its version
  try {
    const child = spawn(process.execPath, [join(snapshot, 'dist', 'bench', 'run.js'), ...process.argv.slice(2)], {
      stdio: 'inherit',
      env: { ...process.env, DCACHE_BENCH_SNAPSHOT: '1', DCACHE_BENCH_REPO: ROOT },
    });
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    process.on('SIGINT', forward).on('SIGTERM', forward);
    return await new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
  } finally {
    rmSync(snapshot, { recursive: true, force: true });
  }
}

/** Drops bench databases left behind by bench processes that no longer exist. */
async function dropStaleDatabases(): Promise<void> {
  const client = new pg.Client({ connectionString: PG_ADMIN_URL });
  await client.connect();
  try {
    const { rows } = await client.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datname LIKE 'dcache\\_probe\\_bench\\_%'");
    for (const { datname } of rows) {
      const pid = Number(datname.split('_').pop());
      let alive = true;
      try {
        process.kill(pid, 0);
      } catch {
        alive = false;
      }
      if (!alive) await client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(datname)} WITH (FORCE)`);
    }
  } finally {
    await client.end();
  }
}

function git(args: string[]): string | undefined {
  try {
    return execFileSync('git', args, { cwd: process.env.DCACHE_BENCH_REPO ?? ROOT, encoding: 'utf8' }).trim();
  } catch {
    return undefined;
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      sections: { type: 'string' },
      runs: { type: 'string' },
      profile: { type: 'boolean' },
      'no-profile': { type: 'boolean' },
      'memory-sizes': { type: 'string' },
      'memory-modes': { type: 'string' },
    },
  });
  if (!process.env.DCACHE_BENCH_SNAPSHOT) return relaunchFromSnapshot();

  const sections = values.sections?.split(',').map((s) => s.trim()) as Section[] | undefined;
  for (const s of sections ?? []) if (!ALL_SECTIONS.includes(s)) throw new Error(`unknown section ${s} (known: ${ALL_SECTIONS.join(', ')})`);
  const plan = makePlan(Boolean(values.quick), {
    runs: values.runs ? Number(values.runs) : undefined,
    sections,
    profile: values['no-profile'] ? false : values.profile,
  });
  if (values['memory-sizes']) plan.memorySizes = values['memory-sizes'].split(',').map(Number);
  const has = (s: Section) => plan.sections.includes(s);
  const started = Date.now();
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const profileDir = join(RESULTS_DIR, 'profiles', stamp);
  mkdirSync(profileDir, { recursive: true });

  const results: Results = {
    startedAt: new Date().toISOString(),
    plan,
    machine: { cpus: cpus().length, node: process.version, gitHead: git(['rev-parse', '--short', 'HEAD']), srcChanges: git(['status', '--porcelain', 'src', 'sql'])?.split('\n').filter(Boolean).length },
    catchup: [],
    copyFloor: [],
    acceptance: [],
    sink: [],
    sweep: [],
    unanalyzed: [],
    latency: [],
    cost: [],
    encode: null,
    experimentCatchup: [],
    experimentCost: [],
    captureCost: [],
    memory: [],
    memoryDiagnosis: [],
    narrowCost: [],
    profiles: {},
    daemonStops,
  };
  const save = () => {
    mkdirSync(RESULTS_DIR, { recursive: true });
    const text = JSON.stringify(results, null, 1);
    writeFileSync(join(RESULTS_DIR, `bench-${plan.mode}-${stamp}.json`), text);
    writeFileSync(join(RESULTS_DIR, `latest-${plan.mode}.json`), text);
  };

  await dropStaleDatabases();
  {
    const c = new pg.Client({ connectionString: PG_ADMIN_URL });
    await c.connect();
    results.machine.postgres = (await c.query('SHOW server_version')).rows[0]?.server_version;
    results.machine.autovacuum = (await c.query('SHOW autovacuum')).rows[0]?.autovacuum;
    results.machine.sharedBuffers = (await c.query('SHOW shared_buffers')).rows[0]?.shared_buffers;
    await c.end();
  }
  note(`${plan.mode} run of ${plan.sections.join(', ')}; PostgreSQL ${results.machine.postgres} (autovacuum ${results.machine.autovacuum}, shared_buffers ${results.machine.sharedBuffers}); git ${results.machine.gitHead} with ${results.machine.srcChanges} uncommitted changes in src/ and sql/; results in ${RESULTS_DIR}`);

  const collector = await startCollector('none');
  const databases: BenchDatabase[] = [];
  const open = async (label: string) => {
    const db = await createBenchDatabase(label);
    databases.push(db);
    return db;
  };
  const close = async (db: BenchDatabase) => {
    databases.splice(databases.indexOf(db), 1);
    await db.drop();
  };
  let interrupted = false;
  process.on('SIGINT', () => (interrupted = true)).on('SIGTERM', () => (interrupted = true));
  const check = () => {
    if (interrupted) throw new Error('interrupted');
  };

  try {
    if (has('encode')) {
      results.encode = encodeBench(plan.mode === 'quick' ? 2000 : 4000, plan.mode === 'quick' ? 100 : 400);
      const e = results.encode;
      note(e.error ? `encode microbenchmark: n/a (${e.error})` : `encode: XML ${fixed(e.xmlUs, 1)} → ${fixed(e.fastXmlUs, 1)} µs/record, form ${fixed(e.formUs, 1)} µs/record; XML identical ${e.identicalXml}`);
    }
    if (has('catchup') || has('sweep')) await catchupSection();
    if (has('latency')) await latencySection();
    if (has('cost')) await costSection();
    if (has('experiments') || has('x-encode')) await encodeExperiment();
    if (has('experiments') || has('x-triggers')) await triggerExperiment();
    if (has('x-capture')) await captureExperiment();
    if (has('memory')) await memorySection();
    if (has('x-narrow')) await narrowExperiment();
    if (has('citizen')) await citizenSection();
  } finally {
    await collector.stop();
    for (const db of [...databases]) await db.drop().catch(() => undefined);
  }

  results.finishedAt = new Date().toISOString();
  save();
  for (const [name, p] of Object.entries(results.profiles)) writeFileSync(join(profileDir, `${name}.txt`), formatProfile(p) + '\n');
  process.stdout.write(report(results, (Date.now() - started) / 1000, profileDir) + '\n');
  return 0;

  // ------------------------------------------------------------------ 1. catch-up, 4. baselines
  async function catchupSection(): Promise<void> {
    const db = await open('catchup');
    const ctx = { pool: db.pool, dbUrl: db.url, collector };
    const sizes = has('catchup') ? plan.sizes : [plan.sweepSize];
    const recording = join(profileDir, 'bundles.txt');
    let bundles: ReturnType<typeof recordedBundles> | null = null;
    for (const size of sizes) {
      check();
      await db.pool.query('TRUNCATE public.billinginfo, public.doorinfo, dcache_probe.capture_queue, dcache_probe.delivered_key');
      const t0 = Date.now();
      await fillBacklog(db.pool, size, `s${size}`);
      note(`filled ${int(size)} transfers through the triggers in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      await snapshotQueue(db.pool);

      if (has('catchup') && size === plan.sizes[0] && plan.mode === 'full') {
        // Diagnosis, before ANALYZE: the claim while doorinfo has no planner statistics yet.
        const r = await catchupRun(ctx, size, DEFAULT_BUNDLE_SIZE, 2);
        results.unanalyzed.push(r);
        note(`catch-up ${int(size)} with doorinfo not analyzed: ${int(r.rowsPerS)} rows/s, PostgreSQL ${fixed(r.pgBackendCpuPer100k)} CPU s/100k`);
      }
      await analyzeBilling(db.pool);

      if (has('catchup') && size === plan.sizes[0]) {
        // Diagnosis: the probe against a null sink, which also records the bundles it is sent
        // (the collector acceptance baseline posts exactly those bytes).
        const sinkRuns = plan.mode === 'quick' ? 1 : plan.runs;
        for (let run = 0; run < sinkRuns; run++) {
          const record = run === 0 ? ['--record', recording, '--record-max', String(Math.ceil(plan.acceptanceRecords / DEFAULT_BUNDLE_SIZE))] : [];
          const sink = await startCollector('none', SINK_MAIN, [], record);
          try {
            const r = await catchupRun({ ...ctx, collector: sink }, size, DEFAULT_BUNDLE_SIZE, 2);
            results.sink.push(r);
            note(`probe → null sink ${int(size)}: ${int(r.rowsPerS)} rows/s, probe ${fixed(r.probeCpuPer100k)} CPU s/100k`);
          } finally {
            await sink.stop();
          }
        }
        bundles = recordedBundles(recording);
        note(`recorded ${bundles.forms.length} bundles (${int(bundles.records)} records, ${fixed(bundles.bytes / 1e6, 1)} MB) for the collector baseline`);
      }

      if (has('catchup')) {
        for (let run = 0; run < plan.runs; run++) {
          check();
          const r = await catchupRun(ctx, size, DEFAULT_BUNDLE_SIZE, 2);
          results.catchup.push(r);
          note(`catch-up ${int(size)} run ${run + 1}: ${int(r.rowsPerS)} rows/s (steady ${int(r.steadyRowsPerS)}), probe ${fixed(r.probeCpuPer100k)} CPU s/100k, peak RSS ${fixed(r.peakRssMb, 0)} MB, PostgreSQL ${fixed(r.pgBackendCpuPer100k)}, collector ${fixed(r.collectorCpuPer100k)} CPU s/100k`);
          // The two limits, measured right after this run (paired ratios).
          await restoreQueue(db.url);
          const f = await copyFloor(db.url, size);
          results.copyFloor.push({ ...f, size, afterRun: run });
          if (bundles) {
            // 2 connections, as the probe's 2 workers: the paired limit. After the first run of
            // each size also 1 and 4, at the same moment, to show what more connections give.
            for (const clients of run === 0 ? [2, 1, 4] : [2]) {
              const a = await collectorAcceptance(collector, bundles, DEFAULT_BUNDLE_SIZE, clients);
              results.acceptance.push({ ...a, afterSize: size, afterRun: clients === 2 ? run : -1 });
            }
            const a2 = results.acceptance.filter((a) => a.afterSize === size && a.afterRun === run)[0]!;
            note(`  limits: COPY floor ${int(f.rowsPerS)} rows/s; collector acceptance (2 connections) ${int(a2.recordsPerS)} records/s`);
          }
          save();
        }
        if (plan.profile && size === plan.sizes[0]) {
          // One profiled run (not counted): the probe and the collector under --cpu-prof.
          const profCollector = await startCollector('none', undefined, ['--cpu-prof', '--cpu-prof-dir', profileDir, '--cpu-prof-name', 'collector-catchup.cpuprofile']);
          try {
            await catchupRun({ ...ctx, collector: profCollector }, size, DEFAULT_BUNDLE_SIZE, 2, ['--cpu-prof', '--cpu-prof-dir', profileDir, '--cpu-prof-name', 'probe-catchup.cpuprofile']);
          } finally {
            await profCollector.stop();
          }
          await new Promise((r) => setTimeout(r, 500));
          for (const name of ['probe-catchup', 'collector-catchup']) {
            try {
              results.profiles[name] = summariseProfile(join(profileDir, `${name}.cpuprofile`), 20);
            } catch (err) {
              note(`no profile ${name}: ${(err as Error).message}`);
            }
          }
        }
      }

      if (has('sweep') && size === plan.sweepSize) {
        // Every other run is the default (500 × 2): each combination is compared with the
        // default runs just before and after it, which cancels the machine's changing load.
        const combos = plan.sweep
          .filter(([b, w]) => !(b === DEFAULT_BUNDLE_SIZE && w === 2))
          .flatMap(([b, w, n]) => Array.from({ length: n }, (_, i) => ({ b, w, i })))
          .sort((x, y) => x.i - y.i);
        const order = combos.flatMap((c) => [{ b: DEFAULT_BUNDLE_SIZE, w: 2, i: c.i }, c]);
        order.push({ b: DEFAULT_BUNDLE_SIZE, w: 2, i: 0 });
        for (const [seq, { b, w }] of order.entries()) {
          check();
          const r = await catchupRun(ctx, size, b, w);
          results.sweep.push({ ...r, seq });
          note(`sweep bundle ${b} × workers ${w}: ${int(r.rowsPerS)} rows/s, probe ${fixed(r.probeCpuPer100k)} CPU s/100k, peak RSS ${fixed(r.peakRssMb, 0)} MB`);
        }
      }
      save();
    }
    rmSync(recording, { force: true });
    await close(db);
  }

  // ------------------------------------------------------------------ 7. memory
  async function memorySection(): Promise<void> {
    const db = await open('memory');
    const ctx = { pool: db.pool, dbUrl: db.url, collector };
    const modes = values['memory-modes']?.split(',') ?? ['daemon', 'poll'];
    const variants = memoryVariants().filter((v) => modes.includes(v.mode));
    for (const size of plan.memorySizes) {
      check();
      await db.pool.query('TRUNCATE public.billinginfo, public.doorinfo, dcache_probe.capture_queue, dcache_probe.delivered_key');
      const t0 = Date.now();
      await fillBacklog(db.pool, size, `m${size}`, 100_000);
      note(`filled ${int(size)} transfers through the triggers in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      await snapshotQueue(db.pool);
      await analyzeBilling(db.pool);
      for (const v of variants) {
        check();
        const r = await memoryRun(ctx, size, v, false);
        results.memory!.push(r);
        note(`memory ${int(size)} ${v.mode} ${v.probe} (flags: ${v.flags}): peak RSS ${fixed(r.peakRssMb, 0)} MB, ${fixed(r.wallS, 0)} s, ${r.ok ? 'all delivered' : `delivered ${r.delivered}, left ${r.left}`}`);
        save();
      }
      if (size === plan.memorySizes[plan.memorySizes.length - 1]) {
        // Diagnosis (not counted): what the peak is made of, the current build, both modes and flags.
        for (const v of variants.filter((x) => x.probe === 'current')) {
          check();
          const r = await memoryRun(ctx, size, v, true);
          results.memoryDiagnosis!.push(r);
          const b = r.atPeak;
          note(`memory diagnosis ${int(size)} ${v.mode} (flags: ${v.flags}): peak RSS ${fixed(r.peakRssMb, 0)} MB` + (b ? `; at the highest sample RSS ${fixed(b.rss, 0)} = V8 heap ${fixed(b.heapTotal, 0)} (new ${fixed(b.newSpace, 0)}, old ${fixed(b.oldSpace, 0)}, large ${fixed(b.largeObjects, 0)}, code ${fixed(b.code, 0)}; used ${fixed(b.heapUsed, 0)}) + external ${fixed(b.external, 0)} (array buffers ${fixed(b.arrayBuffers, 0)}) + the rest ${fixed(b.outsideHeap, 0)} MB` : ''));
          save();
        }
      }
    }
    await close(db);
  }

  // ------------------------------------------------------------------ 2. live latency
  async function liveDatabase(label: string): Promise<BenchDatabase> {
    const db = await open(label);
    // History, as a billing database has: door and mover rows from before, analyzed.
    await fillBacklog(db.pool, plan.historyRows, 'history');
    await db.pool.query('TRUNCATE dcache_probe.capture_queue');
    await analyzeBilling(db.pool);
    return db;
  }

  async function liveRun(db: BenchDatabase, rate: number, label: string, options: { cli?: string; nodeFlags?: string[]; windowS?: number } = {}) {
    const live = await startCollector('records');
    try {
      const r = await latencyRun({ pool: db.pool, dbUrl: db.url, collector: live }, rate, plan.latencyWarmupS, options.windowS ?? plan.latencyWindowS, { cli: options.cli, label, nodeFlags: options.nodeFlags });
      note(`live ${rate} rows/s (${label}): achieved ${int(r.achievedRowsPerS)} rows/s, latency p50 ${int(r.p50Ms)} p99 ${int(r.p99Ms)} max ${int(r.maxMs)} ms, ${r.over1s} over 1 s, queue max ${int(r.queueMax)} growth ${fixed(r.queueSlope, 0)}/s, missing ${r.missing}`);
      for (const w of r.probeWarnings) note(`  probe said: ${w}`);
      return r;
    } finally {
      await live.stop();
    }
  }

  async function latencySection(): Promise<void> {
    const db = await liveDatabase('live');
    for (let run = 0; run < plan.latencyRuns; run++) {
      for (const rate of plan.latencyRates) {
        check();
        results.latency.push(await liveRun(db, rate, 'shipped'));
      }
      save();
    }
    if (plan.profile && plan.mode === 'full') {
      const rate = plan.latencyRates[plan.latencyRates.length - 1]!;
      await liveRun(db, rate, 'profiled', { nodeFlags: ['--cpu-prof', '--cpu-prof-dir', profileDir, '--cpu-prof-name', 'probe-live.cpuprofile'], windowS: 20 });
      await new Promise((r) => setTimeout(r, 500));
      try {
        results.profiles['probe-live'] = summariseProfile(join(profileDir, 'probe-live.cpuprofile'), 20);
      } catch (err) {
        note(`no live profile: ${(err as Error).message}`);
      }
    }
    await close(db);
  }

  // ------------------------------------------------------------------ 3. cost to dCache
  async function costSection(): Promise<void> {
    const db = await open('cost');
    // --quick leaves out naive+probe (naive alone is the reference the facts quote).
    const variants = plan.mode === 'quick' ? COST_VARIANTS.filter((v) => v.name !== 'naive+probe') : COST_VARIANTS;
    results.cost = await costRuns({ pool: db.pool, dbUrl: db.url, collector }, variants, plan.costShapes, plan.costRounds, plan.costWarmupS, plan.costWindowS, note);
    save();
    await close(db);
  }

  // ------------------------------------------------------------------ the good citizen
  async function citizenSection(): Promise<void> {
    const db = await open('citizen');
    const t0 = Date.now();
    await fillBacklog(db.pool, plan.citizenBacklog, 'gc');
    await snapshotQueue(db.pool);
    await analyzeBilling(db.pool);
    note(`filled ${int(plan.citizenBacklog)} transfers in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const ctx = { pool: db.pool, dbUrl: db.url, collector, backlogRows: plan.citizenBacklog };
    results.citizenIdle = await idleCatchupRuns(ctx, plan.runs, note);
    save();
    results.citizen = await costRuns(ctx, CITIZEN_VARIANTS, plan.costShapes, plan.runs, plan.citizenWarmupS, plan.citizenWindowS, note);
    save();
    for (const line of citizenSummary(results.citizen, results.citizenIdle)) note(`good citizen: ${line}`);
    await close(db);
  }

  // ------------------------------------------------------------------ experiments
  // a. The string-built encoder in the real pipeline, paired with the shipped probe.
  async function encodeExperiment(): Promise<void> {
    {
      const db = await open('xencode');
      const ctx = { pool: db.pool, dbUrl: db.url, collector };
      await fillBacklog(db.pool, plan.experimentSize, 'xe');
      await snapshotQueue(db.pool);
      await analyzeBilling(db.pool);
      const sink = await startCollector('none', SINK_MAIN);
      try {
        for (let pair = 0; pair < plan.runs; pair++) {
          for (const [target, c] of [['collector', collector], ['sink', sink]] as [('collector' | 'sink'), CollectorProcess][]) {
            for (const variant of pair % 2 ? ['x: fast encode', 'shipped'] : ['shipped', 'x: fast encode']) {
              check();
              const r = await catchupRun({ ...ctx, collector: c }, plan.experimentSize, DEFAULT_BUNDLE_SIZE, 2, [], variant === 'shipped' ? undefined : EXPERIMENT('fast-encode-cli'), variant);
              results.experimentCatchup.push({ ...r, collector: target, pair });
              note(`experiment catch-up (${variant} → ${target}): ${int(r.rowsPerS)} rows/s, probe ${fixed(r.probeCpuPer100k)} CPU s/100k, RSS ${fixed(r.peakRssMb, 0)} MB`);
            }
          }
        }
      } finally {
        await sink.stop();
      }
      save();
      await close(db);
    }
  }

  // d. The capture of 006 against ours (007), alternating, every ratio against "off" of its round.
  async function captureExperiment(): Promise<void> {
    const db = await open('xcapture');
    results.captureCost = await costRuns({ pool: db.pool, dbUrl: db.url, collector }, [COST_VARIANTS[0]!, COST_VARIANTS[1]!, ...CAPTURE_007_EXPERIMENTS], plan.costShapes, plan.costRounds, plan.costWarmupS, plan.costWindowS, note);
    save();
    await close(db);
  }

  // e. What a narrower copy could save: our copy alone, into other kinds of queue table.
  async function narrowExperiment(): Promise<void> {
    const db = await open('xnarrow');
    const bare = TRIGGER_EXPERIMENTS.filter((v) => v.name === 'x: empty trigger');
    results.narrowCost = await costRuns({ pool: db.pool, dbUrl: db.url, collector }, [COST_VARIANTS[0]!, COST_VARIANTS[1]!, ...bare, ...NARROW_COPY_EXPERIMENTS], plan.costShapes, plan.costRounds, plan.costWarmupS, plan.costWindowS, note);
    save();
    await close(db);
  }

  // c. What the trigger cost is made of: variants of our trigger functions.
  async function triggerExperiment(): Promise<void> {
    {
      const db = await open('xcost');
      results.experimentCost = await costRuns({ pool: db.pool, dbUrl: db.url, collector }, [COST_VARIANTS[0]!, COST_VARIANTS[1]!, ...TRIGGER_EXPERIMENTS], plan.costShapes, Math.max(2, plan.costRounds - 1), plan.costWarmupS, plan.costWindowS, note);
      save();
      await close(db);
    }
  }
}

if (require.main === module) {
  main()
    .then((code) => process.exit(code))
    .catch((err) => {
      process.stderr.write(`bench: ${(err as Error).stack ?? err}\n`);
      process.exit(1);
    });
}
