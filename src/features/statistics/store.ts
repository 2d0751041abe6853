/**
 * What the statistics tables (sql/migrations/004_stats.sql) hold, in the terms of the
 * delivery, the dashboard's API and the detectors: a delivered batch added, old rows pruned,
 * windows, series, rankings, histograms and the detectors' reads. The statements themselves
 * are src/db/statistics.ts; here is what their rows are turned into.
 */
import type { DeliveredRecord } from '../../pipeline/delivery';
import {
  firstBucketSeconds,
  hourBytesAt,
  hoursWithDimension,
  hourCountsAt,
  minuteValues,
  pruneStatistics,
  siteHours,
  stepCounts,
  topKeys,
  totalsByDirection,
  transfersByKey,
  upsertTallies,
  type Counts,
  type PruneResult,
  type TopOrder,
} from '../../db/statistics';
import type pg from 'pg';
import { HOUR_MS, MINUTE_MS } from '../../lib';
import { batchTallies, zeroCounts, type Retention } from './keys';

/** Adds a delivered batch to the statistics (inside the caller's transaction); returns the rows sent (0: none, nothing sent). */
export async function recordBatch(client: pg.ClientBase, delivered: readonly DeliveredRecord[], retention: Retention, nowMs = Date.now()): Promise<number> {
  const batch = batchTallies(delivered, nowMs, retention);
  const n = batch.rows.length + batch.seen.length;
  if (n === 0) return 0;
  await upsertTallies(client, batch);
  return n;
}

/** Deletes rows older than their retention (rounded up to whole hours and days). */
export function prune(pool: pg.Pool, o: { minuteRetentionHours: number; hourRetentionDays: number; dayRetentionDays: number; alertRetentionDays: number }): Promise<PruneResult> {
  return pruneStatistics(pool, {
    minuteHours: Math.ceil(o.minuteRetentionHours),
    hourDays: Math.ceil(o.hourRetentionDays),
    dayDays: Math.ceil(o.dayRetentionDays),
    alertDays: Math.ceil(o.alertRetentionDays),
  });
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

/** Totals of a window (dimension "all"), per direction, and the error codes. */
export async function summary(pool: pg.Pool, w: Window) {
  const rows = await totalsByDirection(pool, w.table, w.fromMs, w.toMs);
  const total: Counts = rows.find((r) => r.dimension === 'all') ?? zeroCounts();
  const seconds = (w.toMs - w.fromMs) / 1000;
  return {
    window: w.name,
    from: new Date(w.fromMs).toISOString(),
    to: new Date(w.toMs).toISOString(),
    transfers: total.transfers,
    bytes: total.bytes,
    errors: total.errors,
    denied: total.denied,
    durationMs: total.durationMs,
    bytesPerSecond: total.bytes / seconds,
    errorRate: total.transfers ? total.errors / total.transfers : 0,
    deniedRate: total.transfers ? total.denied / total.transfers : 0,
    byDirection: Object.fromEntries(rows.filter((r) => r.dimension === 'direction').map((r) => [r.key, countsOnly(r)])),
  };
}

function countsOnly(c: Counts): Counts {
  return { transfers: c.transfers, bytes: c.bytes, errors: c.errors, denied: c.denied, durationMs: c.durationMs };
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
  const dataSince = await firstBucketSeconds(pool, w.table);
  const step = w.stepMs / 1000;
  const rows = await stepCounts(pool, w.table, w.fromMs, w.toMs, step, dimension);
  const n = Math.round((w.toMs - w.fromMs) / w.stepMs);
  const buckets = Array.from({ length: n }, (_, i) => (w.fromMs + i * w.stepMs) / 1000);
  const byKey = new Map<string, number>();
  for (const r of rows) byKey.set(r.key, (byKey.get(r.key) ?? 0) + r.bytes + r.transfers * 1e-9);
  const ranked = [...byKey.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([k]) => k);
  const shown = ranked.slice(0, limit);
  if (ranked.length > limit) shown.push('(other)');
  const lines = new Map<string, SeriesLine>(shown.map((key) => [key, { key, transfers: Array(n).fill(0), bytes: Array(n).fill(0), errors: Array(n).fill(0), denied: Array(n).fill(0) }]));
  for (const r of rows) {
    const line = lines.get(r.key) ?? lines.get('(other)')!;
    const i = Math.round((r.t * 1000 - w.fromMs) / w.stepMs);
    if (i < 0 || i >= n) continue;
    line.transfers[i]! += r.transfers;
    line.bytes[i]! += r.bytes;
    line.errors[i]! += r.errors;
    line.denied[i]! += r.denied;
  }
  return { window: w.name, dimension, stepSeconds: step, buckets, dataSince, series: [...lines.values()] };
}

export interface TopRow extends Counts {
  key: string;
  errorRate: number;
  /** bytes per second of transfer time (sum of bytes / sum of durations). */
  meanRate: number | null;
}

/** The keys of a dimension ranked over a window. "slowest": lowest mean rate, keys with 10+ transfers. */
export async function top(pool: pg.Pool, w: Window, dimension: string, by: TopOrder, limit = 10): Promise<TopRow[]> {
  const rows = await topKeys(pool, w.table, w.fromMs, w.toMs, dimension, by, limit);
  return rows.map((c) => ({ key: c.key, ...countsOnly(c), errorRate: c.transfers ? c.errors / c.transfers : 0, meanRate: c.durationMs > 0 ? (c.bytes * 1000) / c.durationMs : null }));
}

/** Log2 histogram of durations (ms) or rates (bytes/s) over a window. */
export async function histogram(pool: pg.Pool, w: Window, metric: 'duration' | 'rate') {
  const rows = await transfersByKey(pool, w.table, w.fromMs, w.toMs, `${metric}_bin`);
  return {
    window: w.name,
    metric,
    unit: metric === 'duration' ? 'ms' : 'bytes/s',
    bins: rows.map((r) => ({ lower: 2 ** Number(r.key), upper: 2 ** (Number(r.key) + 1), transfers: r.transfers })),
  };
}

// ---------------------------------------------------------------------------------------
// Reads of the detectors

/** A dimension's per-minute values of one column over [from, to), zero-filled, per key. */
export async function minuteSeries(pool: pg.Pool, dimension: string, column: 'bytes' | 'transfers', fromMs: number, toMs: number, keys?: readonly string[]): Promise<Map<string, number[]>> {
  const rows = await minuteValues(pool, dimension, column, fromMs, toMs, keys);
  const n = Math.max(0, Math.round((toMs - fromMs) / MINUTE_MS));
  const out = new Map<string, number[]>();
  for (const k of keys ?? []) out.set(k, Array(n).fill(0));
  for (const r of rows) {
    let line = out.get(r.key);
    if (!line) out.set(r.key, (line = Array(n).fill(0)));
    const i = Math.round((r.t - fromMs) / MINUTE_MS);
    if (i >= 0 && i < n) line[i] = r.v;
  }
  return out;
}

/**
 * Bytes of each key at the same hour of day on previous days (up to `days`), one value per
 * day on which the site delivered anything in that hour and the dimension was counted (0 for a
 * key silent that day; an hour of history, which counts no users, is no day of a user's norm);
 * with `stepHours` 168, at the same hour of the week on previous weeks.
 */
export async function seasonalBytes(pool: pg.Pool, dimension: string, keys: readonly string[], nowMs: number, days: number, stepHours = 24): Promise<Map<string, number[]>> {
  const hour = Math.floor(nowMs / HOUR_MS) * HOUR_MS;
  const hours = Array.from({ length: days }, (_, i) => hour - (i + 1) * stepHours * HOUR_MS);
  const rows = await hourBytesAt(pool, hours, dimension, keys);
  const counted = await hoursWithDimension(pool, hours, dimension);
  const siteDays = new Set(rows.filter((r) => r.dimension === 'all' && counted.has(r.t)).map((r) => r.t));
  const out = new Map<string, number[]>();
  for (const k of keys) {
    const mine = new Map(rows.filter((r) => r.dimension === dimension && r.key === k).map((r) => [r.t, r.bytes]));
    out.set(k, [...siteDays].map((t) => mine.get(t) ?? 0));
  }
  return out;
}

/**
 * The tallies of each key of the given dimensions at the same hour of the week as `nowMs` on
 * the previous `weeks` weeks (failures counted by `failures`), summed over the weeks on which
 * the site delivered in that hour; null when there were fewer than minWeeks such weeks. A
 * dimension not counted in enough of those weeks (the history counts no users or client
 * networks) gets no tallies: its keys fall back to the other baselines.
 */
export async function hourOfWeekTallies(
  pool: pg.Pool,
  dimensions: readonly string[],
  nowMs: number,
  o: { weeks: number; minWeeks: number },
  failures: (c: Counts) => number,
): Promise<Map<string, Map<string, { transfers: number; failures: number }>> | null> {
  const hour = Math.floor(nowMs / HOUR_MS) * HOUR_MS;
  const hours = Array.from({ length: Math.floor(o.weeks) }, (_, i) => hour - (i + 1) * 168 * HOUR_MS);
  if (hours.length === 0) return null;
  const rows = await hourCountsAt(pool, hours, ['all', ...dimensions]);
  const weeks = new Set(rows.filter((r) => r.dimension === 'all' && r.transfers > 0).map((r) => r.t));
  if (weeks.size < Math.max(1, o.minWeeks)) return null;
  const out = new Map(dimensions.map((d) => [d, new Map<string, { transfers: number; failures: number }>()]));
  const countedIn = new Map(dimensions.map((d) => [d, new Set(rows.filter((r) => r.dimension === d && weeks.has(r.t)).map((r) => r.t))]));
  for (const r of rows) {
    const m = out.get(r.dimension);
    const counted = countedIn.get(r.dimension);
    if (!m || !counted?.has(r.t) || counted.size < Math.max(1, o.minWeeks)) continue;
    const t = m.get(r.key) ?? { transfers: 0, failures: 0 };
    t.transfers += r.transfers;
    t.failures += failures(r);
    m.set(r.key, t);
  }
  return out;
}

/**
 * The site's hourly transfers and bytes over [from, to) (whole hours): 0 for an hour without
 * a row between the first and the last hour the statistics hold (they count every delivered
 * record by its own time, also those delivered late), NaN before and after them (nothing
 * known yet: while the collector is away nothing is delivered, so nothing is counted).
 */
export async function siteHourly(pool: pg.Pool, fromMs: number, toMs: number): Promise<{ startMs: number; transfers: number[]; bytes: number[] }> {
  const n = Math.max(0, Math.round((toMs - fromMs) / HOUR_MS));
  const transfers = Array<number>(n).fill(NaN);
  const bytes = Array<number>(n).fill(NaN);
  for (const r of await siteHours(pool, fromMs, toMs)) {
    const i = Math.round((r.t - fromMs) / HOUR_MS);
    if (i < 0 || i >= n) continue;
    transfers[i] = r.transfers;
    bytes[i] = r.bytes;
  }
  const first = transfers.findIndex(Number.isFinite);
  let last = n - 1;
  while (last >= 0 && !Number.isFinite(transfers[last]!)) last--;
  for (let i = Math.max(0, first); first >= 0 && i <= last; i++) if (!Number.isFinite(transfers[i]!)) transfers[i] = bytes[i] = 0;
  return { startMs: fromMs, transfers, bytes };
}
