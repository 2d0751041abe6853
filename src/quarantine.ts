/**
 * The quarantine, for operators: rows that could not be encoded or that the collector refused,
 * kept with the reason. `retry` puts them back into the capture queue (with their original
 * capture time, so the record comes out as it would have); `drop` deletes them for good.
 */
import type pg from 'pg';
import { WAKE_CHANNEL } from './queue';

export interface QuarantinedRow {
  id: string;
  source: string;
  stage: string;
  reason: string;
  transaction: string | null;
  capturedAt: string;
  quarantinedAt: string;
}

/** Which rows: listed ids, or every row. */
export type Selection = { ids: readonly string[] } | { all: true };

function where(selection: Selection): { clause: string; values: unknown[] } {
  return 'all' in selection ? { clause: 'true', values: [] } : { clause: 'id = ANY($1::bigint[])', values: [selection.ids] };
}

export async function listQuarantine(db: pg.Pool, limit = 100): Promise<QuarantinedRow[]> {
  const { rows } = await db.query(
    `SELECT id, source, stage, reason, record ->> 'transaction' AS transaction, captured_at, quarantined_at
       FROM dcache_probe.quarantine ORDER BY id LIMIT $1`,
    [limit],
  );
  return rows.map((r) => ({
    id: String(r.id),
    source: r.source,
    stage: r.stage,
    reason: r.reason,
    transaction: r.transaction,
    capturedAt: new Date(r.captured_at).toISOString(),
    quarantinedAt: new Date(r.quarantined_at).toISOString(),
  }));
}

/** Moves the selected rows back to the capture queue and wakes a running probe. */
export async function retryQuarantine(db: pg.Pool, selection: Selection): Promise<number> {
  const { clause, values } = where(selection);
  const client = await db.connect();
  try {
    await client.query('BEGIN');
    const { rows } = await client.query<{ count: string }>(
      `WITH moved AS (DELETE FROM dcache_probe.quarantine WHERE ${clause} RETURNING id, source, captured_at, record),
            requeued AS (INSERT INTO dcache_probe.capture_queue (source, captured_at, record)
                         SELECT source, captured_at, record FROM moved ORDER BY id RETURNING 1),
            -- A held-back row kept its delivery key (so its duplicates stayed duplicates);
            -- release it, or the replay would be taken for a duplicate. Same key as deliveryKey().
            released AS (DELETE FROM dcache_probe.delivered_key
                          WHERE key IN (SELECT md5(source || ':' || (record ->> 'transaction'))::uuid FROM moved))
       SELECT count(*) FROM requeued`,
      values,
    );
    await client.query('SELECT pg_notify($1, $2)', [WAKE_CHANNEL, 'quarantine-retry']);
    await client.query('COMMIT');
    return Number(rows[0]?.count ?? 0);
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

export async function dropQuarantine(db: pg.Pool, selection: Selection): Promise<number> {
  const { clause, values } = where(selection);
  const { rowCount } = await db.query(`DELETE FROM dcache_probe.quarantine WHERE ${clause}`, values);
  return rowCount ?? 0;
}

export function formatQuarantine(rows: readonly QuarantinedRow[]): string {
  if (rows.length === 0) return 'the quarantine is empty\n';
  return rows.map((r) => `${r.id}\t${r.quarantinedAt}\t${r.source}\t${r.transaction ?? '-'}\t${r.stage}: ${r.reason}`).join('\n') + '\n';
}
