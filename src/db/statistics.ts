/**
 * The SQL of the transfer statistics (sql/migrations/004_stats.sql, 010_stats_day.sql): the upsert made inside
 * each delivery transaction (under a savepoint of its own), pruning, the reads of the
 * dashboard's API and of the detectors, and the alerts. Every statement of the statistics is
 * here, behind a named function with its values bound; what the rows mean (windows, series,
 * rankings, findings) is src/features/statistics/. Reads touch only these small tables, never dCache's
 * billing tables.
 */
import pg from 'pg';

/** What one row of counts holds (stats_minute, stats_hour). */
export interface Counts {
  transfers: number;
  bytes: number;
  /** errorcode <> 0 */
  errors: number;
  /** errorcode 10018 */
  denied: number;
  durationMs: number;
}

/** A row of counts of one bucket, dimension and key. */
export interface StatRow extends Counts {
  bucketMs: number;
  dimension: string;
  key: string;
}

/** When a key (a pool, a door, a user, a client network) was first and last seen (stats_seen). */
export interface SeenRow {
  dimension: string;
  key: string;
  firstMs: number;
  lastMs: number;
}

/** What a delivered batch adds to each table (day rows: bucketMs is the UTC day's midnight). */
export interface BatchRows {
  minute: StatRow[];
  hour: StatRow[];
  day: StatRow[];
  seen: SeenRow[];
}

/** The two tables of counts: per minute (recent windows) and per hour (the week, seasons). */
export type StatsTable = 'stats_minute' | 'stats_hour';

const table = (t: StatsTable) => `dcache_probe.${pg.escapeIdentifier(t)}`;

// ---------------------------------------------------------------------------------------
// Writes of the delivery

/** The tables a row of a batch is added to (TallyRow.tables, a mask). */
export const TO_MINUTE = 1;
export const TO_HOUR = 2;
export const TO_DAY = 4;

/**
 * A row of a batch as it is sent: counts of one bucket (the delivery sends minutes), dimension
 * and key, added to each table of `tables` in that table's bucket holding `bucketMs` (its hour,
 * its UTC day).
 */
export interface TallyRow extends StatRow {
  tables: number;
}

/** A delivered batch as the statement of upsertTallies takes it. */
export interface BatchTallies {
  rows: TallyRow[];
  /** One per (dimension, key). */
  seen: SeenRow[];
}

/** The sums of the batch's rows of one table, per bucket, dimension and key, upserted in sorted key order. */
function rollUp(t: StatsTable | 'stats_day', mask: number, earlier?: string): string {
  const [column, bucket] =
    t === 'stats_day' ? ['day', "(to_timestamp(u.b / 1000.0) AT TIME ZONE 'UTC')::date"] : t === 'stats_hour' ? ['bucket', 'to_timestamp(floor(u.b / 3600000.0) * 3600)'] : ['bucket', 'to_timestamp(u.b / 1000.0)'];
  // The part waits for `earlier` (by referring to it), so that the locks are taken in the parts' order.
  return `INSERT INTO dcache_probe.${pg.escapeIdentifier(t)} AS s (${column}, dimension, key, transfers, bytes, errors, denied, duration_ms)
      SELECT ${bucket}, u.d, u.k, sum(u.t), sum(u.y), sum(u.e), sum(u.n), sum(u.m) FROM u
       WHERE u.w & ${mask} <> 0${earlier ? ` AND (SELECT count(*) FROM ${earlier}) >= 0` : ''}
       GROUP BY 1, u.d, u.k ORDER BY 1, u.d COLLATE "C", u.k COLLATE "C"
      ON CONFLICT (${column}, dimension, key) DO UPDATE
         SET transfers = s.transfers + EXCLUDED.transfers, bytes = s.bytes + EXCLUDED.bytes, errors = s.errors + EXCLUDED.errors,
             denied = s.denied + EXCLUDED.denied, duration_ms = s.duration_ms + EXCLUDED.duration_ms
      RETURNING 1`;
}

/**
 * One statement for the whole batch: its rows (of minutes) summed into minute rows, then hour
 * rows, then day rows, then first/last seen, each in sorted key order (bucket, then dimension
 * and key in byte order; the later parts wait for the earlier ones by referring to them), so
 * two probes delivering at once take their row locks in the same order and cannot deadlock
 * (the history builder, src/db/stats-history.ts, writes hour then day rows in the same order).
 * The hour and day rows are summed here rather than sent: a third of the rows to send.
 */
export const UPSERT_SQL = `
  WITH u AS MATERIALIZED (
         SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[])
                    AS u(b, w, d, k, t, y, e, n, m)),
       minute AS (${rollUp('stats_minute', TO_MINUTE)}),
       hour AS (${rollUp('stats_hour', TO_HOUR, 'minute')}),
       day AS (${rollUp('stats_day', TO_DAY, 'hour')})
  INSERT INTO dcache_probe.stats_seen AS s (dimension, key, first_seen, last_seen)
  SELECT u.d, u.k, to_timestamp(u.f / 1000.0), to_timestamp(u.l / 1000.0)
    FROM unnest($10::text[], $11::text[], $12::bigint[], $13::bigint[]) AS u(d, k, f, l)
   WHERE (SELECT count(*) FROM day) >= 0
   ORDER BY u.d COLLATE "C", u.k COLLATE "C"
  ON CONFLICT (dimension, key) DO UPDATE
     SET first_seen = least(s.first_seen, EXCLUDED.first_seen), last_seen = greatest(s.last_seen, EXCLUDED.last_seen)`;

/** Adds a batch (src/features/statistics/keys.ts, batchTallies) to the four tables, in the caller's transaction. */
export async function upsertTallies(client: pg.ClientBase, batch: BatchTallies): Promise<void> {
  const { rows, seen } = batch;
  await client.query(UPSERT_SQL, [
    rows.map((r) => r.bucketMs),
    rows.map((r) => r.tables),
    rows.map((r) => r.dimension),
    rows.map((r) => r.key),
    rows.map((r) => r.transfers),
    rows.map((r) => r.bytes),
    rows.map((r) => r.errors),
    rows.map((r) => r.denied),
    rows.map((r) => r.durationMs),
    seen.map((s) => s.dimension),
    seen.map((s) => s.key),
    seen.map((s) => Math.round(s.firstMs)),
    seen.map((s) => Math.round(s.lastMs)),
  ]);
}

/** Adds rows given per table (day rows: bucketMs is the UTC day's midnight) to the four tables, in the caller's transaction. */
export function upsertBatchRows(client: pg.ClientBase, rows: BatchRows): Promise<void> {
  const to = (table: number) => (r: StatRow): TallyRow => ({ ...r, tables: table });
  return upsertTallies(client, { rows: [...rows.minute.map(to(TO_MINUTE)), ...rows.hour.map(to(TO_HOUR)), ...rows.day.map(to(TO_DAY))], seen: rows.seen });
}

/**
 * Runs `work` inside the delivery's open transaction under a savepoint: if it fails, what it
 * did is undone and the delivery's own work stands; its error is returned (for the caller to
 * count and log), not thrown. If the savepoint itself cannot be taken, released or rolled
 * back to, that is thrown: the delivery's transaction is then not sound and must fail.
 *
 * Not inTransaction (src/db/pool.ts): there is no transaction to begin here, the delivery holds
 * it. It is the probe's own transaction on its own tables, so the savepoint is ours to take;
 * dCache's inserts (the capture triggers) never run under one.
 */
export async function underStatisticsSavepoint(client: pg.ClientBase, work: () => Promise<unknown>): Promise<{ failed: unknown } | undefined> {
  await client.query('SAVEPOINT dcache_probe_stats');
  try {
    await work();
  } catch (err) {
    await client.query('ROLLBACK TO SAVEPOINT dcache_probe_stats');
    await client.query('RELEASE SAVEPOINT dcache_probe_stats');
    return { failed: err };
  }
  await client.query('RELEASE SAVEPOINT dcache_probe_stats');
  return undefined;
}

export interface PruneResult {
  minute: number;
  hour: number;
  day: number;
  /** stats_removal_day rows (011); the days' marks stay, so that no pruned day is counted again. */
  removalDays: number;
  seen: number;
  alerts: number;
}

/** Deletes what is older than its retention (whole hours and days). */
export async function pruneStatistics(pool: pg.Pool, keep: { minuteHours: number; hourDays: number; dayDays: number; alertDays: number }): Promise<PruneResult> {
  const q = async (sql: string, value: number) => (await pool.query(sql, [value])).rowCount ?? 0;
  return {
    minute: await q(`DELETE FROM dcache_probe.stats_minute WHERE bucket < now() - make_interval(hours => $1::int)`, keep.minuteHours),
    hour: await q(`DELETE FROM dcache_probe.stats_hour WHERE bucket < now() - make_interval(days => $1::int)`, keep.hourDays),
    day: await q(`DELETE FROM dcache_probe.stats_day WHERE day < (now() AT TIME ZONE 'UTC')::date - $1::int`, keep.dayDays),
    removalDays: await q(`DELETE FROM dcache_probe.stats_removal_day WHERE day < (now() AT TIME ZONE 'UTC')::date - $1::int`, keep.dayDays),
    seen: await q(`DELETE FROM dcache_probe.stats_seen WHERE last_seen < now() - make_interval(days => $1::int)`, keep.hourDays),
    alerts: await q(`DELETE FROM dcache_probe.stats_alert WHERE closed_at < now() - make_interval(days => $1::int)`, keep.alertDays),
  };
}

// ---------------------------------------------------------------------------------------
// Reads of the dashboard and the detectors

interface CountRow {
  transfers: string;
  bytes: string;
  errors: string;
  denied: string;
  duration_ms: string;
}

const SUMS = 'sum(transfers)::bigint AS transfers, sum(bytes)::numeric AS bytes, sum(errors)::bigint AS errors, sum(denied)::bigint AS denied, sum(duration_ms)::numeric AS duration_ms';

/** A row's sums as numbers (no row: zeros). */
export function countsOf(r: Partial<CountRow> | undefined): Counts {
  return {
    transfers: Number(r?.transfers ?? 0),
    bytes: Number(r?.bytes ?? 0),
    errors: Number(r?.errors ?? 0),
    denied: Number(r?.denied ?? 0),
    durationMs: Number(r?.duration_ms ?? 0),
  };
}

const RANGE = 'bucket >= to_timestamp($1 / 1000.0) AND bucket < to_timestamp($2 / 1000.0)';

export interface KeyCounts extends Counts {
  dimension: string;
  key: string;
}

/** Sums over [from, to) of dimension "all" and of each direction. */
export async function totalsByDirection(pool: pg.Pool, t: StatsTable, fromMs: number, toMs: number): Promise<KeyCounts[]> {
  const { rows } = await pool.query<CountRow & { dimension: string; key: string }>(
    `SELECT dimension, key, ${SUMS} FROM ${table(t)} WHERE ${RANGE} AND dimension IN ('all', 'direction') GROUP BY dimension, key ORDER BY dimension, key`,
    [fromMs, toMs],
  );
  return rows.map((r) => ({ dimension: r.dimension, key: r.key, ...countsOf(r) }));
}

/** The first bucket the table holds (epoch s), null when it is empty. */
export async function firstBucketSeconds(pool: pg.Pool, t: StatsTable): Promise<number | null> {
  const { rows } = await pool.query<{ t: string | null }>(`SELECT extract(epoch FROM min(bucket))::bigint AS t FROM ${table(t)} WHERE dimension = 'all'`);
  return rows[0]?.t == null ? null : Number(rows[0].t);
}

/** A dimension's sums over [from, to) per key and step of `stepSeconds` (t: the step's start, epoch s). */
export async function stepCounts(pool: pg.Pool, t: StatsTable, fromMs: number, toMs: number, stepSeconds: number, dimension: string): Promise<(Counts & { key: string; t: number })[]> {
  const { rows } = await pool.query<CountRow & { key: string; t: string }>(
    `SELECT key, (floor(extract(epoch FROM bucket) / $3) * $3)::bigint AS t, ${SUMS}
       FROM ${table(t)} WHERE ${RANGE} AND dimension = $4 GROUP BY key, t`,
    [fromMs, toMs, stepSeconds, dimension],
  );
  return rows.map((r) => ({ key: r.key, t: Number(r.t), ...countsOf(r) }));
}

export type TopOrder = 'bytes' | 'transfers' | 'errors' | 'denied' | 'error_rate' | 'slowest';

const TOP_ORDER: Record<TopOrder, string> = {
  bytes: 'bytes DESC',
  transfers: 'transfers DESC',
  errors: 'errors DESC',
  denied: 'denied DESC',
  error_rate: 'errors::float8 / greatest(transfers, 1) DESC, errors DESC',
  slowest: 'bytes::float8 / greatest(duration_ms, 1) ASC',
};

/** The keys of a dimension ranked over [from, to). "slowest": lowest mean rate, keys with 10+ transfers. */
export async function topKeys(pool: pg.Pool, t: StatsTable, fromMs: number, toMs: number, dimension: string, by: TopOrder, limit: number): Promise<(Counts & { key: string })[]> {
  const { rows } = await pool.query<CountRow & { key: string }>(
    `SELECT * FROM (SELECT key, ${SUMS} FROM ${table(t)} WHERE ${RANGE} AND dimension = $3 GROUP BY key
       ${by === 'slowest' ? 'HAVING sum(transfers) >= 10 AND sum(duration_ms) > 0' : ''}) AS t
     ORDER BY ${TOP_ORDER[by]}, key LIMIT $4`,
    [fromMs, toMs, dimension, limit],
  );
  return rows.map((r) => ({ key: r.key, ...countsOf(r) }));
}

/** Transfers per key of a dimension over [from, to), by key (the histograms' bins). */
export async function transfersByKey(pool: pg.Pool, t: StatsTable, fromMs: number, toMs: number, dimension: string): Promise<{ key: string; transfers: number }[]> {
  const { rows } = await pool.query<{ key: string; transfers: string }>(
    `SELECT key, sum(transfers)::bigint AS transfers FROM ${table(t)} WHERE ${RANGE} AND dimension = $3 GROUP BY key ORDER BY key`,
    [fromMs, toMs, dimension],
  );
  return rows.map((r) => ({ key: r.key, transfers: Number(r.transfers) }));
}

/** Per key of the given dimensions, sums over [from, to) of the minute table. */
export async function windowCounts(pool: pg.Pool, dimensions: readonly string[], fromMs: number, toMs: number): Promise<Map<string, Map<string, Counts>>> {
  const { rows } = await pool.query<CountRow & { dimension: string; key: string }>(
    `SELECT dimension, key, ${SUMS} FROM dcache_probe.stats_minute WHERE ${RANGE} AND dimension = ANY($3::text[]) GROUP BY dimension, key`,
    [fromMs, toMs, dimensions],
  );
  const out = new Map<string, Map<string, Counts>>(dimensions.map((d) => [d, new Map()]));
  for (const r of rows) out.get(r.dimension)!.set(r.key, countsOf(r));
  return out;
}

/** A dimension's minute rows of one column over [from, to) (of the given keys only, if any); t in epoch ms. */
export async function minuteValues(pool: pg.Pool, dimension: string, column: 'bytes' | 'transfers', fromMs: number, toMs: number, keys?: readonly string[]): Promise<{ key: string; t: number; v: number }[]> {
  const { rows } = await pool.query<{ key: string; t: string; v: string }>(
    `SELECT key, (extract(epoch FROM bucket) * 1000)::bigint AS t, ${pg.escapeIdentifier(column)}::numeric AS v FROM dcache_probe.stats_minute
      WHERE ${RANGE} AND dimension = $3 ${keys ? 'AND key = ANY($4::text[])' : ''}`,
    keys ? [fromMs, toMs, dimension, keys] : [fromMs, toMs, dimension],
  );
  return rows.map((r) => ({ key: r.key, t: Number(r.t), v: Number(r.v) }));
}

/** The hour rows at the given hours (epoch ms) of dimension "all" and of the keys of `dimension`. */
export async function hourBytesAt(pool: pg.Pool, hoursMs: readonly number[], dimension: string, keys: readonly string[]): Promise<{ dimension: string; key: string; t: number; bytes: number }[]> {
  const { rows } = await pool.query<{ dimension: string; key: string; t: string; bytes: string }>(
    `SELECT dimension, key, (extract(epoch FROM bucket) * 1000)::bigint AS t, bytes::numeric AS bytes FROM dcache_probe.stats_hour
      WHERE bucket = ANY(SELECT to_timestamp(x / 1000.0) FROM unnest($1::bigint[]) AS x)
        AND (dimension = 'all' OR (dimension = $2 AND key = ANY($3::text[])))`,
    [hoursMs, dimension, keys],
  );
  return rows.map((r) => ({ dimension: r.dimension, key: r.key, t: Number(r.t), bytes: Number(r.bytes) }));
}

/**
 * Which of the given hours (epoch ms) hold any row of `dimension`: the hours it was counted in.
 * (The history builder counts some dimensions only, docs/DASHBOARD.md "History": an hour of
 * history has "all" rows but no "user" rows, and must not read as every user silent.)
 */
export async function hoursWithDimension(pool: pg.Pool, hoursMs: readonly number[], dimension: string): Promise<Set<number>> {
  const { rows } = await pool.query<{ t: string }>(
    `SELECT DISTINCT (extract(epoch FROM bucket) * 1000)::bigint AS t FROM dcache_probe.stats_hour
      WHERE bucket = ANY(SELECT to_timestamp(x / 1000.0) FROM unnest($1::bigint[]) AS x) AND dimension = $2`,
    [hoursMs, dimension],
  );
  return new Set(rows.map((r) => Number(r.t)));
}

/** The hour rows at the given hours (epoch ms) of the given dimensions (include "all" to know which hours the site had data). */
export async function hourCountsAt(pool: pg.Pool, hoursMs: readonly number[], dimensions: readonly string[]): Promise<(KeyCounts & { t: number })[]> {
  const { rows } = await pool.query<CountRow & { dimension: string; key: string; t: string }>(
    `SELECT dimension, key, (extract(epoch FROM bucket) * 1000)::bigint AS t, transfers, bytes, errors, denied, duration_ms FROM dcache_probe.stats_hour
      WHERE bucket = ANY(SELECT to_timestamp(x / 1000.0) FROM unnest($1::bigint[]) AS x) AND dimension = ANY($2::text[])`,
    [hoursMs, dimensions],
  );
  return rows.map((r) => ({ dimension: r.dimension, key: r.key, t: Number(r.t), ...countsOf(r) }));
}

/** The site's hour rows (dimension "all") over [from, to); t in epoch ms. */
export async function siteHours(pool: pg.Pool, fromMs: number, toMs: number): Promise<{ t: number; transfers: number; bytes: number }[]> {
  const { rows } = await pool.query<{ t: string; transfers: string; bytes: string }>(
    `SELECT (extract(epoch FROM bucket) * 1000)::bigint AS t, transfers, bytes::numeric AS bytes FROM dcache_probe.stats_hour WHERE ${RANGE} AND dimension = 'all' ORDER BY bucket`,
    [fromMs, toMs],
  );
  return rows.map((r) => ({ t: Number(r.t), transfers: Number(r.transfers), bytes: Number(r.bytes) }));
}

/** The first minute (epoch ms) at or after `fromMs` in which the site delivered anything, or null. */
export async function firstSiteMinuteSince(pool: pg.Pool, fromMs: number): Promise<number | null> {
  const { rows } = await pool.query<{ t: string | null }>(
    `SELECT (extract(epoch FROM min(bucket)) * 1000)::bigint AS t FROM dcache_probe.stats_minute WHERE dimension = 'all' AND bucket >= to_timestamp($1 / 1000.0)`,
    [fromMs],
  );
  return rows[0]?.t == null ? null : Number(rows[0].t);
}

/**
 * For each (user, split minute): the user's transfers in [from, split) and in [split, to), from
 * the minute table; one entry per split, in their order.
 */
export async function userTransfersAround(pool: pg.Pool, splits: readonly { user: string; splitMs: number }[], fromMs: number, toMs: number): Promise<{ before: number; since: number }[]> {
  if (splits.length === 0) return [];
  const { rows } = await pool.query<{ i: string; before: string; since: string }>(
    `SELECT c.i, coalesce(sum(m.transfers) FILTER (WHERE m.bucket < c.split), 0)::bigint AS before,
            coalesce(sum(m.transfers) FILTER (WHERE m.bucket >= c.split), 0)::bigint AS since
       FROM (SELECT i, u, to_timestamp(s / 1000.0) AS split FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS x(u, s, i)) AS c
       LEFT JOIN dcache_probe.stats_minute m
         ON m.dimension = 'user' AND m.key = c.u AND m.bucket >= to_timestamp($3 / 1000.0) AND m.bucket < to_timestamp($4 / 1000.0)
      GROUP BY c.i`,
    [splits.map((s) => s.user), splits.map((s) => s.splitMs), fromMs, toMs],
  );
  const out = splits.map(() => ({ before: 0, since: 0 }));
  for (const r of rows) out[Number(r.i) - 1] = { before: Number(r.before), since: Number(r.since) };
  return out;
}

export interface SeenRecord {
  dimension: string;
  key: string;
  firstMs: number;
  lastMs: number;
}

/** When each key of the given dimensions was first and last seen. */
export async function seen(pool: pg.Pool, dimensions: readonly string[]): Promise<SeenRecord[]> {
  const { rows } = await pool.query<{ dimension: string; key: string; f: string; l: string }>(
    `SELECT dimension, key, (extract(epoch FROM first_seen) * 1000)::bigint AS f, (extract(epoch FROM last_seen) * 1000)::bigint AS l
       FROM dcache_probe.stats_seen WHERE dimension = ANY($1::text[])`,
    [dimensions],
  );
  return rows.map((r) => ({ dimension: r.dimension, key: r.key, firstMs: Number(r.f), lastMs: Number(r.l) }));
}

// ---------------------------------------------------------------------------------------
// Alerts

export interface AlertRow {
  id: number;
  kind: string;
  dimension: string;
  key: string;
  message: string;
  evidence: Record<string, unknown>;
  openedAt: string;
  updatedAt: string;
  closedAt: string | null;
}

/** Open alerts, and those closed in the last `hours` (at most 200, open ones first). */
export async function alerts(pool: pg.Pool, hours = 24): Promise<AlertRow[]> {
  const { rows } = await pool.query(
    `SELECT id, kind, dimension, key, message, evidence, opened_at, updated_at, closed_at FROM dcache_probe.stats_alert
      WHERE closed_at IS NULL OR closed_at > now() - make_interval(hours => $1::int)
      ORDER BY closed_at IS NOT NULL, opened_at DESC LIMIT 200`,
    [hours],
  );
  return rows.map((r) => ({
    id: Number(r.id),
    kind: r.kind,
    dimension: r.dimension,
    key: r.key,
    message: r.message,
    evidence: r.evidence,
    openedAt: (r.opened_at as Date).toISOString(),
    updatedAt: (r.updated_at as Date).toISOString(),
    closedAt: r.closed_at ? (r.closed_at as Date).toISOString() : null,
  }));
}

/** Opens an alert for a finding, or refreshes the open one of its kind and key; `inserted`: it is new. */
export async function upsertAlert(pool: pg.Pool, f: { kind: string; dimension: string; key: string; message: string; evidence: unknown }): Promise<{ id: number; inserted: boolean } | undefined> {
  const { rows } = await pool.query<{ id: string; inserted: boolean }>(
    `INSERT INTO dcache_probe.stats_alert AS a (kind, dimension, key, message, evidence) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (kind, dimension, key) WHERE closed_at IS NULL
     DO UPDATE SET message = EXCLUDED.message, evidence = EXCLUDED.evidence, updated_at = now()
     RETURNING id, (xmax = 0) AS inserted`,
    [f.kind, f.dimension, f.key, f.message, JSON.stringify(f.evidence)],
  );
  return rows[0] && { id: Number(rows[0].id), inserted: rows[0].inserted };
}

export interface AlertKey {
  id: number;
  kind: string;
  dimension: string;
  key: string;
}

/** Closes the open alerts not refreshed for `clearAfterSeconds`; returns them. */
export async function closeStaleAlerts(pool: pg.Pool, clearAfterSeconds: number): Promise<AlertKey[]> {
  const { rows } = await pool.query<{ kind: string; dimension: string; key: string; id: string }>(
    `UPDATE dcache_probe.stats_alert SET closed_at = now() WHERE closed_at IS NULL AND updated_at < now() - make_interval(secs => $1::float8)
     RETURNING id, kind, dimension, key`,
    [clearAfterSeconds],
  );
  return rows.map((r) => ({ id: Number(r.id), kind: r.kind, dimension: r.dimension, key: r.key }));
}

/** Every open alert. */
export async function openAlerts(pool: pg.Pool): Promise<AlertKey[]> {
  const { rows } = await pool.query<{ id: string; kind: string; dimension: string; key: string }>('SELECT id, kind, dimension, key FROM dcache_probe.stats_alert WHERE closed_at IS NULL');
  return rows.map((r) => ({ id: Number(r.id), kind: r.kind, dimension: r.dimension, key: r.key }));
}
