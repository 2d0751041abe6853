/**
 * One drain: `workers` parallel delivery batches until no ready row is left (or the collector
 * is unavailable). Every worker ends before the drain does, also when one fails. Each claim
 * waits for the pacer first (src/pipeline/pacing.ts: the good citizen and the rows/s limit).
 */
import { emptyResult, type BatchResult, type Delivery } from './delivery';
import type { Pacer } from './pacing';

/**
 * Adds a batch's counts to a running total. Latencies are left out on purpose: each batch's go
 * to the metrics as it ends (the 'batch' event), and a total kept for a whole drain would grow
 * with the backlog: one number per row of a 1M-row catch-up, held until the drain ends.
 */
export function addResults(total: BatchResult, r: BatchResult): BatchResult {
  total.claimed += r.claimed;
  total.delivered += r.delivered;
  total.duplicates += r.duplicates;
  total.skipped += r.skipped;
  total.quarantined += r.quarantined;
  total.left += r.left;
  total.requests += r.requests;
  if (r.unavailable) total.unavailable = r.unavailable;
  return total;
}

/** Whether a batch (or drain) settled any row: the drain goes on only while it does. */
export function settledAny(r: BatchResult): boolean {
  return r.claimed > r.left;
}

export interface DrainOptions {
  workers: number;
  /** Abandons the collector request in flight. */
  signal: AbortSignal;
  /** True once the probe stops: no new batch is claimed. */
  stopping: () => boolean;
  /** Every batch that claimed rows, as it ends. */
  onBatch: (r: BatchResult) => void;
  /** Asked before every claim (none: claim at once). */
  pacer?: Pacer;
}

/** Delivers with `workers` parallel batches until no ready row is left. */
export async function drainQueue(delivery: Delivery, options: DrainOptions): Promise<BatchResult> {
  const total = emptyResult();
  const worker = async (): Promise<void> => {
    const pacer = options.pacer;
    while (!options.stopping() && !total.unavailable) {
      if (pacer && !(await pacer.beforeClaim(options.stopping))) return;
      if (pacer && total.unavailable) return pacer.afterBatch(null); // another worker found the collector down meanwhile
      let r: BatchResult | null = null;
      try {
        r = await delivery.deliverBatch(options.signal);
      } finally {
        pacer?.afterBatch(r);
      }
      addResults(total, r);
      if (r.claimed > 0) options.onBatch(r);
      // Stop only on a claim that settled nothing: under a steady load most claims are short,
      // and stopping on the first short one left a single worker draining while the backlog
      // grew. (Rows left queued, waiting for another lease, are looked at again later.)
      if (r.unavailable || !settledAny(r)) return;
    }
  };
  // Every worker ends before the drain does, also when one fails: a failed drain is retried
  // by a new cycle, which must not find the old workers still at it.
  const outcomes = await Promise.allSettled(Array.from({ length: options.workers }, worker));
  const failure = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  if (failure) throw failure.reason;
  return total;
}
