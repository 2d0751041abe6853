/**
 * The SQL of the removals (issue 14; sql/migrations/011_removals.sql, docs/OUTLOOK.md "Growth"):
 * one UTC day of dCache's removal rows (doorinfo, action 'remove', no size) counted per storage
 * class into stats_removal_day, each removal sized by the latest successful write mover of its
 * file (billinginfo, same pnfsid, at or before the removal), by one statement in the database
 * (no billing row travels to the probe); the days already counted (stats_removal_counted); and
 * the reads of the outlook (removed bytes per day, the coverage).
 *
 * The write mover is found per removal through billinginfo's pnfsid index (LEFT JOIN LATERAL …
 * LIMIT 1): the cost is one index probe per removal, not a scan of billinginfo
 * (test/removals.test.ts checks the plan). The loop around it (which days, the pause, the
 * daily timer) is src/features/statistics/removals.ts.
 */
import pg from 'pg';
import { column, meaningful, type BillingColumns } from './billing';
import { DAY_MS } from '../lib';

/** The storage class of a removal whose write mover is not in the billing tables. */
export const UNKNOWN_STORAGE_CLASS = '(unknown)';

/**
 * The statement that counts one day: $1, $2 the day's start and end (timestamptz), $3 the day
 * (date). Successful remove rows (errorcode 0 or NULL), one per file (copies written by several
 * billing cells count once), each with the latest write mover of its pnfsid stamped at or
 * before it (isnew, not p2p, errorcode 0): its size (fullsize, else transfersize, when not
 * negative) and its storage class (as stats_day names it: '(none)' when the mover has none).
 * A storage class's row of that day, if one was left (its mark deleted by hand), is replaced;
 * returns the removals counted.
 */
export function removalDaySql(billingSchema: string, cols: BillingColumns): string {
  const schema = pg.escapeIdentifier(billingSchema);
  const b = (name: string, type?: string) => column(cols.billinginfo, 'b', name, type);
  const d = (name: string, type?: string) => column(cols.doorinfo, 'd', name, type);
  const size = `CASE WHEN ${b('fullsize', 'bigint')} >= 0 THEN ${b('fullsize', 'bigint')} WHEN ${b('transfersize', 'bigint')} >= 0 THEN ${b('transfersize', 'bigint')} END`;
  return `
    WITH removed AS MATERIALIZED (
           SELECT DISTINCT ON (coalesce(d.pnfsid::text, d.ctid::text)) d.pnfsid, d.datestamp
             FROM ${schema}.doorinfo d
            WHERE d.datestamp >= $1::timestamptz AND d.datestamp < $2::timestamptz
              AND d.action = 'remove' AND coalesce(${d('errorcode', 'bigint')}, 0) = 0
            ORDER BY coalesce(d.pnfsid::text, d.ctid::text), d.datestamp),
         sized AS MATERIALIZED (
           SELECT coalesce(w.storage_class, '${UNKNOWN_STORAGE_CLASS}') AS storage_class, w.bytes
             FROM removed r
             LEFT JOIN LATERAL (
               SELECT coalesce(${meaningful(b('storageclass'))}, '(none)') AS storage_class, (${size})::numeric AS bytes
                 FROM ${schema}.billinginfo b
                WHERE b.pnfsid = r.pnfsid AND b.datestamp <= r.datestamp
                  AND ${b('isnew', 'boolean')} IS TRUE AND ${b('p2p', 'boolean')} IS NOT TRUE AND ${b('errorcode', 'bigint')} = 0
                ORDER BY b.datestamp DESC
                LIMIT 1) w ON true),
         stored AS (
           INSERT INTO dcache_probe.stats_removal_day (day, storage_class, removals, sized, bytes)
           SELECT $3::date, storage_class, count(*), count(bytes), coalesce(sum(bytes), 0)
             FROM sized
            GROUP BY storage_class
            ORDER BY storage_class COLLATE "C"
           ON CONFLICT (day, storage_class) DO UPDATE SET removals = EXCLUDED.removals, sized = EXCLUDED.sized, bytes = EXCLUDED.bytes
           RETURNING 1)
    SELECT (SELECT count(*) FROM removed)::bigint AS removals, (SELECT count(*) FROM stored)::int AS day_rows`;
}

/**
 * Whether billinginfo has an index led by pnfsid (dCache's billinginfo_pnfsid_idx, since 2.6).
 * Without it every removal's write mover would be looked for by a scan: the step does not run.
 */
export async function hasPnfsidIndex(db: pg.Pool | pg.ClientBase, billingSchema: string): Promise<boolean> {
  const { rows } = await db.query<{ n: string }>(
    `SELECT count(*) AS n
       FROM pg_index i
       JOIN pg_class c ON c.oid = i.indrelid
       JOIN pg_namespace ns ON ns.oid = c.relnamespace
       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
      WHERE ns.nspname = $1 AND c.relname = 'billinginfo' AND a.attname = 'pnfsid' AND i.indisvalid`,
    [billingSchema],
  );
  return Number(rows[0]!.n) > 0;
}

/** Counts one day (YYYY-MM-DD, UTC) with the statement of removalDaySql; returns the removals counted. */
export async function countRemovalDay(client: pg.ClientBase, sql: string, day: string): Promise<number> {
  const start = Date.parse(`${day}T00:00:00Z`);
  const { rows } = await client.query<{ removals: string }>(sql, [new Date(start).toISOString(), new Date(start + DAY_MS).toISOString(), day]);
  return Number(rows[0]!.removals);
}

/** Claims a day for counting: true if it was not counted before (the mark is the claim, in the caller's transaction). */
export async function claimRemovalDay(client: pg.ClientBase, day: string): Promise<boolean> {
  const { rowCount } = await client.query(`INSERT INTO dcache_probe.stats_removal_counted (day, removals) VALUES ($1::date, 0) ON CONFLICT DO NOTHING`, [day]);
  return rowCount === 1;
}

/** Records how many removals the claimed day counted. */
export async function markRemovalDay(client: pg.ClientBase, day: string, removals: number): Promise<void> {
  await client.query(`UPDATE dcache_probe.stats_removal_counted SET removals = $2, counted_at = now() WHERE day = $1::date`, [day, removals]);
}

/** The days of [from, to) (YYYY-MM-DD) already counted. */
export async function countedRemovalDays(db: pg.Pool | pg.ClientBase, fromDay: string, toDay: string): Promise<Set<string>> {
  const { rows } = await db.query<{ day: string }>(
    `SELECT to_char(day, 'YYYY-MM-DD') AS day FROM dcache_probe.stats_removal_counted WHERE day >= $1::date AND day < $2::date`,
    [fromDay, toDay],
  );
  return new Set(rows.map((r) => r.day));
}

/**
 * The bytes removed per counted day of [since, until) (YYYY-MM-DD): of every storage class, or
 * of one. A counted day without removals is 0; a day not counted is not in the map.
 */
export async function removedBytesPerDay(pool: pg.Pool, storageClass: string | null, sinceDay: string, untilDay: string): Promise<Map<string, number>> {
  const { rows } = await pool.query<{ day: string; bytes: string }>(
    `SELECT to_char(c.day, 'YYYY-MM-DD') AS day, coalesce(sum(r.bytes), 0)::numeric AS bytes
       FROM dcache_probe.stats_removal_counted c
       LEFT JOIN dcache_probe.stats_removal_day r ON r.day = c.day AND ($3::text IS NULL OR r.storage_class = $3)
      WHERE c.day >= $1::date AND c.day < $2::date
      GROUP BY c.day ORDER BY c.day`,
    [sinceDay, untilDay, storageClass],
  );
  return new Map(rows.map((r) => [r.day, Number(r.bytes)]));
}

/** The site's removals over the counted days of [since, until): how many days, removals, and removals sized. */
export async function removalTotals(pool: pg.Pool, sinceDay: string, untilDay: string): Promise<{ days: number; removals: number; sized: number }> {
  const { rows } = await pool.query<{ days: string; removals: string; sized: string }>(
    `SELECT (SELECT count(*) FROM dcache_probe.stats_removal_counted WHERE day >= $1::date AND day < $2::date) AS days,
            coalesce(sum(removals), 0) AS removals, coalesce(sum(sized), 0) AS sized
       FROM dcache_probe.stats_removal_day WHERE day >= $1::date AND day < $2::date`,
    [sinceDay, untilDay],
  );
  const r = rows[0]!;
  return { days: Number(r.days), removals: Number(r.removals), sized: Number(r.sized) };
}

/** The plan of one day's statement (EXPLAIN, not run): for the tests and for an operator's check. */
export async function explainRemovalDay(db: pg.Pool | pg.ClientBase, sql: string, day: string): Promise<string> {
  const start = Date.parse(`${day}T00:00:00Z`);
  const { rows } = await db.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`, [new Date(start).toISOString(), new Date(start + DAY_MS).toISOString(), day]);
  return rows.map((r) => r['QUERY PLAN']).join('\n');
}
