/**
 * What the statistics and the start-up cost the probe, this build against another, in one run
 * (the machine is shared and noisy, so only figures taken side by side compare):
 *
 *   npx tsc -p bench/tsconfig.json && node dist/bench/stats-ab.js --baseline OTHER_BUILD/dist/src/cli/bin.js
 *        [--rows 100000] [--rounds 3] [--startup-runs 5]
 *
 * 1. Catch-up of `rows` queued transfers (bench/catchup.ts catchupRun) by each build with
 *    statistics on and with statistics.enabled=false (DCACHE_PROBE_STATS=false), the four runs
 *    of a round in an order that alternates from round to round; the statistics tables are
 *    emptied before each run, so every run writes the same rows. Reported: the probe's CPU per
 *    100k rows, each run and the medians, and the statistics' share: on − off per build.
 * 2. Start-up: `poll --once` on the empty queue and `--help`, the CPU (user+sys, GNU time) of
 *    each, alternating the builds, medians of `startup-runs`.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_BUNDLE_SIZE } from '../src/config/schema';
import { catchupRun } from './catchup';
import { analyzeBilling, createBenchDatabase, fillBacklog, snapshotQueue } from './lib/db';
import { CLI, note, probeNodeFlags } from './lib/env';
import { pollOnce, runMeasured, startCollector } from './lib/proc';
import { fixed, median } from './lib/stats';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      baseline: { type: 'string' },
      rows: { type: 'string', default: '100000' },
      rounds: { type: 'string', default: '3' },
      'startup-runs': { type: 'string', default: '5' },
      skip: { type: 'string', default: '' },
    },
  });
  if (!values.baseline) throw new Error('give --baseline PATH (another build\'s dist/src/cli/bin.js)');
  const builds = { baseline: values.baseline, current: CLI };
  const rows = Number(values.rows);
  const skip = new Set(values.skip.split(',').filter(Boolean));
  const collector = await startCollector('none');
  const db = await createBenchDatabase('statsab');
  try {
    await fillBacklog(db.pool, rows, 'statsab');
    await analyzeBilling(db.pool);
    await snapshotQueue(db.pool);
    const ctx = { pool: db.pool, dbUrl: db.url, collector, beforeRun: () => db.pool.query('TRUNCATE dcache_probe.stats_minute, dcache_probe.stats_hour, dcache_probe.stats_day, dcache_probe.stats_seen').then(() => undefined) };

    type Variant = `${keyof typeof builds} ${'on' | 'off'}`;
    const cpu: Record<Variant, number[]> = { 'baseline on': [], 'baseline off': [], 'current on': [], 'current off': [] };
    const variants = Object.keys(cpu) as Variant[];
    for (let round = 0; !skip.has('catchup') && round < Number(values.rounds); round++) {
      const order = round % 2 === 0 ? variants : [...variants].reverse();
      for (const v of order) {
        const [build, stats] = v.split(' ') as [keyof typeof builds, 'on' | 'off'];
        if (stats === 'off') process.env.DCACHE_PROBE_STATS = 'false';
        try {
          const r = await catchupRun(ctx, rows, DEFAULT_BUNDLE_SIZE, 2, [], builds[build], v);
          if (r.exitCode !== 0 || r.left !== 0) throw new Error(`${v}: exit ${r.exitCode}, ${r.left} rows left`);
          const { rows: n } = await db.pool.query<{ n: string }>("SELECT count(*) AS n FROM dcache_probe.stats_minute WHERE dimension = 'all'");
          cpu[v].push(r.probeCpuPer100k);
          note(`round ${round + 1} ${v}: probe ${fixed(r.probeCpuPer100k)} CPU s/100k, PostgreSQL ${fixed(r.pgBackendCpuPer100k)} CPU s/100k, ${Math.round(r.rowsPerS)} rows/s (stats_minute 'all' rows: ${n[0]?.n})`);
        } finally {
          delete process.env.DCACHE_PROBE_STATS;
        }
      }
    }
    if (!skip.has('catchup')) {
      for (const v of variants) note(`${v}: median ${fixed(median(cpu[v]))} CPU s/100k (runs ${cpu[v].map((x) => fixed(x)).join(', ')})`);
      for (const b of Object.keys(builds) as (keyof typeof builds)[]) {
        const share = median(cpu[`${b} on`]) - median(cpu[`${b} off`]);
        const paired = cpu[`${b} on`].map((x, i) => x - cpu[`${b} off`][i]!);
        note(`${b}: statistics cost ${fixed(share)} CPU s/100k = ${fixed(share * 10)} µs/row (paired per round: ${paired.map((x) => fixed(x * 10)).join(', ')} µs/row)`);
      }
    }

    // 2. Start-up, the queue now empty.
    const startup: Record<string, number[]> = {};
    const measure = async (label: string, run: () => Promise<{ code: number | null; userS: number; sysS: number; stderr: string }>) => {
      const r = await run();
      if (r.code !== 0) throw new Error(`${label}: exit ${r.code}: ${r.stderr}`);
      (startup[label] ??= []).push(r.userS + r.sysS);
    };
    for (let i = 0; i < Number(values['startup-runs']); i++) {
      const order = (i % 2 === 0 ? ['baseline', 'current'] : ['current', 'baseline']) as (keyof typeof builds)[];
      for (const b of order) {
        await measure(`${b} poll --once (empty queue)`, () => pollOnce({ cli: builds[b], dbUrl: db.url, collectorUrl: collector.url }));
        await measure(`${b} --help`, () => runMeasured([builds[b], '--help'], { nodeFlags: probeNodeFlags() }));
      }
    }
    for (const [label, s] of Object.entries(startup)) note(`${label}: median ${fixed(median(s) * 1000, 0)} ms CPU (runs ${s.map((x) => fixed(x * 1000, 0)).join(', ')})`);
  } finally {
    await collector.stop();
    await db.drop();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
