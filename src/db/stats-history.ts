/**
 * The SQL of the statistics' history (issue 14; sql/migrations/010_stats_day.sql): one hour of
 * a billing table counted into stats_hour and stats_day, in the database, by one aggregate
 * statement (GROUP BY in SQL: no billing row travels to the probe), and the hours already
 * counted (stats_history). The engine around it (which hours, the pause between them, the
 * installation time that bounds them) is src/features/statistics/history.ts.
 *
 * The statement classifies a row as the mapping and the statistics' keys do
 * (src/record/mapping.ts, src/features/statistics/keys.ts) as far as SQL can without the
 * identity files; the differences are listed in docs/DASHBOARD.md ("History").
 */
import pg from 'pg';
import { column, meaningful, type BillingColumns } from './billing';
import type { BillingSource } from '../record/types';

/** Dimensions of the hour table and of the day table that the history fills (keys.ts, keysOf and dayKeysOf). */
const HOUR_ONLY = ['error', 'door_pool', 'duration_bin', 'rate_bin'];
const DAY_ONLY = ['storage_class', 'vo_direction', 'storage_class_direction'];
const BOTH = ['all', 'direction', 'protocol', 'vo', 'pool', 'door'];

/**
 * One hour's rows of `source` as per-row facts: end time, direction, protocol, VO, storage
 * class, pool, door, status, bytes, duration. $1: the hour's start, $2: its end (the
 * installation time if earlier). Pool-to-pool rows, rows without a transaction and (storageinfo)
 * other actions than store/restore are left out, as the delivery leaves them out; copies of one
 * transaction (its delivery key) count once, as the delivery's dedup counts them.
 */
function factsSql(billingSchema: string, source: BillingSource, cols: BillingColumns, opts: { onlyInterSite: boolean }): string {
  const schema = pg.escapeIdentifier(billingSchema);
  const c = (name: string, type?: string) => column(cols[source], 'b', name, type);
  const window = `b.datestamp >= $1::timestamptz AND b.datestamp < $2::timestamptz AND btrim(coalesce(b.transaction, '')) <> ''`;
  if (source === 'storageinfo') {
    return `
      SELECT DISTINCT ON (b.transaction)
             b.datestamp::timestamptz + make_interval(secs => (greatest(0, coalesce(${c('queuedtime', 'bigint')}, 0)) + greatest(0, coalesce(${c('connectiontime', 'bigint')}, 0))) / 1000.0) AS t,
             CASE WHEN ${meaningful(c('action'))} = 'store' THEN 'tape-flush' ELSE 'tape-stage' END AS direction,
             'HSM' AS protocol,
             NULL::text AS vo,
             coalesce(${meaningful(c('storageclass'))}, '(none)') AS storage_class,
             coalesce(${meaningful(c('cellname'))}, '(unknown)') AS pool,
             '(hsm)' AS door,
             trunc(coalesce(${c('errorcode', 'bigint')}, 0))::bigint AS status,
             greatest(0, coalesce(${c('fullsize', 'bigint')}, 0))::bigint AS bytes,
             greatest(0, coalesce(${c('connectiontime', 'bigint')}, 0))::bigint AS duration
        FROM ${schema}.storageinfo b
       WHERE ${window} AND ${meaningful(c('action'))} IN ('store', 'restore')
       ORDER BY b.transaction, b.datestamp, b.ctid`;
  }
  const d = (name: string, type?: string) => column(cols.doorinfo, 'd', name, type);
  const broken = `(${c('transfersize', 'bigint')} IS NULL OR ${c('transfersize', 'bigint')} < 0)`;
  const protocol = `coalesce(${meaningful(c('protocol'))}, '<unknown>')`;
  const door = cols.doorinfo.size
    ? `LEFT JOIN LATERAL (SELECT ${d('cellname')} AS cellname, ${d('fqan')} AS fqan FROM ${schema}.doorinfo d
                           WHERE d.transaction = b.initiator AND d.pnfsid = b.pnfsid ORDER BY d.datestamp, d.cellname LIMIT 1) d ON true`
    : 'LEFT JOIN (SELECT NULL::text AS cellname, NULL::text AS fqan) d ON true';
  return `
      SELECT DISTINCT ON (b.transaction)
             b.datestamp::timestamptz AS t,
             CASE WHEN ${c('isnew', 'boolean')} IS TRUE THEN 'write' ELSE 'read' END AS direction,
             ${protocol} AS protocol,
             substring(coalesce(${meaningful(c('fqan'))}, ${meaningful('d.fqan')}) FROM '^/([^/]+)') AS vo,
             coalesce(${meaningful(c('storageclass'))}, '(none)') AS storage_class,
             coalesce(${meaningful(c('cellname'))}, '(unknown)') AS pool,
             coalesce(${meaningful('d.cellname')}, substring(${meaningful(c('initiator'))} FROM '^door:([^:]+)'), '(none)') AS door,
             trunc(coalesce(${c('errorcode', 'bigint')}, 0))::bigint AS status,
             CASE WHEN ${broken} THEN 0 ELSE ${c('transfersize', 'bigint')} END::bigint AS bytes,
             CASE WHEN ${broken} THEN 0 ELSE greatest(0, coalesce(${c('connectiontime', 'bigint')}, 0)) END::bigint AS duration
        FROM ${schema}.billinginfo b
        ${door}
       WHERE ${window} AND ${c('p2p', 'boolean')} IS NOT TRUE
             ${opts.onlyInterSite ? `AND ${protocol} !~* '^dcap'` : ''}
       ORDER BY b.transaction, b.datestamp, b.ctid`;
}

/** log2 bin as keys.ts's durationBin / rateBin, two digits. */
function bin(expr: string, max: number): string {
  return `lpad((CASE WHEN (${expr}) < 2 THEN 0 ELSE least(${max}, floor(log(2.0, (${expr})::numeric))) END)::int::text, 2, '0')`;
}

/**
 * The statement that counts one hour: the facts, each row's (dimension, key) pairs, their
 * sums per hour bucket and per day, upserted (in sorted key order, as the delivery's upsert,
 * so that the two cannot deadlock) into stats_hour (only buckets within its retention, $3
 * days) and stats_day; returns the rows counted. $1, $2: the datestamp range.
 */
export function hourSql(billingSchema: string, source: BillingSource, cols: BillingColumns, opts: { onlyInterSite: boolean }): string {
  const pairs = [
    ...BOTH.map((dim) => [dim, dim === 'all' ? "''" : dim === 'vo' ? "coalesce(f.vo, '(none)')" : `f.${dim}`, true, true] as const),
    ['error', 'f.status::text', true, false] as const,
    ['door_pool', "f.door || ' ' || f.pool", true, false] as const,
    ['duration_bin', bin('f.duration', 31), true, false] as const,
    ['rate_bin', `CASE WHEN f.status = 0 AND f.bytes > 0 AND f.duration > 0 THEN ${bin('f.bytes * 1000.0 / f.duration', 47)} END`, true, false] as const,
    ['storage_class', 'f.storage_class', false, true] as const,
    ['vo_direction', "coalesce(f.vo, '(none)') || ' ' || f.direction", false, true] as const,
    ['storage_class_direction', "f.storage_class || ' ' || f.direction", false, true] as const,
  ];
  if (pairs.length !== HOUR_ONLY.length + DAY_ONLY.length + BOTH.length) throw new Error('dimension lists disagree');
  const values = pairs.map(([dim, key, hour, day]) => `('${dim}', ${key}, ${hour}, ${day})`).join(',\n                     ');
  const sums = 'sum(transfers)::bigint, sum(bytes)::bigint, sum(errors)::bigint, sum(denied)::bigint, sum(duration_ms)::bigint';
  const add = `transfers = s.transfers + EXCLUDED.transfers, bytes = s.bytes + EXCLUDED.bytes, errors = s.errors + EXCLUDED.errors,
             denied = s.denied + EXCLUDED.denied, duration_ms = s.duration_ms + EXCLUDED.duration_ms`;
  return `
    WITH facts AS MATERIALIZED (${factsSql(billingSchema, source, cols, opts)}),
         counted AS MATERIALIZED (
           SELECT to_timestamp(floor(extract(epoch FROM f.t) / 3600) * 3600) AS bucket, (f.t AT TIME ZONE 'UTC')::date AS day,
                  p.dimension, p.key, p.in_hour, p.in_day,
                  count(*) AS transfers, sum(f.bytes) AS bytes, count(*) FILTER (WHERE f.status <> 0) AS errors,
                  count(*) FILTER (WHERE f.status = 10018) AS denied, sum(f.duration) AS duration_ms
             FROM facts f
             CROSS JOIN LATERAL (VALUES ${values}) AS p(dimension, key, in_hour, in_day)
            WHERE p.key IS NOT NULL
            GROUP BY 1, 2, 3, 4, 5, 6),
         hour AS (
           INSERT INTO dcache_probe.stats_hour AS s (bucket, dimension, key, transfers, bytes, errors, denied, duration_ms)
           SELECT bucket, dimension, key, ${sums} FROM counted
            WHERE in_hour AND bucket >= now() - make_interval(days => $3::int)
            GROUP BY bucket, dimension, key ORDER BY bucket, dimension COLLATE "C", key COLLATE "C"
           ON CONFLICT (bucket, dimension, key) DO UPDATE SET ${add}
           RETURNING 1),
         day AS (
           INSERT INTO dcache_probe.stats_day AS s (day, dimension, key, transfers, bytes, errors, denied, duration_ms)
           SELECT day, dimension, key, ${sums} FROM counted
            WHERE in_day AND (SELECT count(*) FROM hour) >= 0
            GROUP BY day, dimension, key ORDER BY day, dimension COLLATE "C", key COLLATE "C"
           ON CONFLICT (day, dimension, key) DO UPDATE SET ${add}
           RETURNING 1)
    SELECT (SELECT count(*) FROM facts)::bigint AS rows, (SELECT count(*) FROM day)::int AS day_rows`;
}

/** Counts one hour with the statement of hourSql; returns the billing rows counted. */
export async function countHour(client: pg.ClientBase, sql: string, fromMs: number, toMs: number, hourRetentionDays: number): Promise<number> {
  const { rows } = await client.query<{ rows: string }>(sql, [new Date(fromMs).toISOString(), new Date(toMs).toISOString(), Math.ceil(hourRetentionDays)]);
  return Number(rows[0]!.rows);
}

/**
 * Claims an hour for counting: true if it was not counted before (the mark is the claim, in
 * the caller's transaction; a second builder waits on it and then finds it taken).
 */
export async function claimHour(client: pg.ClientBase, source: BillingSource, hourMs: number): Promise<boolean> {
  const { rowCount } = await client.query(`INSERT INTO dcache_probe.stats_history (source, hour, rows) VALUES ($1, to_timestamp($2 / 1000.0), 0) ON CONFLICT DO NOTHING`, [source, hourMs]);
  return rowCount === 1;
}

/** Records how many billing rows the claimed hour counted. */
export async function markHour(client: pg.ClientBase, source: BillingSource, hourMs: number, rows: number): Promise<void> {
  await client.query(`UPDATE dcache_probe.stats_history SET rows = $3, built_at = now() WHERE source = $1 AND hour = to_timestamp($2 / 1000.0)`, [source, hourMs, rows]);
}

/** The hours of [from, to) of `source` already counted (epoch ms). */
export async function countedHours(db: pg.Pool | pg.ClientBase, source: BillingSource, fromMs: number, toMs: number): Promise<Set<number>> {
  const { rows } = await db.query<{ ms: string }>(
    `SELECT (extract(epoch FROM hour) * 1000)::bigint AS ms FROM dcache_probe.stats_history
      WHERE source = $1 AND hour >= to_timestamp($2 / 1000.0) AND hour < to_timestamp($3 / 1000.0)`,
    [source, fromMs, toMs],
  );
  return new Set(rows.map((r) => Number(r.ms)));
}

/** Bounds this transaction's statements (the builder's, not the probe's other sessions). */
export async function limitStatements(client: pg.ClientBase, timeoutMs: number): Promise<void> {
  await client.query(`SELECT set_config('statement_timeout', $1, true), set_config('lock_timeout', $2, true)`, [String(Math.round(timeoutMs)), '5000']);
}
