#!/usr/bin/env node
/**
 * DIAGNOSIS (bench only): the shipped `dcache-probe` CLI with timers around its steps, to see
 * where a delivery batch's time goes under load. Nothing in the product changes; the wrapped
 * functions are called as they are. At exit it writes a JSON summary to $DCACHE_BENCH_TRACE_FILE:
 * per step the number of calls and total milliseconds, wall time and event-loop utilisation.
 *   node dist/bench/experiments/trace.js run …   (same arguments as dcache-probe)
 * With DCACHE_BENCH_DRAIN_FIX=1 it also applies the drain change of experiments/drain-fix.ts.
 */
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import * as delivery from '../../src/pipeline/delivery';
import * as probe from '../../src/service/probe';
import * as queue from '../../src/db/queue';
import * as sender from '../../src/pipeline/sender';

type Anything = any; // eslint-disable-line @typescript-eslint/no-explicit-any
const steps: Record<string, { calls: number; ms: number; rows?: number }> = {};
const started = performance.now();

function timed(owner: Anything, name: string, label = name, rowsOf?: (result: Anything) => number): void {
  const original = owner[name];
  if (typeof original !== 'function') return;
  owner[name] = async function (this: Anything, ...args: Anything[]) {
    const t0 = performance.now();
    try {
      const result = await original.apply(this, args);
      const s = (steps[label] ??= { calls: 0, ms: 0 });
      s.calls++;
      s.ms += performance.now() - t0;
      if (rowsOf) s.rows = (s.rows ?? 0) + rowsOf(result);
      return result;
    } catch (err) {
      const s = (steps[`${label} (failed)`] ??= { calls: 0, ms: 0 });
      s.calls++;
      s.ms += performance.now() - t0;
      throw err;
    }
  };
}

const Q = (queue as Anything).CaptureQueue.prototype;
timed(Q, 'claimLock', 'db: claim lock');
timed(Q, 'expireLeases', 'db: expire leases');
timed(Q, 'pickAndLease', 'db: pick and lease');
timed(Q, 'leasedRows', 'db: leased rows', (r) => r.length);
timed(Q, 'renewAndReserve', 'db: renew lease, reserve keys');
timed(Q, 'renewLease', 'db: renew lease');
timed(Q, 'endLease', 'db: end lease');
timed(Q, 'remove', 'db: remove');
timed(Q, 'quarantine', 'db: quarantine');
timed((sender as Anything).CollectorSender.prototype, 'send', 'http: send');
timed((delivery as Anything).Delivery.prototype, 'deliverBatch', 'batch (all of it)', (r) => r.claimed);
timed(queue as Anything, 'captureBarrier', 'db: captureBarrier');
timed(queue as Anything, 'armWakeUp', 'db: armWakeUp');
const P = (probe as Anything).Probe.prototype;
timed(P, 'drain', 'drain', (r) => r.claimed);
for (const name of ['later', 'requestDrain']) {
  const original = P[name];
  if (typeof original !== 'function') continue;
  P[name] = function (this: Anything, ...args: Anything[]) {
    const s = (steps[`${name}()`] ??= { calls: 0, ms: 0 });
    s.calls++;
    if (name === 'later') s.ms += Number(args[0]) || 0; // the delay asked for
    if (name === 'requestDrain' && this.running) (steps['requestDrain() while running'] ??= { calls: 0, ms: 0 }).calls++;
    return original.apply(this, args);
  };
}

if (process.env.DCACHE_BENCH_DRAIN_FIX) require('./drain-fix-patch').applyDrainFix();

process.on('exit', () => {
  const file = process.env.DCACHE_BENCH_TRACE_FILE;
  if (!file) return;
  const elu = performance.eventLoopUtilization();
  writeFileSync(file, JSON.stringify({ wallMs: performance.now() - started, eventLoopUtilization: elu.utilization, steps }, null, 1));
});

// eslint-disable-next-line @typescript-eslint/no-require-imports
require('../../src/cli/bin').buildProgram().parseAsync(process.argv).catch((err: Error) => {
  process.stderr.write(`dcache-probe (trace): ${err.message}\n`);
  process.exit(1);
});
