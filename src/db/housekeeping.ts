/**
 * What the running probe asks the database between drains: when to look at the queue again
 * (the movers waiting for their door row, leases that run out), and forgetting old state.
 */
import type pg from 'pg';

export interface QueueWaits {
  /** When the oldest queued row was captured (epoch ms); null when the queue is empty. */
  oldestCapturedMs: number | null;
  /** Milliseconds until the first claim's lease runs out; null when nothing is claimed. */
  leaseEndsInMs: number | null;
}

/** The oldest queued row and the lease that runs out first (for the door re-check). */
export async function queueWaits(pool: pg.Pool): Promise<QueueWaits> {
  const { rows } = await pool.query<{ ms: string | null; lease_ms: string | null }>(
    `SELECT floor(extract(epoch FROM min(captured_at)) * 1000)::bigint AS ms,
            (SELECT ceil(extract(epoch FROM min(leased_until) - now()) * 1000)::bigint FROM dcache_probe.claim) AS lease_ms
       FROM dcache_probe.capture_queue`,
  );
  return {
    oldestCapturedMs: rows[0]?.ms ? Number(rows[0].ms) : null,
    leaseEndsInMs: rows[0]?.lease_ms ? Number(rows[0].lease_ms) : null,
  };
}

/**
 * Housekeeping, a bounded chunk at a time: forgets delivered keys older than the dedup window,
 * and summary groups whose part was sent more than a week ago.
 */
export async function pruneOldState(db: pg.Pool, dedupWindowHours: number, chunk = 50_000): Promise<number> {
  const keys = await db.query(
    `DELETE FROM dcache_probe.delivered_key WHERE key IN (
       SELECT key FROM dcache_probe.delivered_key
        WHERE delivered_at < now() - make_interval(hours => $1) LIMIT $2)`,
    [dedupWindowHours, chunk],
  );
  const summaries = await db.query(
    `DELETE FROM dcache_probe.summary_group g USING dcache_probe.summary_state s
      WHERE g.hour = s.hour AND g.part <= s.parts_sent AND g.hour < now() - interval '7 days'`,
  );
  return (keys.rowCount ?? 0) + (summaries.rowCount ?? 0);
}
