/** Shared steps of the reliability tests: write simulated transfers, read the queue. */
import { TransferGenerator, messageStream, writeMessages, type SimTransfer } from '../../src/tools/demo/simulator';
import type { CollectorProcess } from './collector';
import type { BillingDatabase } from './database';

export function simulate(count: number, seed: number, form: 'modern' | 'legacy' = 'modern', now: () => number = Date.now): SimTransfer[] {
  const generator = new TransferGenerator({ seed, form, now, duplicateShare: 0.02, p2pShare: 0.03 });
  return Array.from({ length: count }, () => generator.next());
}

/** Writes transfers like dCache (small transactions, door rows next to their movers). */
export async function write(db: BillingDatabase, transfers: readonly SimTransfer[], writers = 4): Promise<void> {
  await writeMessages(messageStream(transfers, 7, 0), { url: db.url, writers, maxTransactionRows: 20 });
}

/** Rows the triggers captured for these transfers: every mover copy but pool-to-pool ones. */
export function capturedRows(transfers: readonly SimTransfer[]): number {
  return transfers.filter((t) => t.reportable).reduce((n, t) => n + (t.duplicated ? 2 : 1), 0);
}

export function reportable(transfers: readonly SimTransfer[]): number {
  return transfers.filter((t) => t.reportable).length;
}

export async function queueDepth(db: BillingDatabase): Promise<number> {
  const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM dcache_probe.capture_queue');
  return rows[0]!.n;
}

export async function quarantineSize(db: BillingDatabase): Promise<number> {
  const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM dcache_probe.quarantine');
  return rows[0]!.n;
}

/** Fast retries, so outages in tests take seconds. */
export const FAST_RETRIES = ['--retry-base-ms', '50', '--retry-max-ms', '400', '--retry-budget', '1', '--collector-timeout', '2', '--door-grace', '5'];

/** For waitFor: the queue is empty and the collector accepted at least `n` records. */
export function deliveredAll(db: BillingDatabase, collector: CollectorProcess, n: number): () => Promise<boolean> {
  return async () => (await queueDepth(db)) === 0 && (await collector.stats()).recordsAccepted >= n;
}

/**
 * When the probe was installed in this database (epoch ms). Statistics count a row stamped
 * before it only once the history builder has (docs/DASHBOARD.md, "History"); a test of live
 * statistics stamps its traffic after it with the clock of liveAfter().
 */
export async function installedAtMs(db: BillingDatabase): Promise<number> {
  const { rows } = await db.query<{ ms: string }>('SELECT floor(extract(epoch FROM min(applied_at)) * 1000)::bigint AS ms FROM dcache_probe.schema_migration');
  return Number(rows[0]!.ms);
}

/**
 * The simulator's clock for live traffic after `installedMs`: now, but never so early that the
 * generator's clock skew (datestamps up to 3 s before its now) reaches back before the
 * installation.
 */
export function liveAfter(installedMs: number): () => number {
  return () => Math.max(Date.now(), installedMs + 3_500);
}
