/**
 * The statistics tables (sql/migrations/004_stats.sql): the upsert made inside each delivery
 * transaction, pruning, and the read queries of the dashboard's API and of the detectors.
 * Reads touch only these small tables, never dCache's billing tables.
 */
import type pg from 'pg';
import type { DeliveredRecord } from '../delivery';
import { batchRows, HOUR_MS, MINUTE_MS, type Counts, type Retention, type StatRow } from './keys';

function columns(rows: readonly StatRow[]): unknown[] {
  return [
    rows.map((r) => r.bucketMs),
    rows.map((r) => r.dimension),
    rows.map((r) => r.key),
    rows.map((r) => r.transfers),
    rows.map((r) => r.bytes),
    rows.map((r) => r.errors),
    rows.map((r) => r.denied),
    rows.map((r) => r.durationMs),
  ];
}

function upsertInto(table: string, first: number): string {
  const p = (i: number) => `$${first + i}`;
  return `INSERT INTO dcache_probe.${table} AS s (bucket, dimension, key, transfers, bytes, errors, denied, duration_ms)
      SELECT to_timestamp(u.b / 1000.0), u.d, u.k, u.t, u.y, u.e, u.n, u.m
        FROM unnest(${p(0)}::bigint[], ${p(1)}::text[], ${p(2)}::text[], ${p(3)}::bigint[], ${p(4)}::bigint[], ${p(5)}::bigint[], ${p(6)}::bigint[], ${p(7)}::bigint[])
             WITH ORDINALITY AS u(b, d, k, t, y, e, n, m, ord)
       ORDER BY u.ord
      ON CONFLICT (bucket, dimension, key) DO UPDATE
         SET transfers = s.transfers + EXCLUDED.transfers, bytes = s.bytes + EXCLUDED.bytes, errors = s.errors + EXCLUDED.errors,
             denied = s.denied + EXCLUDED.denied, duration_ms = s.duration_ms + EXCLUDED.duration_ms
      RETURNING 1`;
}

/**
 * One statement for the whole batch: minute rows, then hour rows, then first/last seen, each
 * in sorted key order (the later parts wait for the earlier ones by referring to them), so
 * two probes delivering at once take their row locks in the same order and cannot deadlock.
 */
export const UPSERT_SQL = `
  WITH minute AS (${upsertInto('stats_minute', 1)}),
       hour AS (${upsertInto('stats_hour', 9).replace('ORDER BY u.ord', 'WHERE (SELECT count(*) FROM minute) >= 0 ORDER BY u.ord')})
  INSERT INTO dcache_probe.stats_seen AS s (dimension, key, first_seen, last_seen)
  SELECT u.d, u.k, to_timestamp(u.f / 1000.0), to_timestamp(u.l / 1000.0)
    FROM unnest($17::text[], $18::text[], $19::bigint[], $20::bigint[]) WITH ORDINALITY AS u(d, k, f, l, ord)
   WHERE (SELECT count(*) FROM hour) >= 0
   ORDER BY u.ord
  ON CONFLICT (dimension, key) DO UPDATE
     SET first_seen = least(s.first_seen, EXCLUDED.first_seen), last_seen = greatest(s.last_seen, EXCLUDED.last_seen)`;

/** Adds a delivered batch to the statistics (inside the caller's transaction). */
export async function recordBatch(client: pg.ClientBase, delivered: readonly DeliveredRecord[], retention: Retention, nowMs = Date.now()): Promise<number> {
  const rows = batchRows(delivered, nowMs, retention);
  if (rows.minute.length + rows.hour.length + rows.seen.length === 0) return 0;
  await client.query(UPSERT_SQL, [
    ...columns(rows.minute),
    ...columns(rows.hour),
    rows.seen.map((s) => s.dimension),
    rows.seen.map((s) => s.key),
    rows.seen.map((s) => Math.round(s.firstMs)),
    rows.seen.map((s) => Math.round(s.lastMs)),
  ]);
  return rows.minute.length + rows.hour.length + rows.seen.length;
}

export interface PruneResult {
  minute: number;
  hour: number;
  seen: number;
  alerts: number;
}

export async function prune(pool: pg.Pool, o: { minuteRetentionHours: number; hourRetentionDays: number; alertRetentionDays: number }): Promise<PruneResult> {
  const q = async (sql: string, value: number) => (await pool.query(sql, [value])).rowCount ?? 0;
  return {
    minute: await q(`DELETE FROM dcache_probe.stats_minute WHERE bucket < now() - make_interval(hours => $1::int)`, Math.ceil(o.minuteRetentionHours)),
    hour: await q(`DELETE FROM dcache_probe.stats_hour WHERE bucket < now() - make_interval(days => $1::int)`, Math.ceil(o.hourRetentionDays)),
    seen: await q(`DELETE FROM dcache_probe.stats_seen WHERE last_seen < now() - make_interval(days => $1::int)`, Math.ceil(o.hourRetentionDays)),
    alerts: await q(`DELETE FROM dcache_probe.stats_alert WHERE closed_at < now() - make_interval(days => $1::int)`, Math.ceil(o.alertRetentionDays)),
  };
}

// ---------------------------------------------------------------------------------------
// Windows

export type WindowName = 'hour' | 'day' | 'week';
export const WINDOWS: readonly WindowName[] = ['hour', 'day', 'week'];

export interface Window {
  name: WindowName;
  table: 'stats_minute' | 'stats_hour';
  /** First bucket included (epoch ms) and the end (exclusive). */
  fromMs: number;
  toMs: number;
  /** Step of the series (ms). */
  stepMs: number;
}

/**
 * The last hour (60 one-minute steps), day (144 ten-minute steps) or week (168 one-hour steps),
 * ending with the step that holds `nowMs`; steps are aligned to their length, so that every
 * bucket of the table falls into exactly one step.
 */
export function windowOf(name: WindowName, nowMs: number): Window {
  const [table, stepMs, steps] = name === 'week' ? (['stats_hour', HOUR_MS, 168] as const) : name === 'day' ? (['stats_minute', 10 * MINUTE_MS, 144] as const) : (['stats_minute', MINUTE_MS, 60] as const);
  const end = Math.floor(nowMs / stepMs) * stepMs + stepMs;
  return { name, table, fromMs: end - steps * stepMs, toMs: end, stepMs };
}

interface CountRow {
  transfers: string;
  bytes: string;
  errors: string;
  denied: string;
  duration_ms: string;
}

const SUMS = 'sum(transfers)::bigint AS transfers, sum(bytes)::numeric AS bytes, sum(errors)::bigint AS errors, sum(denied)::bigint AS denied, sum(duration_ms)::numeric AS duration_ms';

function counts(r: Partial<CountRow> | undefined): Counts {
  return {
    transfers: Number(r?.transfers ?? 0),
    bytes: Number(r?.bytes ?? 0),
    errors: Number(r?.errors ?? 0),
    denied: Number(r?.denied ?? 0),
    durationMs: Number(r?.duration_ms ?? 0),
  };
}

const RANGE = 'bucket >= to_timestamp($1 / 1000.0) AND bucket < to_timestamp($2 / 1000.0)';

/** Totals of a window (dimension "all"), per direction, and the error codes. */
export async function summary(pool: pg.Pool, w: Window) {
  const { rows } = await pool.query<CountRow & { dimension: string; key: string }>(
    `SELECT dimension, key, ${SUMS} FROM dcache_probe.${w.table} WHERE ${RANGE} AND dimension IN ('all', 'direction') GROUP BY dimension, key ORDER BY dimension, key`,
    [w.fromMs, w.toMs],
  );
  const total = counts(rows.find((r) => r.dimension === 'all'));
  const seconds = (w.toMs - w.fromMs) / 1000;
  return {
    window: w.name,
    from: new Date(w.fromMs).toISOString(),
    to: new Date(w.toMs).toISOString(),
    ...total,
    bytesPerSecond: total.bytes / seconds,
    errorRate: total.transfers ? total.errors / total.transfers : 0,
    deniedRate: total.transfers ? total.denied / total.transfers : 0,
    byDirection: Object.fromEntries(rows.filter((r) => r.dimension === 'direction').map((r) => [r.key, counts(r)])),
  };
}

export interface SeriesLine {
  key: string;
  transfers: number[];
  bytes: number[];
  errors: number[];
  denied: number[];
}

/**
 * A dimension's series over a window: the `limit` keys with the most bytes each on its own,
 * the rest summed as "(other)" (so the lines add up to the window's total). `dataSince` is
 * the first bucket the table holds (epoch s, null when empty): a window that starts before it
 * has no data there (the page starts its axis at it), rather than a quiet time.
 */
export async function series(pool: pg.Pool, w: Window, dimension: string, limit = 8) {
  const since = await pool.query<{ t: string | null }>(`SELECT extract(epoch FROM min(bucket))::bigint AS t FROM dcache_probe.${w.table} WHERE dimension = 'all'`);
  const step = w.stepMs / 1000;
  const { rows } = await pool.query<CountRow & { key: string; t: string }>(
    `SELECT key, (floor(extract(epoch FROM bucket) / $3) * $3)::bigint AS t, ${SUMS}
       FROM dcache_probe.${w.table} WHERE ${RANGE} AND dimension = $4 GROUP BY key, t`,
    [w.fromMs, w.toMs, step, dimension],
  );
  const n = Math.round((w.toMs - w.fromMs) / w.stepMs);
  const buckets = Array.from({ length: n }, (_, i) => (w.fromMs + i * w.stepMs) / 1000);
  const byKey = new Map<string, number>();
  for (const r of rows) byKey.set(r.key, (byKey.get(r.key) ?? 0) + Number(r.bytes) + Number(r.transfers) * 1e-9);
  const ranked = [...byKey.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([k]) => k);
  const shown = ranked.slice(0, limit);
  if (ranked.length > limit) shown.push('(other)');
  const lines = new Map<string, SeriesLine>(shown.map((key) => [key, { key, transfers: Array(n).fill(0), bytes: Array(n).fill(0), errors: Array(n).fill(0), denied: Array(n).fill(0) }]));
  for (const r of rows) {
    const line = lines.get(r.key) ?? lines.get('(other)')!;
    const i = Math.round((Number(r.t) * 1000 - w.fromMs) / w.stepMs);
    if (i < 0 || i >= n) continue;
    line.transfers[i]! += Number(r.transfers);
    line.bytes[i]! += Number(r.bytes);
    line.errors[i]! += Number(r.errors);
    line.denied[i]! += Number(r.denied);
  }
  const dataSince = since.rows[0]?.t == null ? null : Number(since.rows[0].t);
  return { window: w.name, dimension, stepSeconds: step, buckets, dataSince, series: [...lines.values()] };
}

export type TopOrder = 'bytes' | 'transfers' | 'errors' | 'denied' | 'error_rate' | 'slowest';

export interface TopRow extends Counts {
  key: string;
  errorRate: number;
  /** bytes per second of transfer time (sum of bytes / sum of durations). */
  meanRate: number | null;
}

/** The keys of a dimension ranked over a window. "slowest": lowest mean rate, keys with 10+ transfers. */
export async function top(pool: pg.Pool, w: Window, dimension: string, by: TopOrder, limit = 10): Promise<TopRow[]> {
  const order: Record<TopOrder, string> = {
    bytes: 'bytes DESC',
    transfers: 'transfers DESC',
    errors: 'errors DESC',
    denied: 'denied DESC',
    error_rate: 'errors::float8 / greatest(transfers, 1) DESC, errors DESC',
    slowest: 'bytes::float8 / greatest(duration_ms, 1) ASC',
  };
  const { rows } = await pool.query<CountRow & { key: string }>(
    `SELECT * FROM (SELECT key, ${SUMS} FROM dcache_probe.${w.table} WHERE ${RANGE} AND dimension = $3 GROUP BY key
       ${by === 'slowest' ? 'HAVING sum(transfers) >= 10 AND sum(duration_ms) > 0' : ''}) AS t
     ORDER BY ${order[by]}, key LIMIT $4`,
    [w.fromMs, w.toMs, dimension, limit],
  );
  return rows.map((r) => {
    const c = counts(r);
    return { key: r.key, ...c, errorRate: c.transfers ? c.errors / c.transfers : 0, meanRate: c.durationMs > 0 ? (c.bytes * 1000) / c.durationMs : null };
  });
}

/** Log2 histogram of durations (ms) or rates (bytes/s) over a window. */
export async function histogram(pool: pg.Pool, w: Window, metric: 'duration' | 'rate') {
  const { rows } = await pool.query<{ key: string; transfers: string }>(
    `SELECT key, sum(transfers)::bigint AS transfers FROM dcache_probe.${w.table} WHERE ${RANGE} AND dimension = $3 GROUP BY key ORDER BY key`,
    [w.fromMs, w.toMs, `${metric}_bin`],
  );
  return {
    window: w.name,
    metric,
    unit: metric === 'duration' ? 'ms' : 'bytes/s',
    bins: rows.map((r) => ({ lower: 2 ** Number(r.key), upper: 2 ** (Number(r.key) + 1), transfers: Number(r.transfers) })),
  };
}

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

/** Open alerts, and those closed in the last `hours`. */
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

// ---------------------------------------------------------------------------------------
// Reads of the detectors

/** Per key of the given dimensions, sums over [from, to) of the minute table. */
export async function windowCounts(pool: pg.Pool, dimensions: readonly string[], fromMs: number, toMs: number): Promise<Map<string, Map<string, Counts>>> {
  const { rows } = await pool.query<CountRow & { dimension: string; key: string }>(
    `SELECT dimension, key, ${SUMS} FROM dcache_probe.stats_minute WHERE ${RANGE} AND dimension = ANY($3::text[]) GROUP BY dimension, key`,
    [fromMs, toMs, dimensions],
  );
  const out = new Map<string, Map<string, Counts>>(dimensions.map((d) => [d, new Map()]));
  for (const r of rows) out.get(r.dimension)!.set(r.key, counts(r));
  return out;
}

/** A dimension's per-minute values of one column over [from, to), zero-filled, per key. */
export async function minuteSeries(pool: pg.Pool, dimension: string, column: 'bytes' | 'transfers', fromMs: number, toMs: number, keys?: readonly string[]): Promise<Map<string, number[]>> {
  const { rows } = await pool.query<{ key: string; t: string; v: string }>(
    `SELECT key, (extract(epoch FROM bucket) * 1000)::bigint AS t, ${column}::numeric AS v FROM dcache_probe.stats_minute
      WHERE ${RANGE} AND dimension = $3 ${keys ? 'AND key = ANY($4::text[])' : ''}`,
    keys ? [fromMs, toMs, dimension, keys] : [fromMs, toMs, dimension],
  );
  const n = Math.max(0, Math.round((toMs - fromMs) / MINUTE_MS));
  const out = new Map<string, number[]>();
  for (const k of keys ?? []) out.set(k, Array(n).fill(0));
  for (const r of rows) {
    let line = out.get(r.key);
    if (!line) out.set(r.key, (line = Array(n).fill(0)));
    const i = Math.round((Number(r.t) - fromMs) / MINUTE_MS);
    if (i >= 0 && i < n) line[i] = Number(r.v);
  }
  return out;
}

/**
 * Bytes of each key at the same hour of day on previous days (up to `days`), one value per
 * day on which the site delivered anything in that hour (0 for a key silent that day).
 */
export async function seasonalBytes(pool: pg.Pool, dimension: string, keys: readonly string[], nowMs: number, days: number): Promise<Map<string, number[]>> {
  const hour = Math.floor(nowMs / HOUR_MS) * HOUR_MS;
  const hours = Array.from({ length: days }, (_, i) => hour - (i + 1) * 24 * HOUR_MS);
  const { rows } = await pool.query<{ dimension: string; key: string; t: string; bytes: string }>(
    `SELECT dimension, key, (extract(epoch FROM bucket) * 1000)::bigint AS t, bytes::numeric AS bytes FROM dcache_probe.stats_hour
      WHERE bucket = ANY(SELECT to_timestamp(x / 1000.0) FROM unnest($1::bigint[]) AS x)
        AND (dimension = 'all' OR (dimension = $2 AND key = ANY($3::text[])))`,
    [hours, dimension, keys],
  );
  const siteDays = new Set(rows.filter((r) => r.dimension === 'all').map((r) => Number(r.t)));
  const out = new Map<string, number[]>();
  for (const k of keys) {
    const mine = new Map(rows.filter((r) => r.dimension === dimension && r.key === k).map((r) => [Number(r.t), Number(r.bytes)]));
    out.set(k, [...siteDays].map((t) => mine.get(t) ?? 0));
  }
  return out;
}

export interface SeenRecord {
  dimension: string;
  key: string;
  firstMs: number;
  lastMs: number;
}

export async function seen(pool: pg.Pool, dimensions: readonly string[]): Promise<SeenRecord[]> {
  const { rows } = await pool.query<{ dimension: string; key: string; f: string; l: string }>(
    `SELECT dimension, key, (extract(epoch FROM first_seen) * 1000)::bigint AS f, (extract(epoch FROM last_seen) * 1000)::bigint AS l
       FROM dcache_probe.stats_seen WHERE dimension = ANY($1::text[])`,
    [dimensions],
  );
  return rows.map((r) => ({ dimension: r.dimension, key: r.key, firstMs: Number(r.f), lastMs: Number(r.l) }));
}
