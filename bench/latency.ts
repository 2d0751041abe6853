/**
 * 2. Live latency: ten simulated dCache writers (src/tools/demo/simulator.ts: runWriters with
 * LiveTraffic's message stream and token-bucket pacing, transactions of 1..200 rows, door rows
 * before and after their movers) insert at a steady rate while `dcache-probe run` delivers to
 * the collector process (--keep records). For every reportable mover committed in the measured
 * window, latency = the collector's receivedAt of its record − the moment the writer's COMMIT
 * returned (both Date.now() on this machine). The queue depth is sampled throughout.
 */
import { loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type pg from 'pg';
import { LiveTraffic, runWriters, type Message } from '../src/tools/demo/simulator';
import { sleep, note } from './lib/env';
import { queueDepth } from './lib/db';
import { percentile, sorted } from './lib/stats';
import { startDaemon, type CollectorProcess } from './lib/proc';

export interface LatencyRun {
  /** "shipped", or the experiment's name. */
  probe: string;
  targetRowsPerS: number;
  /** Rows (billinginfo + doorinfo) committed per second during the measured window. */
  achievedRowsPerS: number;
  transfersMeasured: number;
  /** Measured transfers the collector never received (within the wait after the run). */
  missing: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Measured transfers that took longer than 1 s, and the five slowest (ms, and when in the window they were committed, s). */
  over1s: number;
  slowest: { ms: number; atS: number }[];
  /** Queue depth (rows) sampled every 250 ms in the measured window. */
  queueMax: number;
  queueMean: number;
  /** Mean depth in the last third of the window minus the first third (> 0: growing). */
  queueTrend: number;
  /** Least-squares slope of the depth over the window, rows per second (> 0: falling behind). */
  queueSlope: number;
  /** Delivered records per second at the collector, over the measured window. */
  deliveredPerS: number;
  probeCpuPerS: number;
  probePeakRssMb: number;
  /** The bench process's event-loop delay p99 (ms): how late a commit time can be stamped. */
  loopDelayP99Ms: number;
  windowS: number;
  loadAvg1: number;
  /** The probe's warning and error log lines (first 20). */
  probeWarnings: string[];
}

/** Least-squares slope of y over x. */
function slope(x: number[], y: number[]): number {
  const n = Math.min(x.length, y.length);
  if (n < 2) return NaN;
  const mx = x.reduce((a, b) => a + b, 0) / n;
  const my = y.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (x[i]! - mx) * (y[i]! - my);
    den += (x[i]! - mx) ** 2;
  }
  return den === 0 ? NaN : num / den;
}

export interface LatencyContext {
  pool: pg.Pool;
  dbUrl: string;
  collector: CollectorProcess;
}

export interface LatencyOptions {
  nodeFlags?: string[];
  /** Another CLI launcher (an experiment) instead of dist/src/cli/bin.js. */
  cli?: string;
  label?: string;
}

export async function latencyRun(ctx: LatencyContext, rate: number, warmupS: number, windowS: number, options: LatencyOptions = {}): Promise<LatencyRun> {
  await ctx.pool.query('TRUNCATE dcache_probe.capture_queue, dcache_probe.delivered_key');
  await ctx.collector.reset();
  const probe = await startDaemon({ dbUrl: ctx.dbUrl, collectorUrl: ctx.collector.url, cli: options.cli }, options.nodeFlags ?? []);
  const traffic = new LiveTraffic(rate);
  const committedAt = new Map<string, number>();
  const initiatorOf = new Map<string, string>();
  const doorsCommitted = new Set<string>();
  let windowStart = Infinity;
  let windowEnd = Infinity;
  let rowsInWindow = 0;
  const loop = monitorEventLoopDelay({ resolution: 5 });
  const onCommit = (messages: readonly Message[], at: number) => {
    traffic.onCommit(messages);
    if (at >= windowStart && at < windowEnd) rowsInWindow += messages.length;
    for (const m of messages) {
      if (m.table === 'doorinfo') doorsCommitted.add(m.row.transaction as string);
      if (m.table !== 'billinginfo' || m.row.p2p === true) continue;
      const id = m.row.transaction as string;
      if (!committedAt.has(id)) {
        committedAt.set(id, at); // a second copy (two billing cells) is a duplicate
        initiatorOf.set(id, String(m.row.initiator ?? ''));
      }
    }
  };
  const writers = runWriters((n) => traffic.take(n), {
    url: ctx.dbUrl,
    writers: 10,
    maxTransactionRows: 200,
    beforeTransaction: (rows) => traffic.pace(rows),
    onCommit,
  });
  let failed: unknown = null;
  writers.catch((err) => (failed = err));

  const depths: number[] = [];
  const depthAt: number[] = [];
  let cpu0 = 0;
  let delivered0 = 0;
  try {
    await sleep(warmupS * 1000);
    windowStart = Date.now();
    windowEnd = windowStart + windowS * 1000;
    cpu0 = probe.cpuSeconds() ?? 0;
    delivered0 = (await ctx.collector.stats()).recordsAccepted;
    loop.enable();
    while (Date.now() < windowEnd) {
      if (failed) throw failed;
      depths.push(await queueDepth(ctx.pool));
      depthAt.push(Date.now() / 1000);
      await sleep(250);
    }
    loop.disable();
    // Keep writing a moment longer (not measured), so the door rows of the last measured
    // movers are written too, as they would be in dCache.
    await sleep(1500);
  } finally {
    traffic.stopped = true;
    await writers.catch(() => undefined);
  }
  const cpu1 = probe.cpuSeconds() ?? 0;
  const delivered1 = (await ctx.collector.stats()).recordsAccepted;
  const mem = probe.memoryKb();

  // The measured movers: committed inside the window. Wait until they have all arrived.
  const measured = [...committedAt.entries()].filter(([, at]) => at >= windowStart && at < windowEnd);
  // Wait (on the cheap stats) until every committed transfer that can be delivered now has
  // arrived (a mover whose door row was never written waits doorGraceSeconds), then read the
  // records once: with --keep records that answer is large.
  const noDoor = (initiator: string) => initiator === '' || initiator === '<undefined>' || initiator.startsWith('pool:');
  const deliverable = [...initiatorOf.values()].filter((i) => noDoor(i) || doorsCommitted.has(i)).length;
  const deadline = Date.now() + 60_000;
  while ((await ctx.collector.stats()).uniqueRecords < deliverable && Date.now() < deadline) await sleep(250);
  const received = new Map<string, number>();
  for (const r of await ctx.collector.records()) if (!received.has(r.localJobId)) received.set(r.localJobId, r.receivedAt);
  await probe.stop();

  const latencies: number[] = [];
  const withTime: { ms: number; atS: number }[] = [];
  let missing = 0;
  for (const [id, at] of measured) {
    const got = received.get(id);
    if (got === undefined) missing++;
    else {
      latencies.push(got - at);
      withTime.push({ ms: got - at, atS: (at - windowStart) / 1000 });
    }
  }
  withTime.sort((a, b) => b.ms - a.ms);
  const s = sorted(latencies);
  const third = Math.max(1, Math.floor(depths.length / 3));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const result: LatencyRun = {
    probe: options.label ?? 'shipped',
    targetRowsPerS: rate,
    achievedRowsPerS: rowsInWindow / windowS,
    transfersMeasured: measured.length,
    missing,
    p50Ms: percentile(s, 50),
    p90Ms: percentile(s, 90),
    p99Ms: percentile(s, 99),
    maxMs: s[s.length - 1] ?? NaN,
    over1s: latencies.filter((l) => l > 1000).length,
    slowest: withTime.slice(0, 5).map((x) => ({ ms: x.ms, atS: Math.round(x.atS * 10) / 10 })),
    queueMax: Math.max(0, ...depths),
    queueMean: mean(depths),
    queueTrend: mean(depths.slice(-third)) - mean(depths.slice(0, third)),
    queueSlope: slope(depthAt, depths),
    deliveredPerS: (delivered1 - delivered0) / windowS,
    probeCpuPerS: (cpu1 - cpu0) / windowS,
    probePeakRssMb: (mem?.hwm ?? NaN) / 1024,
    loopDelayP99Ms: loop.percentile(99) / 1e6,
    windowS,
    loadAvg1: loadavg()[0] ?? NaN,
    probeWarnings: probe.output().split('\n').filter((l) => /^\S+\s+(warn|error)\b/.test(l)).slice(0, 20),
  };
  if (missing > 0) note(`latency at ${rate} rows/s: ${missing} measured transfers never reached the collector`);
  return result;
}
