/**
 * Statistics from history (issue 14): the billing rows written before the capture was
 * installed, counted into stats_hour and stats_day from the billing tables themselves, so
 * that per-day totals (and, within its retention, the hour table) reach back before the probe.
 *
 * - No hour counted twice: the builder counts only rows whose datestamp is before the
 *   installation time (the first migration's), and the delivery's statistics leave out of the
 *   hour and day tables every record whose datestamp is before it (keys.ts, batchRows). A row
 *   is therefore counted by exactly one of the two, also when a backfill sends historic rows
 *   through the pipeline later.
 * - Resumable and idempotent: an hour is claimed (stats_history) and counted in one short
 *   transaction; an hour already claimed is skipped, by a rerun and by a second builder.
 * - Gentle: one aggregate statement per hour (GROUP BY in the database; no billing row travels
 *   here), then a pause of at least `pauseMs`, and at least as long as the hour took, so that
 *   the builder uses at most half of one server process's time; no transaction is open during
 *   the pause. Newest hours first: an interrupted run has counted the most useful part.
 *
 * The statements are src/db/stats-history.ts; the pacing rule is src/features/statistics/paced.ts.
 */
import type pg from 'pg';
import { installationTimeMs } from '../../db/backfill';
import { billingColumns, billingSources } from '../../db/billing';
import type { BillingSource } from '../../record/types';
import { installedBillingSchema, requireInstalled } from '../../db/migrations';
import { withClient } from '../../db/pool';
import { claimHour, countHour, countedHours, hourSql, markHour } from '../../db/stats-history';
import { HOUR_MS, pause } from '../../lib';
import type { Logger } from '../../logger';
import { countPaced } from './paced';

/** How late a row stamped before the installation may still be captured (the backfill's default overlap). */
export const SETTLE_MS = 5 * 60_000;

export interface HistoryOptions {
  /** First datestamp counted (epoch ms; rounded down to the hour). */
  sinceMs: number;
  /** End of the range (epoch ms); never later than the installation time. Default: the installation. */
  untilMs?: number;
  /** Pause between hours (ms), at least. */
  pauseMs: number;
  /**
   * Pause only pauseMs, not also as long as the hour took: for a database that serves nothing
   * else (the demo's, which counts its simulated history before its live traffic starts).
   */
  unpaced?: boolean;
  /** Hour buckets older than this are not written to stats_hour (its retention). */
  hourRetentionDays: number;
  /** Count storageinfo (tape) rows, as pipeline.reportTape delivers them. */
  reportTape: boolean;
  /** pipeline.onlyInterSiteTransfers: DCap transfers are not delivered, so not counted. */
  onlyInterSiteTransfers: boolean;
  /** Wait this long after an hour's end before counting it (default SETTLE_MS; tests: 0). */
  settleMs?: number;
  /** Per statement (ms). */
  statementTimeoutMs?: number;
  /** Count no more than this many hours in this run (tests; run again to continue). */
  maxHours?: number;
  signal?: AbortSignal;
  log?: Logger;
}

export interface HistoryResult {
  installedAtMs: number;
  sinceMs: number;
  untilMs: number;
  /** Hours counted in this run (per source), and those found counted before. */
  hoursCounted: number;
  hoursSkipped: number;
  rowsCounted: number;
  /** Every hour of the range is counted. */
  complete: boolean;
}

/** The hours of [since, until) (starts, epoch ms), newest first. */
export function hoursNewestFirst(sinceMs: number, untilMs: number): number[] {
  const out: number[] = [];
  for (let h = Math.floor((untilMs - 1) / HOUR_MS) * HOUR_MS; h >= Math.floor(sinceMs / HOUR_MS) * HOUR_MS && untilMs > sinceMs; h -= HOUR_MS) out.push(h);
  return out;
}

/** Builds the statistics of [since, until ∧ installation) from the billing tables. */
export async function buildHistory(pool: pg.Pool, o: HistoryOptions): Promise<HistoryResult> {
  const { billing, installedMs, sources, cols } = await withClient(pool, async (client) => {
    await requireInstalled(client, 'the statistics history');
    const billing = (await installedBillingSchema(client))!;
    return { billing, installedMs: await installationTimeMs(client), sources: await billingSources(client, billing, o.reportTape), cols: await billingColumns(client, billing) };
  });
  const sinceMs = Math.floor(o.sinceMs / HOUR_MS) * HOUR_MS;
  const untilMs = Math.min(o.untilMs ?? installedMs, installedMs);
  const result: HistoryResult = { installedAtMs: installedMs, sinceMs, untilMs, hoursCounted: 0, hoursSkipped: 0, rowsCounted: 0, complete: false };
  const hours = hoursNewestFirst(sinceMs, untilMs);
  const statements = new Map(sources.map((s) => [s, hourSql(billing, s, cols, { onlyInterSite: o.onlyInterSiteTransfers })]));
  const done = new Map<BillingSource, Set<number>>();
  for (const s of sources) done.set(s, await countedHours(pool, s, sinceMs, untilMs));
  o.log?.info('counting billing history into the statistics', { since: new Date(sinceMs).toISOString(), until: new Date(untilMs).toISOString(), hours: hours.length, sources });
  // dCache stamps a row a moment before it inserts it (and pool clocks differ): rows stamped
  // just before the installation may still be captured after it. An hour is counted only
  // once SETTLE_MS have passed since its end (the installation, for the last one).
  const settle = o.settleMs ?? SETTLE_MS;
  const settled = (h: number) => Math.min(h + HOUR_MS, untilMs) + settle <= Date.now();
  const late = hours.filter((h) => !settled(h));
  if (late.length) {
    o.log?.info('waiting for the rows stamped just before the installation', { seconds: Math.ceil((Math.min(late[0]! + HOUR_MS, untilMs) + settle - Date.now()) / 1000) });
  }
  let stopped = false;
  for (const hour of [...hours.filter(settled), ...late]) {
    const wait = Math.min(hour + HOUR_MS, untilMs) + settle - Date.now();
    if (wait > 0) await pause(wait, o.signal);
    for (const source of sources) {
      if (done.get(source)!.has(hour)) {
        result.hoursSkipped++;
        continue;
      }
      if (o.signal?.aborted || (o.maxHours !== undefined && result.hoursCounted >= o.maxHours)) {
        stopped = true;
        break;
      }
      const rows = await countPaced(pool, o, async (client) => {
        if (!(await claimHour(client, source, hour))) return null;
        const n = await countHour(client, statements.get(source)!, hour, Math.min(hour + HOUR_MS, untilMs), o.hourRetentionDays);
        await markHour(client, source, hour, n);
        return n;
      });
      if (rows === null) result.hoursSkipped++;
      else {
        result.hoursCounted++;
        result.rowsCounted += rows;
      }
    }
    if (stopped) break;
  }
  result.complete = !stopped;
  o.log?.info(result.complete ? 'billing history counted into the statistics' : 'counting billing history stopped; it continues where it stopped next time', {
    hoursCounted: result.hoursCounted,
    hoursSkipped: result.hoursSkipped,
    rows: result.rowsCounted,
  });
  return result;
}
