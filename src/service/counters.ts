/**
 * The probe's running totals (logged when `run` stops; the demo shows some). A BatchResult is
 * turned into counts once (batchCounts), and the totals and the metrics add those.
 */
import type { BatchResult } from '../pipeline/delivery';
import type { BatchCounts } from './interfaces';

export interface ProbeCounters {
  batches: number;
  delivered: number;
  duplicates: number;
  skipped: number;
  quarantined: number;
  requests: number;
  collectorUnavailable: number;
  lastDeliveryAt: number | null;
}

export function emptyCounters(): ProbeCounters {
  return { batches: 0, delivered: 0, duplicates: 0, skipped: 0, quarantined: 0, requests: 0, collectorUnavailable: 0, lastDeliveryAt: null };
}

/** The counts of one batch (latencies are left to the metrics, which take them one by one). */
export function batchCounts(r: BatchResult): BatchCounts {
  return { delivered: r.delivered, duplicates: r.duplicates, skipped: r.skipped, quarantined: r.quarantined, requests: r.requests, unavailable: Boolean(r.unavailable) };
}

/** Adds one batch's counts to the totals. */
export function addBatch(c: ProbeCounters, b: BatchCounts, now: number): void {
  c.batches++;
  c.delivered += b.delivered;
  c.duplicates += b.duplicates;
  c.skipped += b.skipped;
  c.quarantined += b.quarantined;
  c.requests += b.requests;
  if (b.unavailable) c.collectorUnavailable++;
  else c.lastDeliveryAt = now;
}
