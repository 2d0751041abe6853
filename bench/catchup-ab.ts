/**
 * Catch-up, this build's probe against another's, in one run (the machine is shared and noisy,
 * so only figures taken side by side compare):
 *
 *   npx tsc -p bench/tsconfig.json && node dist/bench/catchup-ab.js --baseline /work/wt/base/dist/src/cli/bin.js
 *        [--baseline-commit C] [--rows 100000] [--rounds 3]
 *
 * One bench database with `rows` captured rows (bench/lib/db.ts fillBacklog, ANALYZEd,
 * snapshotted); each run restores the queue and drains it with `poll --once` (bench/catchup.ts
 * catchupRun) against the project's collector (`--keep none`), alternating which build goes
 * first in each round. Reports the probe's CPU seconds per 100k rows (user+sys of its process),
 * rows/s and peak RSS, each run and the medians, and the ratios this build / baseline. The two
 * builds must share the schema (the database is migrated by this build).
 *
 * --baseline PATH is an already built CLI (dist/src/cli/bin.js); --baseline-commit C builds
 * commit C's src/ into a temporary directory (bench/lib/build.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_BUNDLE_SIZE } from '../src/config/schema';
import { catchupRun, type CatchupRun } from './catchup';
import { buildCommit } from './lib/build';
import { analyzeBilling, createBenchDatabase, fillBacklog, snapshotQueue } from './lib/db';
import { startCollector } from './lib/proc';
import { fixed, int, median } from './lib/stats';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      baseline: { type: 'string' },
      'baseline-commit': { type: 'string' },
      rows: { type: 'string', default: '100000' },
      rounds: { type: 'string', default: '3' },
    },
  });
  if (!values.baseline === !values['baseline-commit']) throw new Error('give --baseline PATH or --baseline-commit COMMIT');
  const rows = Number(values.rows);
  const tmp = mkdtempSync(join(tmpdir(), 'catchup-ab-'));
  const db = await createBenchDatabase('catchupab');
  const collector = await startCollector('none');
  try {
    const baselineCli = values.baseline ?? buildCommit(values['baseline-commit']!, tmp).cli;
    await fillBacklog(db.pool, rows, 'ab');
    await analyzeBilling(db.pool);
    await snapshotQueue(db.pool);
    const ctx = { pool: db.pool, dbUrl: db.url, collector };
    const builds = { baseline: baselineCli, current: undefined };
    const runs: Record<keyof typeof builds, CatchupRun[]> = { baseline: [], current: [] };
    for (let round = 0; round < Number(values.rounds); round++) {
      const order: (keyof typeof builds)[] = round % 2 === 0 ? ['baseline', 'current'] : ['current', 'baseline'];
      for (const build of order) {
        const r = await catchupRun(ctx, rows, DEFAULT_BUNDLE_SIZE, 2, [], builds[build], build);
        if (r.exitCode !== 0 || r.delivered !== rows) throw new Error(`${build}: exit ${r.exitCode}, ${r.delivered} of ${rows} delivered`);
        runs[build].push(r);
        process.stdout.write(
          `round ${round + 1} ${build.padEnd(8)} probe ${fixed(r.probeCpuPer100k).padStart(5)} CPU-s/100k  ${int(r.rowsPerS).padStart(7)} rows/s  RSS ${fixed(r.peakRssMb, 0)} MB  (PostgreSQL ${fixed(r.pgBackendCpuPer100k)}, collector ${fixed(r.collectorCpuPer100k)} CPU-s/100k; load ${fixed(r.loadAvg1, 1)})\n`,
        );
      }
    }
    const med = (b: keyof typeof builds, f: (r: CatchupRun) => number) => median(runs[b].map(f));
    const cpu = (r: CatchupRun) => r.probeCpuPer100k;
    const rate = (r: CatchupRun) => r.rowsPerS;
    for (const b of ['baseline', 'current'] as const) {
      const all = runs[b].map(cpu);
      process.stdout.write(`median   ${b.padEnd(8)} probe ${fixed(med(b, cpu))} CPU-s/100k (${fixed(Math.min(...all))}–${fixed(Math.max(...all))}), ${int(med(b, rate))} rows/s, RSS ${fixed(med(b, (r) => r.peakRssMb), 0)} MB\n`);
    }
    process.stdout.write(`ratio    current/baseline: probe CPU per row ${fixed(med('current', cpu) / med('baseline', cpu))}x, rows/s ${fixed(med('current', rate) / med('baseline', rate))}x\n`);
  } finally {
    await collector.stop();
    await db.drop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
