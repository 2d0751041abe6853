/**
 * The daily removal step (issue 14, docs/OUTLOOK.md "Growth"): dCache records a deletion as a
 * doorinfo row with action 'remove' and no size, so the capacity outlook's growth (bytes written
 * minus bytes removed) needs each removal sized by its file's write mover. This step counts each
 * complete UTC day once into stats_removal_day (src/db/removals.ts), per storage class: the
 * removals, those whose write mover was found with a size, and their bytes.
 *
 * - Which days: from the history window's start (statistics.historyDays before the installation,
 *   or --since) up to yesterday, also the days after the installation: no trigger of ours sees
 *   doorinfo's removals, so the billing tables are read for every day. A day is counted once
 *   SETTLE_MS have passed since its end (rows are stamped a moment before they are inserted).
 * - Resumable and idempotent, as the history builder (history.ts): a day is claimed
 *   (stats_removal_counted), counted and marked in one short transaction; a day already
 *   claimed is skipped, by a rerun and by a second probe.
 * - Gentle: one statement per day (one index probe of billinginfo per removal), then a pause of
 *   at least `pauseMs` and at least as long as the day took; no transaction is open during the
 *   pause; abortable between days. Newest days first.
 * - Daily: `run` starts it with the history builder and again once a day, shortly after UTC
 *   midnight (nextRunDelayMs), from the statistics recorder (recorder.ts).
 */
import type pg from 'pg';
import { installedBillingSchema, requireInstalled } from '../../db/migrations';
import { withClient } from '../../db/pool';
import { claimRemovalDay, countRemovalDay, countedRemovalDays, hasPnfsidIndex, markRemovalDay, removalDaySql } from '../../db/removals';
import { billingColumns } from '../../db/billing';
import type { Logger } from '../../logger';
import { SETTLE_MS } from './history';
import { countPaced } from './paced';
import { DAY_MS, utcDay } from '../../lib';

export interface RemovalOptions {
  /** First datestamp counted (epoch ms; rounded down to its UTC day). */
  sinceMs: number;
  /** Pause between days (ms), at least. */
  pauseMs: number;
  /** Pause only pauseMs, not also as long as the day took (a database that serves nothing else). */
  unpaced?: boolean;
  /** Wait this long after a day's end before counting it (default SETTLE_MS). */
  settleMs?: number;
  /** Per statement (ms). */
  statementTimeoutMs?: number;
  /** Count no more than this many days in this run (tests; run again to continue). */
  maxDays?: number;
  /** The clock (tests). */
  now?: () => number;
  signal?: AbortSignal;
  log?: Logger;
}

export interface RemovalResult {
  /** First and last (exclusive) day of the range, YYYY-MM-DD. */
  sinceDay: string;
  untilDay: string;
  daysCounted: number;
  daysSkipped: number;
  removalsCounted: number;
  /** Every settled day of the range is counted. */
  complete: boolean;
  /** Why no day can be counted in this billing database (then nothing is), or null. */
  unavailable: string | null;
}

/** The UTC days (YYYY-MM-DD) from the day of `sinceMs` whose end + settle is at or before `nowMs`, newest first. */
export function settledDaysNewestFirst(sinceMs: number, nowMs: number, settleMs: number): string[] {
  const out: string[] = [];
  const first = Math.floor(sinceMs / DAY_MS) * DAY_MS;
  for (let d = Math.floor((nowMs - settleMs) / DAY_MS) * DAY_MS - DAY_MS; d >= first; d -= DAY_MS) out.push(utcDay(d));
  return out;
}

/** How long until the next daily run: SETTLE_MS and a minute after the next UTC midnight. */
export function nextRunDelayMs(nowMs: number, settleMs = SETTLE_MS): number {
  const next = Math.floor(nowMs / DAY_MS) * DAY_MS + DAY_MS + settleMs + 60_000;
  return next - nowMs;
}

/** Counts the removals of every settled, uncounted UTC day from `sinceMs` up to yesterday. */
export async function countRemovals(pool: pg.Pool, o: RemovalOptions): Promise<RemovalResult> {
  const now = o.now ?? Date.now;
  const { billing, cols, indexed } = await withClient(pool, async (client) => {
    await requireInstalled(client, 'the removal counts');
    const billing = (await installedBillingSchema(client))!;
    return { billing, cols: await billingColumns(client, billing), indexed: await hasPnfsidIndex(client, billing) };
  });
  const days = settledDaysNewestFirst(o.sinceMs, now(), o.settleMs ?? SETTLE_MS);
  const sinceDay = utcDay(Math.floor(o.sinceMs / DAY_MS) * DAY_MS);
  const untilDay = days.length ? utcDay(Date.parse(`${days[0]}T00:00:00Z`) + DAY_MS) : sinceDay;
  const result: RemovalResult = { sinceDay, untilDay, daysCounted: 0, daysSkipped: 0, removalsCounted: 0, complete: false, unavailable: null };
  if (cols.doorinfo.size === 0 || cols.billinginfo.size === 0 || !cols.doorinfo.has('action') || !cols.billinginfo.has('isnew')) {
    result.unavailable = 'the billing schema has no doorinfo actions or billinginfo isnew';
  } else if (!indexed) {
    // dCache creates billinginfo_pnfsid_idx since 2.6; a database from before keeps its old
    // indexes. Finding each removal's write mover would then scan billinginfo.
    result.unavailable = `billinginfo has no index on pnfsid (CREATE INDEX billinginfo_pnfsid_idx ON ${billing}.billinginfo (pnfsid) makes removals countable)`;
  }
  if (result.unavailable !== null) {
    o.log?.info('removals are not counted: growth stays the bytes written', { reason: result.unavailable });
    return result;
  }
  const sql = removalDaySql(billing, cols);
  const done = await countedRemovalDays(pool, sinceDay, untilDay);
  const todo = days.filter((d) => !done.has(d));
  result.daysSkipped = days.length - todo.length;
  if (todo.length) o.log?.info('counting removals per day', { since: sinceDay, until: untilDay, days: todo.length });
  let stopped = false;
  for (const day of todo) {
    if (o.signal?.aborted || (o.maxDays !== undefined && result.daysCounted >= o.maxDays)) {
      stopped = true;
      break;
    }
    const removals = await countPaced(pool, o, async (client) => {
      if (!(await claimRemovalDay(client, day))) return null;
      const n = await countRemovalDay(client, sql, day);
      await markRemovalDay(client, day, n);
      return n;
    });
    if (removals === null) result.daysSkipped++;
    else {
      result.daysCounted++;
      result.removalsCounted += removals;
    }
  }
  result.complete = !stopped;
  if (result.daysCounted || stopped) {
    o.log?.info(result.complete ? 'removals counted' : 'counting removals stopped; it continues where it stopped next time', {
      daysCounted: result.daysCounted,
      daysSkipped: result.daysSkipped,
      removals: result.removalsCounted,
    });
  }
  return result;
}

