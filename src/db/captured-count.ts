/**
 * How many rows the capture has queued so far: the capture queue's id sequence, read without
 * touching the queue (one catalog-cheap SELECT, no lock, not transactional: it counts inserts
 * as dCache makes them, before they commit). The good-citizen pacer (src/pipeline/pacing.ts)
 * reads dCache's insert rate from it, the rows-captured gauge shows it (src/db/status.ts); the
 * probe's role has SELECT on it (sql/grant.sql).
 */
import type pg from 'pg';

/** Rows queued since installation (a fresh sequence's last_value is its start, not yet used). */
export const CAPTURED_COUNT_SQL = 'SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS n FROM dcache_probe.capture_queue_id_seq';

/** The capture queue's id sequence now (rows queued since installation, give or take). */
export async function capturedCount(db: pg.Pool | pg.ClientBase): Promise<number> {
  const { rows } = await db.query<{ n: string }>(CAPTURED_COUNT_SQL);
  return Number(rows[0]?.n ?? 0);
}
