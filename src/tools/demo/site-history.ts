/**
 * `dcache-probe demo --history-days N` (issue 14): a simulated past, so that the outlook
 * (forecasts of the per-day totals, stats_day) and the dashboard's day charts show something
 * the moment the demo starts instead of after weeks.
 *
 * The history is billing rows, written BEFORE the capture is installed: they are then history
 * in the probe's own sense (docs/DASHBOARD.md, "History": the builder counts the rows stamped
 * before the installation, the delivery the rest), and the same builder that `dcache-probe
 * stats-history` runs counts them into stats_hour and stats_day. So the demo shows the real
 * path, not a shortcut into the statistics tables.
 *
 * Rows are the simulator's (src/tools/demo/simulator.ts, modern form: door rows, errors,
 * pool-to-pool copies, movers written twice), far fewer a day than a real site's (about
 * `transfersPerDay`, 1,000 by default), with their sizes (and durations, keeping each
 * transfer's rate) scaled so that each day's bytes follow the shape of history.ts
 * (siteHistory: trend, weekly season, a level change, noise); VOs and storage classes get
 * different shares, and the level change is one VO's (atlas starts a campaign). Written in
 * bulk: one multi-row INSERT per chunk (json_populate_recordset), no trigger installed yet.
 */
import pg from 'pg';
import { installationTimeMs } from '../../db/backfill';
import { createPool, withClient } from '../../db/pool';
import { buildHistory, type HistoryResult } from '../../features/statistics/history';
import { HOUR_MS, DAY_MS } from '../../lib';
import { SITE_CHANGE_FACTOR, siteChangeAt, siteHistory } from './history';
import { rng, TransferGenerator, type Row, type SimTransfer } from './simulator';


/**
 * The VOs' shares of the transfers ("(none)": the simulator's local user without an FQAN),
 * before the level change; after it atlas gets the site's extra volume.
 */
export const HISTORY_VO_WEIGHTS: Readonly<Record<string, number>> = { cms: 45, atlas: 25, osg: 12, dteam: 6, '(none)': 12 };

/** The VOs' storage classes (with their shares within the VO). */
const STORAGE_CLASSES: Readonly<Record<string, readonly [string | null, number][]>> = {
  cms: [['cms:default@osm', 80], ['cms:tape@osm', 20]],
  atlas: [['atlas:datadisk@osm', 70], ['atlas:tape@osm', 30]],
  osg: [['osg:public@osm', 100]],
  dteam: [['<Unknown>:<Unknown>@osm', 100]],
  '(none)': [['<Unknown>:<Unknown>@osm', 50], [null, 50]],
};

function storageClassOf(vo: string, random: () => number): string | null {
  const classes = STORAGE_CLASSES[vo] ?? [[null, 1]];
  let x = random() * classes.reduce((s, [, w]) => s + w, 0);
  for (const [c, w] of classes) if ((x -= w) < 0) return c;
  return classes[classes.length - 1]![0];
}

/**
 * Mean bytes per billing row of the live demo's traffic: a transfer's size is e^(8 + 14u)
 * (mean (e^22 − e^8) / 14), 97 % of transfers are reportable, and a transfer is 1.97 rows
 * (its door row for 96 %, a second copy for 1 %).
 */
const BYTES_PER_ROW = (((Math.exp(22) - Math.exp(8)) / 14) * 0.97) / 1.97;

/** The history's level (bytes a day) that the live demo at `rate` rows/s would transfer: the past and the present alike. */
export function levelForRate(rate: number): number {
  return rate * 86_400 * BYTES_PER_ROW;
}

export interface SiteHistoryOptions {
  /** The billing database (dCache's schema, the capture not installed yet). */
  url: string;
  schema?: string;
  /** Full UTC days before the day of `untilMs`, and that day up to `untilMs`. */
  days: number;
  untilMs: number;
  /** Mean bytes per day at the start (levelForRate). */
  level: number;
  seed: number;
  /** Transfers on a day of the mean level (weekdays more, weekends fewer). */
  transfersPerDay?: number;
  /** Stops after the day being written (the demo's Ctrl-C). */
  signal?: AbortSignal;
}

export interface WrittenHistory {
  /** UTC midnight of the first day, and the end (exclusive) of the history. */
  fromMs: number;
  untilMs: number;
  /** Bytes of each day as meant (siteHistory; the last day in part if it is today). */
  daily: number[];
  /** UTC midnight of the day the level changes (atlas writes more), or null. */
  changeMs: number | null;
  transfers: number;
  rows: number;
  bytes: number;
  /** Every day written (not stopped by the signal). */
  complete: boolean;
}

/** Busier in the (European) afternoon: the time of day of a transfer, drawn within [from, to). */
function timeOfDay(random: () => number, fromMs: number, toMs: number): number {
  for (;;) {
    const t = fromMs + random() * (toMs - fromMs);
    const hour = (t % DAY_MS) / HOUR_MS;
    if (random() * 1.4 < 1 + 0.4 * Math.cos((2 * Math.PI * (hour - 14)) / 24)) return Math.floor(t);
  }
}

/** The reportable bytes of a transfer as the statistics count them (a broken mover counts 0). */
function countedBytes(t: SimTransfer): number {
  const size = Number(t.mover.transfersize);
  return t.reportable && size > 0 ? size : 0;
}

/** Scales a transfer's size by f, and its durations with it (the same rate). */
function scale(t: SimTransfer, f: number): void {
  const m = t.mover;
  const before = Number(m.connectiontime);
  m.fullsize = Math.round(Number(m.fullsize) * f);
  if (Number(m.transfersize) >= 0) m.transfersize = Math.round(Number(m.transfersize) * f);
  m.connectiontime = Math.max(1, Math.round(before * f));
  if (t.door) t.door.connectiontime = Number(m.connectiontime) + Math.max(0, Number(t.door.connectiontime) - before);
}

/** The rows of one day's transfers (door rows, movers, the second copy of a duplicated one). */
function dayTransfers(generator: TransferGenerator, clock: { ms: number }, random: () => number, count: number, fromMs: number, toMs: number, bytes: number): SimTransfer[] {
  const transfers: SimTransfer[] = [];
  for (const t of Array.from({ length: count }, () => timeOfDay(random, fromMs, toMs)).sort((a, b) => a - b)) {
    clock.ms = t;
    transfers.push(generator.next());
  }
  const sum = transfers.reduce((s, t) => s + countedBytes(t), 0);
  if (sum > 0) for (const t of transfers) scale(t, bytes / sum);
  return transfers;
}

/** Inserts rows of one table, `chunk` at a time, one statement per chunk. */
async function insertRows(client: pg.ClientBase, schema: string, table: string, rows: readonly Row[], chunk = 2000): Promise<void> {
  const target = `${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(table)}`;
  for (let i = 0; i < rows.length; i += chunk) {
    const part = rows.slice(i, i + chunk);
    const columns = [...new Set(part.flatMap((r) => Object.keys(r)))].map((c) => pg.escapeIdentifier(c)).join(', ');
    await client.query(`INSERT INTO ${target} (${columns}) SELECT ${columns} FROM json_populate_recordset(NULL::${target}, $1::json)`, [JSON.stringify(part)]);
  }
}

/** Writes the history into the billing tables (before `migrate`: the capture must not see it). */
export async function writeSiteHistory(o: SiteHistoryOptions): Promise<WrittenHistory> {
  const schema = o.schema ?? 'public';
  const fromMs = Math.floor(o.untilMs / DAY_MS) * DAY_MS - o.days * DAY_MS;
  const dayCount = Math.ceil((o.untilMs - fromMs) / DAY_MS);
  const shape = { firstDayMs: fromMs, days: dayCount, seed: o.seed, level: o.level };
  const full = siteHistory(shape);
  const changeAt = siteChangeAt(shape);
  const perDay = o.transfersPerDay ?? 1000;
  const clock = { ms: fromMs };
  const generator = new TransferGenerator({ seed: o.seed, clockSkewMs: 0, now: () => clock.ms });
  generator.storageClassOf = storageClassOf;
  const random = rng(o.seed + 1);
  const written: WrittenHistory = { fromMs, untilMs: o.untilMs, daily: [], changeMs: changeAt === null ? null : fromMs + changeAt * DAY_MS, transfers: 0, rows: 0, bytes: 0, complete: false };
  const client = new pg.Client({ connectionString: o.url, application_name: 'dcache-probe demo (history)' });
  client.on('error', () => undefined);
  await client.connect();
  try {
    for (let d = 0; d < dayCount && !o.signal?.aborted; d++) {
      const dayFrom = fromMs + d * DAY_MS;
      const dayTo = Math.min(dayFrom + DAY_MS, o.untilMs);
      const part = (dayTo - dayFrom) / DAY_MS;
      const bytes = full[d]! * part;
      // After the level change atlas carries the site's extra volume.
      const extra = changeAt !== null && d >= changeAt ? (SITE_CHANGE_FACTOR - 1) * Object.values(HISTORY_VO_WEIGHTS).reduce((a, b) => a + b, 0) : 0;
      generator.voWeights = { ...HISTORY_VO_WEIGHTS, atlas: HISTORY_VO_WEIGHTS.atlas! + extra };
      const count = Math.max(1, Math.round(perDay * (full[d]! / o.level) * part));
      const transfers = dayTransfers(generator, clock, random, count, dayFrom, dayTo, bytes);
      const movers: Row[] = [];
      const doors: Row[] = [];
      for (const t of transfers) {
        movers.push(t.mover);
        if (t.duplicated) movers.push(t.mover);
        if (t.door) doors.push(t.door);
        written.bytes += countedBytes(t);
      }
      await insertRows(client, schema, 'billinginfo', movers);
      await insertRows(client, schema, 'doorinfo', doors);
      written.daily.push(bytes);
      written.transfers += transfers.length;
      written.rows += movers.length + doors.length;
    }
    written.complete = written.daily.length === dayCount;
    // Planner statistics for the builder's hour statements (a real site's tables have them).
    await client.query(`ANALYZE ${pg.escapeIdentifier(schema)}.billinginfo, ${pg.escapeIdentifier(schema)}.doorinfo`);
  } finally {
    await client.end();
  }
  return written;
}

export interface CountOptions {
  /** The billing database, the capture installed (after `migrate`). */
  url: string;
  /** Days before the installation counted (as statistics.historyDays: at least the history's days and one). */
  historyDays: number;
  /** As the probe's settings say (statistics.hourRetentionDays, pipeline.reportTape, pipeline.onlyInterSiteTransfers). */
  hourRetentionDays: number;
  reportTape: boolean;
  onlyInterSiteTransfers: boolean;
  /** Stops between hours (it continues where it stopped when the probe's own build runs). */
  signal?: AbortSignal;
}

/**
 * Counts the history into the statistics with the builder of `dcache-probe stats-history`
 * (src/features/statistics/history.ts), to completion, without its waits: no row stamped
 * before the installation can still arrive (the history was written before it, and nothing
 * else writes), and the demo's database has no dCache whose writers the pauses would spare.
 */
export async function countSiteHistory(o: CountOptions): Promise<HistoryResult> {
  const pool = createPool({ url: o.url, max: 1 });
  try {
    // From where the probe's own background build starts (recorder.ts): it then finds every hour counted.
    const installedMs = await withClient(pool, installationTimeMs);
    return await buildHistory(pool, {
      sinceMs: installedMs - o.historyDays * DAY_MS,
      pauseMs: 0,
      unpaced: true,
      settleMs: 0,
      hourRetentionDays: o.hourRetentionDays,
      reportTape: o.reportTape,
      onlyInterSiteTransfers: o.onlyInterSiteTransfers,
      signal: o.signal,
    });
  } finally {
    await pool.end();
  }
}
