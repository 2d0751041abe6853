/**
 * Poll mode (no triggers): the probe reads the billing rows of the next datestamp window and
 * copies them into the capture queue through the backfill's filters (already delivered,
 * already queued or quarantined, p2p, no transaction), as a backfill of that window would,
 * its progress saved in dcache_probe.backfill_progress. A window starts pollOverlapSeconds
 * before the previous finished one ended and ends pollSettleSeconds ago.
 *
 * Unlike a backfill it is not throttled (the probe drains the queue itself, so it must never
 * wait for it), not bounded by a history limit, and never a dry run.
 */
import type pg from 'pg';
import { BackfillConnection, addTally, copyRange, emptyTally, formatUtc, timeArgOf, type Tally, type TimeArg } from '../legacy/backfill';
import type { Config } from '../config/schema';
import type { DatabaseOutage } from '../db/pool';
import { lastWindowEndMs } from '../db/backfill';
import { billingSources } from '../db/billing';
import type { Logger } from '../logger';
import { installedBillingSchema, requireInstalled } from '../db/migrations';

/** Rows looked at per chunk (one transaction). */
const CHUNK_SIZE = 5000;

export interface PollWindowOptions {
  /** The probe's pool: reads where the last window ended. */
  pool: pg.Pool;
  config: { database: Pick<Config['database'], 'url' | 'timeZone' | 'queryTimeoutSeconds'>; pipeline: Pick<Config['pipeline'], 'pollSettleSeconds' | 'pollOverlapSeconds' | 'reportTape'> };
  log: Logger;
  /** A database lost mid-window is waited for, and said once with the drains' outage. */
  outage?: DatabaseOutage;
  signal?: AbortSignal;
  now?: () => number;
}

/** The next window: [start, end), or null when it would be empty. */
export function nextWindow(lastEndMs: number | null, nowMs: number, settleSeconds: number, overlapSeconds: number): { start: number; end: number } | null {
  const end = nowMs - settleSeconds * 1000;
  const start = Math.min(lastEndMs ?? end, end) - overlapSeconds * 1000;
  return start < end ? { start, end } : null;
}

/** Copies the billing rows of the next window into the capture queue. */
export async function pollWindow(o: PollWindowOptions): Promise<void> {
  const p = o.config.pipeline;
  const now = o.now ?? Date.now;
  const window = nextWindow(await lastWindowEndMs(o.pool), now(), p.pollSettleSeconds, p.pollOverlapSeconds);
  if (!window) return;
  const since = timeArgOf(formatUtc(window.start));
  const until = timeArgOf(formatUtc(window.end));
  const copied = await copyWindow({ ...o, since, until });
  if (copied.copied > 0) o.log.debug('poll window copied rows', { since: since.text, until: until.text, copied: copied.copied });
}

/** Copies the rows of [since, until) into the capture queue (on a connection of its own); the total tally. */
export async function copyWindow(o: PollWindowOptions & { since: TimeArg; until: TimeArg }): Promise<Tally> {
  const db = o.config.database;
  const conn = await BackfillConnection.open({
    url: db.url,
    timeZone: db.timeZone,
    queryTimeoutMs: db.queryTimeoutSeconds * 1000,
    log: o.log,
    signal: o.signal,
    outage: o.outage,
  });
  try {
    await requireInstalled(conn.client, 'this command');
    const billing = (await installedBillingSchema(conn.client))!;
    const sources = await billingSources(conn.client, billing, o.config.pipeline.reportTape);
    const result = await copyRange(conn, billing, sources, {
      since: o.since,
      until: o.until,
      chunkSize: CHUNK_SIZE,
      dryRun: false,
      restart: false,
      log: o.log,
      print: (line) => o.log.debug(`poll window: ${line}`),
      signal: o.signal,
      now: o.now ?? Date.now,
    });
    const total = emptyTally();
    for (const t of Object.values(result.sources)) addTally(total, t);
    return total;
  } finally {
    await conn.end();
  }
}
