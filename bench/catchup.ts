/**
 * 1. Catch-up: N captured rows (with their door rows) wait in the queue; `dcache-probe poll
 * --once` runs as a child process until the queue is empty. Measured: rows/s, the probe's own
 * CPU per 100k rows, its peak RSS, and (approximately) the CPU of its PostgreSQL backends and
 * of the collector process.
 */
import { loadavg } from 'node:os';
import type pg from 'pg';
import { BackendCpu, cpuSeconds, pollOnce, type CollectorProcess } from './lib/proc';
import { queueDepth, restoreQueue } from './lib/db';
import { sleep } from './lib/env';

export interface CatchupRun {
  /** "shipped", or the experiment's name. */
  probe: string;
  rows: number;
  bundleSize: number;
  workers: number;
  delivered: number;
  left: number;
  exitCode: number | null;
  wallS: number;
  /** rows / wall time of the probe process (start-up and connection included). */
  rowsPerS: number;
  /** rows / time from the first to the last accepted bundle (start-up excluded). */
  steadyRowsPerS: number;
  probeCpuS: number;
  probeCpuPer100k: number;
  peakRssMb: number;
  rssSamplesMb: number[];
  pgBackendCpuPer100k: number;
  collectorCpuPer100k: number;
  /** Shared-buffer hits and reads (from the OS page cache or disk) per row, whole database. */
  blocksHitPerRow: number;
  blocksReadPerRow: number;
  method: string;
  /** 1-minute load average at the end (2 CPUs; others share this machine). */
  loadAvg1: number;
}

async function blockCounters(pool: pg.Pool): Promise<{ hit: number; read: number }> {
  const { rows } = await pool.query<{ hit: string; read: string }>('SELECT blks_hit AS hit, blks_read AS read FROM pg_stat_database WHERE datname = current_database()');
  return { hit: Number(rows[0]?.hit ?? 0), read: Number(rows[0]?.read ?? 0) };
}

export interface CatchupContext {
  pool: pg.Pool;
  dbUrl: string;
  collector: CollectorProcess;
  /** Called once the queue is restored, right before the measured run starts (extra meters). */
  beforeRun?: () => Promise<void>;
}

/** One drain of the snapshot backlog (restoreQueue first). */
export async function catchupRun(ctx: CatchupContext, rows: number, bundleSize: number, workers: number, nodeFlags: string[] = [], cli?: string, label = 'shipped'): Promise<CatchupRun> {
  const depth = await restoreQueue(ctx.dbUrl);
  if (depth !== rows) throw new Error(`expected ${rows} queued rows, found ${depth}`);
  await ctx.collector.reset();
  await sleep(300); // the restoring backend has exited and flushed its statistics
  await ctx.beforeRun?.();
  const blocks0 = await blockCounters(ctx.pool);
  const collectorCpu0 = cpuSeconds(ctx.collector.pid) ?? 0;
  const backends = new BackendCpu(ctx.pool, 'dcache-probe');
  await backends.start();

  // Watch the collector to find when the first bundle arrived (start-up excluded).
  let firstAt: number | null = null;
  let watching = true;
  const watcher = (async () => {
    while (watching && firstAt === null) {
      const s = await ctx.collector.stats();
      if (s.recordsAccepted > 0) firstAt = Date.now();
      else await sleep(20);
    }
  })();

  const run = await pollOnce({ cli, dbUrl: ctx.dbUrl, collectorUrl: ctx.collector.url, bundleSize, workers }, { nodeFlags });
  watching = false;
  await watcher;
  const pgCpu = await backends.stop();
  const collectorCpu = (cpuSeconds(ctx.collector.pid) ?? 0) - collectorCpu0;
  const stats = await ctx.collector.stats();
  await sleep(300); // the probe's backends have exited and flushed their statistics
  const blocks1 = await blockCounters(ctx.pool);
  const left = await queueDepth(ctx.pool);
  if (run.code !== 0) process.stderr.write(run.stderr);
  const probeCpuS = run.userS + run.sysS;
  const steadyMs = stats.lastAcceptedAt !== null && firstAt !== null ? Math.max(1, stats.lastAcceptedAt - firstAt) : NaN;
  return {
    probe: label,
    rows,
    bundleSize,
    workers,
    delivered: stats.recordsAccepted,
    left,
    exitCode: run.code,
    wallS: run.wallMs / 1000,
    rowsPerS: rows / (run.wallMs / 1000),
    steadyRowsPerS: stats.recordsAccepted / (steadyMs / 1000),
    probeCpuS,
    probeCpuPer100k: (probeCpuS / rows) * 100_000,
    peakRssMb: run.peakRssMb,
    rssSamplesMb: run.rssSamplesMb,
    pgBackendCpuPer100k: (pgCpu / rows) * 100_000,
    collectorCpuPer100k: (collectorCpu / rows) * 100_000,
    blocksHitPerRow: (blocks1.hit - blocks0.hit) / rows,
    blocksReadPerRow: (blocks1.read - blocks0.read) / rows,
    method: run.method,
    loadAvg1: loadavg()[0] ?? NaN,
  };
}
