/**
 * The catch-up, this build against another, in one run (issue 15 asks for "a third of the CPU
 * per record" and a catch-up rate against the COPY floor, measured paired: the machine is shared
 * and its speed drifts up to 3× between days, so only figures taken side by side compare):
 *
 *   npx tsc -p bench/tsconfig.json && node dist/bench/probe-ab.js --baseline-commit a758ecf
 *        [--rows 100000] [--rounds 3] [--workers 2] [--bundle-size 500]
 *
 * Each build gets its own scratch database with the modern billing fixture, installed by that
 * build's own `migrate` (so each reads the queue its own capture wrote, should their schemas
 * differ), filled with the same `rows` transfers through its own triggers and
 * snapshotted. Then, `rounds` times, alternating which goes first: the queue is restored and
 * that build's `dcache-probe poll --once` drains it to one shared collector process
 * (bench/catchup.ts catchupRun: rows/s over the process's life, its own CPU, its peak RSS, its
 * PostgreSQL backends' CPU, the collector's CPU), and right after it the COPY floor of that
 * database's backlog, restored again (bench/baselines.ts). Reports every run, the medians with their spread, and the
 * ratios current ÷ baseline of the same round.
 *
 * --baseline-commit C builds commit C's src/ (git archive, tsc) into a temporary directory;
 * --baseline PATH uses an already built dist/src/cli/bin.js instead.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_BUNDLE_SIZE } from '../src/config/schema';
import { copyFloor, type CopyFloor } from './baselines';
import { catchupRun, type CatchupRun } from './catchup';
import { buildCommit } from './lib/build';
import { analyzeBilling, createBenchDatabase, fillBacklog, restoreQueue, snapshotQueue, type BenchDatabase } from './lib/db';
import { CLI, RESULTS_DIR } from './lib/env';
import { startCollector } from './lib/proc';
import { fixed, int, summary, type Summary } from './lib/stats';

type Build = 'baseline' | 'current';

interface AbRun {
  build: Build;
  round: number;
  catchup: CatchupRun;
  floor: CopyFloor;
}

const spread = (s: Summary, f: (n: number) => string = int) => `${f(s.median)} (${f(s.min)}–${f(s.max)})`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      baseline: { type: 'string' },
      'baseline-commit': { type: 'string' },
      rows: { type: 'string', default: '100000' },
      rounds: { type: 'string', default: '3' },
      workers: { type: 'string', default: '2' },
      'bundle-size': { type: 'string', default: String(DEFAULT_BUNDLE_SIZE) },
    },
  });
  if (!values.baseline === !values['baseline-commit']) throw new Error('give --baseline PATH or --baseline-commit COMMIT');
  const rows = Number(values.rows);
  const rounds = Number(values.rounds);
  const workers = Number(values.workers);
  const bundleSize = Number(values['bundle-size']);
  const tmp = mkdtempSync(join(tmpdir(), 'probe-ab-'));
  const dbs: Partial<Record<Build, BenchDatabase>> = {};
  const collector = await startCollector('none');
  try {
    const cli: Record<Build, string> = { baseline: values.baseline ?? buildCommit(values['baseline-commit']!, tmp).cli, current: CLI };
    for (const build of ['baseline', 'current'] as const) {
      const db = await createBenchDatabase(`ab${build}`, { migrate: false });
      dbs[build] = db;
      execFileSync(process.execPath, [cli[build], 'migrate', '--db-url', db.url, '--log-level', 'warn'], { stdio: 'inherit' });
      const t0 = performance.now();
      await fillBacklog(db.pool, rows, `ab${build}`);
      process.stdout.write(`${build}: filled ${int(rows)} transfers through its own triggers in ${fixed((performance.now() - t0) / 1000, 1)} s\n`);
      await analyzeBilling(db.pool);
      await snapshotQueue(db.pool);
    }

    const runs: AbRun[] = [];
    for (let round = 0; round < rounds; round++) {
      const order: Build[] = round % 2 === 0 ? ['baseline', 'current'] : ['current', 'baseline'];
      for (const build of order) {
        const db = dbs[build]!;
        const catchup = await catchupRun({ pool: db.pool, dbUrl: db.url, collector }, rows, bundleSize, workers, [], cli[build], build);
        if (catchup.exitCode !== 0 || catchup.delivered !== rows || catchup.left !== 0) {
          throw new Error(`${build}: poll --once exited ${catchup.exitCode}, delivered ${catchup.delivered} of ${rows}, left ${catchup.left}`);
        }
        // The floor of the same backlog, restored (the run emptied the queue).
        await restoreQueue(db.url);
        const floor = await copyFloor(db.url, rows);
        runs.push({ build, round, catchup, floor });
        process.stdout.write(
          `round ${round + 1} ${build.padEnd(8)} ${int(catchup.rowsPerS).padStart(7)} rows/s = ${fixed(catchup.rowsPerS / floor.rowsPerS)} of COPY floor ${int(floor.rowsPerS)}; ` +
            `probe ${fixed(catchup.probeCpuPer100k)} CPU-s/100k, PostgreSQL ${fixed(catchup.pgBackendCpuPer100k)}, collector ${fixed(catchup.collectorCpuPer100k)}; peak RSS ${int(catchup.peakRssMb)} MB; load ${fixed(catchup.loadAvg1, 1)}\n`,
        );
      }
    }

    const of = (build: Build, f: (r: AbRun) => number) => summary(runs.filter((r) => r.build === build).map(f));
    const ratio = (f: (r: AbRun) => number) =>
      summary(runs.filter((r) => r.build === 'current').map((c) => f(c) / f(runs.find((b) => b.build === 'baseline' && b.round === c.round)!)));
    const figures: [string, (r: AbRun) => number, (n: number) => string][] = [
      ['rows/s', (r) => r.catchup.rowsPerS, int],
      ['÷ COPY floor (same database, right after)', (r) => r.catchup.rowsPerS / r.floor.rowsPerS, (n) => fixed(n)],
      ['COPY floor rows/s', (r) => r.floor.rowsPerS, int],
      ['probe CPU-s per 100k rows', (r) => r.catchup.probeCpuPer100k, (n) => fixed(n)],
      ['PostgreSQL (probe backends) CPU-s per 100k', (r) => r.catchup.pgBackendCpuPer100k, (n) => fixed(n)],
      ['collector CPU-s per 100k', (r) => r.catchup.collectorCpuPer100k, (n) => fixed(n)],
      ['peak RSS MB', (r) => r.catchup.peakRssMb, int],
    ];
    process.stdout.write(`\n${int(rows)} rows, bundle ${bundleSize} × ${workers} workers, ${rounds} rounds; medians (min–max)\n`);
    for (const [name, f, fmt] of figures) {
      process.stdout.write(`  ${name.padEnd(44)} baseline ${spread(of('baseline', f), fmt).padEnd(24)} current ${spread(of('current', f), fmt).padEnd(24)} current ÷ baseline ${spread(ratio(f), (n) => fixed(n))}\n`);
    }
    mkdirSync(RESULTS_DIR, { recursive: true });
    const file = join(RESULTS_DIR, `probe-ab-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, JSON.stringify({ rows, rounds, workers, bundleSize, baseline: values['baseline-commit'] ?? values.baseline, runs }, null, 2));
    process.stdout.write(`raw results: ${file}\n`);
  } finally {
    await collector.stop();
    for (const db of Object.values(dbs)) await db.drop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
