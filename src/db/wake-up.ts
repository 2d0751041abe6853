/**
 * The wake-up protocol's probe side (sql/migrations/001_capture.sql explains it): the channel,
 * arming ("I am idle, the next capture should notify me"), the barrier that waits out captures
 * which may have read the old armed value, and the notification that wakes listening probes.
 */
import type pg from 'pg';

/** The channel the capture notifies and the listener listens on. */
export const WAKE_CHANNEL = 'dcache_probe';
/** Held in shared mode by capturing transactions, taken exclusively by captureBarrier. */
export const CAPTURE_LOCK = 7262627701;

/** Says "I am idle, the next capture should notify me". */
export async function armWakeUp(client: pg.Pool | pg.ClientBase): Promise<void> {
  await client.query("SELECT nextval('dcache_probe.wake_armed')");
}

/**
 * Waits until every capturing transaction that may have read the old armed value has ended
 * (they hold the capture lock in shared mode). One statement, in its own implicit transaction
 * (sql: dcache_probe.capture_barrier), bounded by a lock_timeout far below PostgreSQL's
 * deadlock_timeout, so dCache's writers are never held up for long; false means it timed out
 * and the caller should look at the queue again soon.
 */
export async function captureBarrier(db: pg.Pool | pg.ClientBase, timeoutMs = 200): Promise<boolean> {
  const { rows } = await db.query<{ clear: boolean }>('SELECT dcache_probe.capture_barrier($1) AS clear', [Math.max(1, Math.trunc(timeoutMs))]);
  return rows[0]?.clear === true;
}

/**
 * Wakes every listening probe (at the commit of the caller's transaction, if it is in one):
 * after rows reached the queue without the trigger (a backfill's copy, a quarantine retry) or
 * to test that LISTEN delivers at all. `payload` says why, for whoever reads it.
 */
export async function wakeProbes(db: pg.Pool | pg.ClientBase, payload = ''): Promise<void> {
  await db.query('SELECT pg_notify($1, $2)', [WAKE_CHANNEL, payload]);
}
