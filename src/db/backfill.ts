/**
 * The backfill's SQL (and poll mode's, which copies its datestamp windows the same way): the
 * classification and copy of a chunk of historic billing rows into the capture queue, and the
 * saved progress of a range in dcache_probe.backfill_progress. The engine around these
 * (chunking, throttling, reconnecting) is src/legacy/backfill.ts; the poll window's is
 * src/pipeline/poll-window.ts.
 */
import pg from 'pg';
import type { BillingSource } from '../record/types';
import { billingTable } from './billing';
import { deliveryKeySql } from './delivery-key';


/** A range's progress row: its key, one per source. Times are RFC 3339 text. */
export interface ProgressKey {
  since: string;
  until: string;
  source: BillingSource;
}

export interface Progress {
  last_datestamp: string | null;
  last_ctid: string | null;
  rows_scanned: string;
  rows_copied: string;
  finished_at: Date | null;
}

/** What a chunk did (or, counting, would do) with its rows, and where it ended. */
export interface ChunkRow {
  scanned: number;
  copied: number;
  already_sent: number;
  p2p: number;
  not_tape: number;
  no_transaction: number;
  last_datestamp: string | null;
  last_ctid: string | null;
}

/** Where a chunk starts: after this row (the saved progress), or at `since` when null. */
export interface ChunkStart {
  datestamp: string | null;
  ctid: string | null;
}

/** The saved datestamp is ISO text in the column's own type: the session reads and writes it the same way. */
export async function useIsoDateStyle(client: pg.ClientBase): Promise<void> {
  await client.query("SET DateStyle = 'ISO, YMD'");
}

const keyValues = (k: ProgressKey): unknown[] => [k.since, k.until, k.source];

/** The first migration's time: when the capture triggers were installed (epoch ms). */
export async function installationTimeMs(client: pg.ClientBase): Promise<number> {
  const { rows } = await client.query<{ ms: string }>('SELECT floor(extract(epoch FROM min(applied_at)) * 1000)::bigint AS ms FROM dcache_probe.schema_migration');
  return Number(rows[0]!.ms);
}

/** Creates the range's progress row unless it exists. */
export async function ensureProgress(client: pg.ClientBase, key: ProgressKey): Promise<void> {
  await client.query(`INSERT INTO dcache_probe.backfill_progress (range_since, range_until, source) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, keyValues(key));
}

/** Forgets the range's progress (--restart): it is scanned again from `since`. */
export async function resetProgress(client: pg.ClientBase, key: ProgressKey): Promise<void> {
  await client.query(
    `UPDATE dcache_probe.backfill_progress SET last_datestamp = NULL, last_ctid = NULL, rows_scanned = 0, rows_copied = 0,
            started_at = now(), updated_at = now(), finished_at = NULL
      WHERE range_since = $1 AND range_until = $2 AND source = $3`,
    keyValues(key),
  );
}

/** The range's saved progress (none yet: nothing done); `lock` serialises concurrent runs of the range. */
export async function readProgress(client: pg.ClientBase, key: ProgressKey, lock: boolean): Promise<Progress> {
  const none: Progress = { last_datestamp: null, last_ctid: null, rows_scanned: '0', rows_copied: '0', finished_at: null };
  const { rows } = await client.query<Progress>(
    `SELECT last_datestamp, last_ctid::text AS last_ctid, rows_scanned, rows_copied, finished_at FROM dcache_probe.backfill_progress
      WHERE range_since = $1 AND range_until = $2 AND source = $3 ${lock ? 'FOR UPDATE' : ''}`,
    keyValues(key),
  );
  return rows[0] ?? none;
}

/** Adds a chunk to the range's progress; `done` marks the range finished. */
export async function saveProgress(client: pg.ClientBase, key: ProgressKey, row: ChunkRow, done: boolean): Promise<void> {
  await client.query(
    `UPDATE dcache_probe.backfill_progress
        SET last_datestamp = coalesce($4, last_datestamp), last_ctid = coalesce($5::tid, last_ctid),
            rows_scanned = rows_scanned + $6, rows_copied = rows_copied + $7, updated_at = now(),
            finished_at = CASE WHEN $8::boolean THEN now() END
      WHERE range_since = $1 AND range_until = $2 AND source = $3`,
    [...keyValues(key), row.last_datestamp, row.last_ctid, row.scanned, row.copied, done],
  );
}

/**
 * The classification (and, unless counting, the copy) of the rows of one source in the range
 * after the saved position. Parameters: $1 since, $2 until, $3 source, $4 chunk size (NULL:
 * no limit, for counting), then $5 last datestamp and $6 last ctid (when resuming).
 *
 * Filtering is done here, in SQL, against the probe's own tables:
 *  - delivered: the row's delivery key in delivered_key, exactly the key the delivery computes
 *    (src/db/delivery-key.ts: the transaction as written, untrimmed);
 *  - waiting: the same source and transaction in capture_queue or quarantine (hash joins over
 *    those small tables; the delivered keys are probed by their primary key);
 *  - no transaction: absent or blank (btrim: spaces only); the delivery would refuse it.
 * A row skipped here would also be recognised by the delivery (its dedup key), but not sending
 * it at all keeps the counts honest and the queue short.
 */
export function chunkSql(table: string, opts: { resume: boolean; limited: boolean; copy: boolean }): string {
  const resume = opts.resume ? 'AND b.datestamp >= $5 AND (b.datestamp, b.ctid) > ($5, $6::tid)' : '';
  const scanned = `
    SELECT b.datestamp AS d, b.ctid AS tid, to_jsonb(b) AS record
      FROM ${table} b
     WHERE b.datestamp >= $1::timestamptz AND b.datestamp < $2::timestamptz ${resume}
     ${opts.limited ? 'ORDER BY b.datestamp, b.ctid' : ''} LIMIT $4::bigint`;
  const classified = `
    SELECT s.d, s.tid, s.record, CASE
             WHEN s.record ->> 'p2p' = 'true' THEN 'p2p'
             WHEN $3::text = 'storageinfo' AND coalesce(s.record ->> 'action', '') NOT IN ('store', 'restore') THEN 'not-tape'
             WHEN s.key IS NULL THEN 'no-transaction'
             WHEN k.key IS NOT NULL OR q.tx IS NOT NULL OR z.tx IS NOT NULL THEN 'already-sent'
             ELSE 'copy' END AS fate
      FROM (SELECT s0.*, s0.record ->> 'transaction' AS tx,
                   CASE WHEN btrim(coalesce(s0.record ->> 'transaction', '')) = '' THEN NULL
                        ELSE ${deliveryKeySql('$3::text', "s0.record ->> 'transaction'")} END AS key
              FROM scanned s0) s
      LEFT JOIN dcache_probe.delivered_key k ON k.key = s.key
      LEFT JOIN (SELECT DISTINCT record ->> 'transaction' AS tx FROM dcache_probe.capture_queue WHERE source = $3::text) q ON q.tx = s.tx
      LEFT JOIN (SELECT DISTINCT record ->> 'transaction' AS tx FROM dcache_probe.quarantine WHERE source = $3::text) z ON z.tx = s.tx`;
  const copied = opts.copy
    ? `, copied AS (
        INSERT INTO dcache_probe.capture_queue (source, record)
        SELECT $3::text, c.record FROM classified c WHERE c.fate = 'copy' ORDER BY c.d, c.tid
        RETURNING 1)`
    : '';
  const last = opts.limited
    ? `(SELECT s.d::text FROM scanned s ORDER BY s.d DESC, s.tid DESC LIMIT 1) AS last_datestamp,
       (SELECT s.tid::text FROM scanned s ORDER BY s.d DESC, s.tid DESC LIMIT 1) AS last_ctid`
    : 'NULL::text AS last_datestamp, NULL::text AS last_ctid';
  return `
    WITH scanned AS MATERIALIZED (${scanned}),
         classified AS MATERIALIZED (${classified})${copied}
    SELECT count(*)::int AS scanned,
           ${opts.copy ? '(SELECT count(*) FROM copied)::int' : "count(*) FILTER (WHERE fate = 'copy')::int"} AS copied,
           count(*) FILTER (WHERE fate = 'already-sent')::int AS already_sent,
           count(*) FILTER (WHERE fate = 'p2p')::int AS p2p,
           count(*) FILTER (WHERE fate = 'not-tape')::int AS not_tape,
           count(*) FILTER (WHERE fate = 'no-transaction')::int AS no_transaction,
           ${last}
      FROM classified`;
}

function chunkValues(key: ProgressKey, size: number | null, start: ChunkStart | null): unknown[] {
  const values: unknown[] = [...keyValues(key), size];
  if (start) values.push(start.datestamp, start.ctid);
  return values;
}

/** Copies up to `size` rows after `start` (in datestamp, ctid order) into the capture queue. */
export async function copyChunkRows(client: pg.ClientBase, table: string, key: ProgressKey, size: number, start: ChunkStart | null): Promise<ChunkRow> {
  const { rows } = await client.query<ChunkRow>(chunkSql(table, { resume: start !== null, limited: true, copy: true }), chunkValues(key, size, start));
  return rows[0]!;
}

/** Counts what copying every row after `start` would do (--dry-run); copies nothing. */
export async function countRangeRows(client: pg.ClientBase, table: string, key: ProgressKey, start: ChunkStart | null): Promise<ChunkRow> {
  const { rows } = await client.query<ChunkRow>(chunkSql(table, { resume: start !== null, limited: false, copy: false }), chunkValues(key, null, start));
  return rows[0]!;
}



/** Poll mode: where the last finished window ended (epoch ms), null before the first. */
export async function lastWindowEndMs(db: pg.Pool | pg.ClientBase): Promise<number | null> {
  const { rows } = await db.query<{ ms: string | null }>(
    'SELECT floor(extract(epoch FROM max(range_until)) * 1000)::bigint AS ms FROM dcache_probe.backfill_progress WHERE finished_at IS NOT NULL',
  );
  return rows[0]?.ms ? Number(rows[0].ms) : null;
}
