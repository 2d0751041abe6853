/**
 * The quarantine's SQL (dcache_probe.quarantine): listing, moving rows back to the capture
 * queue, deleting them. The operator's side of it (src/features/quarantine.ts) calls these; the
 * delivery's side (putting rows into quarantine) is the capture queue's (src/db/queue.ts).
 */
import type pg from 'pg';
import { deliveryKeySql } from './delivery-key';

/** Which rows: listed ids, or every row. */
export type Selection = { ids: readonly string[] } | { all: true };

export interface QuarantineSqlRow {
  id: string;
  source: string;
  stage: string;
  reason: string;
  transaction: string | null;
  captured_at: Date;
  quarantined_at: Date;
}

function where(selection: Selection): { clause: string; values: unknown[] } {
  return 'all' in selection ? { clause: 'true', values: [] } : { clause: 'id = ANY($1::bigint[])', values: [selection.ids] };
}

/** The first `limit` quarantined rows, oldest first. */
export async function selectQuarantined(db: pg.Pool | pg.ClientBase, limit: number): Promise<QuarantineSqlRow[]> {
  const { rows } = await db.query<QuarantineSqlRow>(
    `SELECT id, source, stage, reason, record ->> 'transaction' AS transaction, captured_at, quarantined_at
       FROM dcache_probe.quarantine ORDER BY id LIMIT $1`,
    [limit],
  );
  return rows;
}

/**
 * Moves the selected rows back into the capture queue (with their original capture time) and
 * releases their delivery keys; returns how many were moved. Run it in a transaction, with
 * wakeProbes (src/db/wake-up.ts) after it.
 */
export async function requeueQuarantined(client: pg.ClientBase, selection: Selection): Promise<number> {
  const { clause, values } = where(selection);
  const { rows } = await client.query<{ count: string }>(
    `WITH moved AS (DELETE FROM dcache_probe.quarantine WHERE ${clause} RETURNING id, source, captured_at, record),
          requeued AS (INSERT INTO dcache_probe.capture_queue (source, captured_at, record)
                       SELECT source, captured_at, record FROM moved ORDER BY id RETURNING 1),
          -- A held-back row kept its delivery key (so its duplicates stayed duplicates);
          -- release it, or the replay would be taken for a duplicate (src/db/delivery-key.ts).
          released AS (DELETE FROM dcache_probe.delivered_key
                        WHERE key IN (SELECT ${deliveryKeySql('source', "record ->> 'transaction'")} FROM moved))
     SELECT count(*) FROM requeued`,
    values,
  );
  return Number(rows[0]?.count ?? 0);
}


/** Deletes the selected rows for good; returns how many. */
export async function deleteQuarantined(db: pg.Pool | pg.ClientBase, selection: Selection): Promise<number> {
  const { clause, values } = where(selection);
  const { rowCount } = await db.query(`DELETE FROM dcache_probe.quarantine WHERE ${clause}`, values);
  return rowCount ?? 0;
}
