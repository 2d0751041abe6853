/**
 * `dcache-probe backfill`: sends historic billing rows, written before the capture triggers
 * were installed, through the same pipeline as live ones. It copies them into
 * dcache_probe.capture_queue exactly as the trigger would have (source, to_jsonb(row)), and the
 * running probe (or `poll --once`) delivers them with all its guarantees: door join, dedup
 * keys, quarantine, acknowledgement before deletion.
 *
 * - Range: [since, until). `until` defaults to when the triggers were installed (the first
 *   migration's applied_at) plus a small overlap: dCache inserts rows a moment after their
 *   datestamp and pool clocks differ, so a row stamped just after the installation may have
 *   been inserted just before it. Rows in the overlap that the triggers did capture are skipped
 *   by the filter (chunkSql in src/db/backfill.ts).
 * - Bounded: `since` may not lie further back than maxHistoryDays (the old probe's
 *   MaxBillingHistoryDays, 31).
 * - Throttled: at most `rate` rows a second, and never more than `maxQueue` rows waiting in the
 *   capture queue (live ones included): a backfill waits for the probe to catch up.
 * - Resumable: each chunk is copied and its progress (last datestamp and ctid) recorded in
 *   dcache_probe.backfill_progress in one transaction.
 * - No re-sends: a row is skipped when its dedup key is in dcache_probe.delivered_key (the
 *   probe delivered it), or its transaction is waiting in the capture queue or the quarantine;
 *   pool-to-pool rows, storageinfo rows other than store/restore, and rows without a
 *   transaction are skipped as well. Delivered keys are kept for pipeline.dedupWindowHours
 *   (48 h) only: a row the probe delivered longer ago than that is no longer known.
 */
import pg from 'pg';
import { ConfigError } from '../config/schema';
import { DatabaseOutage, connectionConfig, inTransaction, isConnectionFault } from '../db/pool';
import {
  copyChunkRows,
  countRangeRows,
  ensureProgress,
  installationTimeMs,
  readProgress,
  resetProgress,
  saveProgress,
  useIsoDateStyle,
  type ChunkRow,
  type ProgressKey,
} from '../db/backfill';
import { billingSources, billingTable } from '../db/billing';
import type { BillingSource } from '../record/types';
import { queueDepth } from '../db/queue';
import { wakeProbes } from '../db/wake-up';
import { DAY_MS, backoffDelay, pause } from '../lib';
import type { Logger } from '../logger';
import { installedBillingSchema, requireInstalled } from '../db/migrations';


/** A point in time given on the command line (RFC 3339 / ISO 8601 with a zone). */
export interface TimeArg {
  /** Normalised RFC 3339 text (what PostgreSQL parses; microseconds kept). */
  text: string;
  ms: number;
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?\s*([Zz]|[+-]\d{2}(?::?\d{2})?)$/;

/** Parses --since / --until; a time without a zone is refused (it would be ambiguous). */
export function parseTimeArg(value: string, flag: string): TimeArg {
  const m = RFC3339.exec(value.trim());
  if (!m) {
    throw new ConfigError(`${flag} ${JSON.stringify(value)}: not an RFC 3339 time with a zone (e.g. 2024-03-14T12:00:00Z or 2024-03-14T13:00:00+01:00)`);
  }
  const [, y, mo, d, h, mi, s = '00', frac = '', zone] = m as unknown as string[];
  const fraction = (frac ?? '').slice(0, 6).padEnd(6, '0');
  let offsetMin = 0;
  let zoneText = 'Z';
  if (zone && zone.toUpperCase() !== 'Z') {
    const z = /^([+-])(\d{2}):?(\d{2})?$/.exec(zone)!;
    offsetMin = (z[1] === '-' ? -1 : 1) * (Number(z[2]) * 60 + Number(z[3] ?? 0));
    zoneText = `${z[1]}${z[2]}:${z[3] ?? '00'}`;
  }
  const wall = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), Number(fraction.slice(0, 3)));
  const check = new Date(wall);
  if (
    check.getUTCFullYear() !== Number(y) || check.getUTCMonth() !== Number(mo) - 1 || check.getUTCDate() !== Number(d) ||
    Number(h) > 23 || Number(mi) > 59 || Number(s) > 59 || Math.abs(offsetMin) > 18 * 60
  ) {
    throw new ConfigError(`${flag} ${JSON.stringify(value)}: not a valid date and time`);
  }
  return { text: `${y}-${mo}-${d}T${h}:${mi}:${s}.${fraction}${zoneText}`, ms: wall - offsetMin * 60_000 };
}

/** An instant as a TimeArg (e.g. a checkpoint's). */
export function timeArgOf(iso: string): TimeArg {
  return parseTimeArg(iso, 'time');
}

export function formatUtc(ms: number): string {
  return new Date(ms).toISOString();
}

export interface BackfillOptions {
  url: string;
  /** Session TimeZone (database.timeZone): how legacy `timestamp without time zone` values are read. */
  timeZone?: string;
  queryTimeoutMs?: number;
  since: TimeArg;
  /** Default: the triggers' installation time plus overlapSeconds. */
  until?: TimeArg;
  overlapSeconds: number;
  maxHistoryDays: number;
  /** Rows copied per second, at most. */
  rate: number;
  /** Rows waiting in the capture queue (live ones too) above which the backfill waits. */
  maxQueue: number;
  /** Rows looked at per chunk (one transaction). */
  chunkSize: number;
  /** Stop after looking at this many rows in this run (the rest on the next run). */
  limit?: number;
  dryRun: boolean;
  /** Forget the saved progress of this range and scan it again (the filters still apply). */
  restart: boolean;
  reportTape: boolean;
  dedupWindowHours: number;
  log: Logger;
  /** One line of output for the operator (stdout). */
  print: (line: string) => void;
  signal?: AbortSignal;
  now?: () => number;
  /** For import-checkpoint: a `since` at or after `until` is not a usage error but "nothing to do". */
  sinceMayFollowUntil?: boolean;
  /** Reports a database lost mid-run (the running probe passes its own, so it is said once). */
  outage?: DatabaseOutage;
}

/** What happened to the rows looked at. */
export interface Tally {
  scanned: number;
  copied: number;
  /** Already delivered (dedup key known) or waiting in the capture queue / quarantine. */
  alreadySent: number;
  p2p: number;
  /** storageinfo rows other than store/restore. */
  notTape: number;
  noTransaction: number;
}

export interface BackfillResult {
  since: string;
  until: string;
  installedAt: string;
  /** Per source: this run's tally. */
  sources: Partial<Record<BillingSource, Tally>>;
  total: Tally;
  /** The whole range has been copied (now or before). */
  complete: boolean;
  /** The range had been completed by an earlier run. */
  alreadyComplete: boolean;
  stoppedBy?: 'limit' | 'signal';
  /** Set when `since` is not before `until` (import-checkpoint): nothing to copy. */
  emptyRange?: boolean;
  seconds: number;
}

export function emptyTally(): Tally {
  return { scanned: 0, copied: 0, alreadySent: 0, p2p: 0, notTape: 0, noTransaction: 0 };
}

/** Adds `t` to `into`. */
export function addTally(into: Tally, t: Tally): void {
  for (const k of Object.keys(into) as (keyof Tally)[]) into[k] += t[k];
}

/** Refuses a `since` further back than maxHistoryDays (MaxBillingHistoryDays). */
export function checkHistoryBound(since: TimeArg, maxHistoryDays: number, now: number, flag = '--since'): void {
  const oldest = now - maxHistoryDays * DAY_MS;
  if (since.ms < oldest) {
    const days = ((now - since.ms) / DAY_MS).toFixed(1);
    throw new ConfigError(
      `${flag} ${since.text} is ${days} days ago, further back than --max-history-days ${maxHistoryDays} (the old probe's MaxBillingHistoryDays); ` +
        `give a larger --max-history-days to go further back`,
    );
  }
}

function tallyOf(r: ChunkRow): Tally {
  return { scanned: r.scanned, copied: r.copied, alreadySent: r.already_sent, p2p: r.p2p, notTape: r.not_tape, noTransaction: r.no_transaction };
}

/** Checks the numbers of a backfill's options (usage errors). */
function checkOptions(o: BackfillOptions, now: number): void {
  checkHistoryBound(o.since, o.maxHistoryDays, now);
  for (const [name, v] of [['--rate', o.rate], ['--max-queue', o.maxQueue], ['--chunk', o.chunkSize]] as const) {
    if (!(Number.isFinite(v) && v > 0)) throw new ConfigError(`${name} must be a positive number`);
  }
  if (o.limit !== undefined && !(Number.isInteger(o.limit) && o.limit > 0)) throw new ConfigError('--limit must be a positive whole number');
}

/** How to reach the database: a command's own connection, not the probe's pool. */
export interface ConnectionOptions {
  url: string;
  timeZone?: string;
  /** Client-side timeout of each query; none when undefined. */
  queryTimeoutMs?: number;
  log: Logger;
  signal?: AbortSignal;
  /** Reports a database lost mid-run (the running probe passes its own, so it is said once). */
  outage?: DatabaseOutage;
}

/**
 * The backfill's connection. A database that cannot be reached at the start is an error (this
 * is a command, not a daemon); one that goes away mid-run (a restart) is waited for by
 * `reconnect`, and the run goes on from the saved progress.
 */
export class BackfillConnection {
  readonly outage: DatabaseOutage;

  private constructor(
    private readonly o: ConnectionOptions,
    public client: pg.Client,
  ) {
    this.outage = o.outage ?? new DatabaseOutage(o.log);
  }

  static async open(o: ConnectionOptions): Promise<BackfillConnection> {
    return new BackfillConnection(o, await BackfillConnection.connect(o));
  }

  private static async connect(o: ConnectionOptions): Promise<pg.Client> {
    const c = new pg.Client({
      ...connectionConfig({ url: o.url, timeZone: o.timeZone, applicationName: 'dcache-probe backfill' }),
      query_timeout: o.queryTimeoutMs,
    });
    // A broken connection fails the query in hand; it must not end the process.
    c.on('error', () => undefined);
    try {
      await c.connect();
      await useIsoDateStyle(c);
      return c;
    } catch (err) {
      void c.end().catch(() => undefined);
      throw err;
    }
  }

  /** Waits for the database after a connection fault and connects again; false if interrupted first. */
  async reconnect(fault: unknown): Promise<boolean> {
    void this.client.end().catch(() => undefined);
    for (let failures = 1; ; failures++) {
      this.outage.fault(fault, 'backfill');
      await pause(backoffDelay(failures, 250, 5_000), this.o.signal);
      if (this.o.signal?.aborted) return false;
      try {
        this.client = await BackfillConnection.connect(this.o);
        this.outage.ok();
        return true;
      } catch (err) {
        if (!isConnectionFault(err)) throw err;
        fault = err;
      }
    }
  }

  async end(): Promise<void> {
    await this.client.end().catch(() => undefined);
  }
}

/** What the copy of a range needs to know, for a backfill and for a poll window alike. */
export interface CopyOptions {
  since: TimeArg;
  until: TimeArg;
  /** Rows looked at per chunk (one transaction). */
  chunkSize: number;
  /** Stop after looking at this many rows (the rest on the next run). */
  limit?: number;
  dryRun: boolean;
  restart: boolean;
  /** A backfill's bounds: at most `rate` rows a second, and never more than `maxQueue` rows waiting. Poll mode has none. */
  throttle?: { rate: number; maxQueue: number };
  log: Logger;
  print: (line: string) => void;
  signal?: AbortSignal;
  now: () => number;
}

/** The copy of a range, source by source. */
export interface CopyResult {
  sources: Partial<Record<BillingSource, Tally>>;
  /** Every source's range is finished (now or before); false for a dry run. */
  allComplete: boolean;
  /** Some source's range had been finished by an earlier run. */
  anyWasComplete: boolean;
  stoppedBy?: 'limit' | 'signal';
}

/** Pacing and reporting, across chunks and sources. */
interface CopyState {
  remaining: number;
  pacedUntil: number;
  lastReport: number;
  stoppedBy?: 'limit' | 'signal';
}

/** Copies (or, dry, counts) each source's rows in [since, until), resuming the saved progress. */
export async function copyRange(conn: BackfillConnection, billingSchema: string, sources: readonly BillingSource[], o: CopyOptions): Promise<CopyResult> {
  const now = o.now();
  const state: CopyState = { remaining: o.limit ?? Infinity, pacedUntil: now, lastReport: now };
  const result: CopyResult = { sources: {}, allComplete: true, anyWasComplete: false };
  for (const source of sources) {
    if (state.stoppedBy === 'signal') {
      result.allComplete = false;
      break;
    }
    const key: ProgressKey = { since: o.since.text, until: o.until.text, source };
    const tally = emptyTally();
    result.sources[source] = tally;
    const outcome = await copySource(conn, billingTable(billingSchema, source), key, o, state, tally);
    if (outcome === 'was-complete') result.anyWasComplete = true;
    else if (outcome === 'incomplete') result.allComplete = false;
  }
  result.stoppedBy = state.stoppedBy;
  return result;
}

/** One source's range: its progress row, then its chunks (or the dry run's count). */
async function copySource(
  conn: BackfillConnection,
  table: string,
  key: ProgressKey,
  o: CopyOptions,
  state: CopyState,
  tally: Tally,
): Promise<'was-complete' | 'complete' | 'incomplete'> {
  if (!o.dryRun) {
    await ensureProgress(conn.client, key);
    if (o.restart) await resetProgress(conn.client, key);
  }
  const progress = await readProgress(conn.client, key, false);
  if (progress.finished_at && !(o.restart && o.dryRun)) {
    o.print(
      `${key.source}: this range was backfilled completely on ${progress.finished_at.toISOString()} (${progress.rows_copied} rows copied); nothing to do (--restart scans it again)`,
    );
    return 'was-complete';
  }
  const resumeFrom = o.restart ? null : progress.last_datestamp;
  if (resumeFrom) o.print(`${key.source}: resuming after datestamp ${resumeFrom} (${progress.rows_copied} rows copied by earlier runs)`);

  if (o.dryRun) {
    const start = resumeFrom ? { datestamp: progress.last_datestamp, ctid: progress.last_ctid } : null;
    addTally(tally, tallyOf(await countRangeRows(conn.client, table, key, start)));
    return 'incomplete';
  }
  await copyChunks(conn, table, key, o, state, tally);
  if (state.stoppedBy === 'signal' || !(await readProgress(conn.client, key, false)).finished_at) return 'incomplete';
  return 'complete';
}

/** Chunk after chunk until the range is done, the limit is reached or the signal fires. */
async function copyChunks(conn: BackfillConnection, table: string, key: ProgressKey, o: CopyOptions, state: CopyState, tally: Tally): Promise<void> {
  for (;;) {
    if (o.signal?.aborted) {
      state.stoppedBy = 'signal';
      return;
    }
    if (state.remaining <= 0) {
      state.stoppedBy = 'limit';
      return;
    }
    const chunk = Math.max(1, Math.min(o.chunkSize, o.throttle?.maxQueue ?? Infinity, state.remaining));
    let chunkStarted = o.now();
    let row: ChunkRow | null;
    try {
      if (o.throttle) {
        await waitForRoom(conn.client, chunk, o.throttle.maxQueue, o);
        if (o.signal?.aborted) continue;
        const wait = state.pacedUntil - o.now();
        if (wait > 0) await pause(wait, o.signal);
      }
      chunkStarted = o.now();
      row = await copyChunk(conn.client, table, key, chunk);
      conn.outage.ok();
    } catch (err) {
      // The chunk in hand rolled back (or committed, if only its answer was lost): the
      // saved progress says which, and the next chunk starts from there.
      if (isConnectionFault(err) && !o.signal?.aborted && (await conn.reconnect(err))) continue;
      throw err;
    }
    if (row === null) return; // another run finished the range
    addTally(tally, tallyOf(row));
    state.remaining -= row.scanned;
    // --rate: the next chunk starts no sooner than this one's rows allow (from its start).
    if (o.throttle) state.pacedUntil = Math.max(state.pacedUntil, chunkStarted) + (row.copied / o.throttle.rate) * 1000;
    if (o.now() - state.lastReport >= 5000) {
      o.log.info('backfill progress', { source: key.source, copied: tally.copied, scanned: tally.scanned, upTo: row.last_datestamp });
      state.lastReport = o.now();
    }
    if (row.scanned < chunk) return;
  }
}

/** Never more than maxQueue rows waiting: waits for the probe to deliver (or the signal). */
async function waitForRoom(client: pg.ClientBase, chunk: number, maxQueue: number, o: CopyOptions): Promise<void> {
  let toldAt: number | null = null;
  for (;;) {
    const queued = await queueDepth(client);
    if (queued + chunk <= maxQueue || o.signal?.aborted) return;
    if (toldAt === null || o.now() - toldAt >= 30_000) {
      o.log.info('backfill waiting for the probe to deliver: the capture queue is full (is "dcache-probe run" running?)', { queued, maxQueue });
      toldAt = o.now();
    }
    await pause(500, o.signal);
  }
}

/** One chunk in one transaction: copy, record the progress, wake the listener; null when another run finished the range. */
function copyChunk(client: pg.ClientBase, table: string, key: ProgressKey, chunk: number): Promise<ChunkRow | null> {
  return inTransaction(client, async (tx) => {
    const progress = await readProgress(tx, key, true); // serialises concurrent runs of the same range
    if (progress.finished_at) return null;
    const start = progress.last_datestamp !== null ? { datestamp: progress.last_datestamp, ctid: progress.last_ctid } : null;
    const row = await copyChunkRows(tx, table, key, chunk, start);
    await saveProgress(tx, key, row, row.scanned < chunk);
    // Wake the listener: these rows did not come through the trigger.
    if (row.copied > 0) await wakeProbes(tx);
    return row;
  });
}

/** The range's end: --until, or the triggers' installation plus the overlap. */
function rangeEnd(o: BackfillOptions, installedMs: number): TimeArg {
  return o.until ?? timeArgOf(formatUtc(installedMs + o.overlapSeconds * 1000));
}

export async function runBackfill(o: BackfillOptions): Promise<BackfillResult> {
  const now = o.now ?? Date.now;
  const started = now();
  checkOptions(o, started);
  const conn = await BackfillConnection.open({ ...o, queryTimeoutMs: o.dryRun ? undefined : o.queryTimeoutMs });
  try {
    await requireInstalled(conn.client, 'this command');
    const billing = (await installedBillingSchema(conn.client))!;
    const installedMs = await installationTimeMs(conn.client);
    const until = rangeEnd(o, installedMs);
    const result: BackfillResult = {
      since: o.since.text,
      until: until.text,
      installedAt: formatUtc(installedMs),
      sources: {},
      total: emptyTally(),
      complete: false,
      alreadyComplete: false,
      seconds: 0,
    };
    o.print(
      `range ${formatUtc(o.since.ms)} .. ${formatUtc(until.ms)} (datestamps from --since up to ${o.until ? '--until' : `the triggers' installation at ${result.installedAt} + ${o.overlapSeconds} s overlap`}, exclusive)`,
    );
    if (o.since.ms >= until.ms) {
      if (o.sinceMayFollowUntil) {
        result.emptyRange = true;
        result.complete = true;
        return result;
      }
      throw new ConfigError(`--since ${o.since.text} is not before the end of the range ${until.text}: nothing would be copied`);
    }
    if (until.ms > installedMs && started - installedMs > o.dedupWindowHours * 3_600_000) {
      o.print(
        `note: the range reaches past the triggers' installation (${result.installedAt}), which is more than pipeline.dedupWindowHours (${o.dedupWindowHours} h) ago: ` +
          `rows the probe delivered back then are no longer remembered and would be sent again (byte-identical but for createTime)`,
      );
    }
    const sources = await billingSources(conn.client, billing, o.reportTape);
    const copy = await copyRange(conn, billing, sources, {
      since: o.since,
      until,
      chunkSize: o.chunkSize,
      limit: o.limit,
      dryRun: o.dryRun,
      restart: o.restart,
      throttle: { rate: o.rate, maxQueue: o.maxQueue },
      log: o.log,
      print: o.print,
      signal: o.signal,
      now,
    });
    result.sources = copy.sources;
    result.stoppedBy = copy.stoppedBy;
    for (const t of Object.values(result.sources)) addTally(result.total, t);
    result.complete = !o.dryRun && copy.allComplete;
    result.alreadyComplete = copy.anyWasComplete && result.total.scanned === 0 && copy.allComplete;
    if (result.complete) result.stoppedBy = undefined;
    result.seconds = (now() - started) / 1000;
    return result;
  } finally {
    await conn.end();
  }
}

/** The closing lines for the operator. */
export function formatBackfillResult(r: BackfillResult, dryRun: boolean): string[] {
  const lines: string[] = [];
  const t = r.total;
  const skipped = [
    t.alreadySent ? `${t.alreadySent} already delivered or waiting` : '',
    t.p2p ? `${t.p2p} pool-to-pool` : '',
    t.notTape ? `${t.notTape} storageinfo rows that are not store/restore` : '',
    t.noTransaction ? `${t.noTransaction} without a transaction` : '',
  ].filter(Boolean);
  const per = (Object.entries(r.sources) as [BillingSource, Tally][]).map(([s, x]) => `${s} ${x.copied}`).join(', ');
  if (dryRun) {
    lines.push(`dry run: would copy ${t.copied} rows into the delivery queue (${per || 'nothing left'}); ${t.scanned} rows in the range${skipped.length ? `, skipping ${skipped.join(', ')}` : ''}`);
    return lines;
  }
  if (r.alreadyComplete) return lines;
  const rate = r.seconds > 0 ? Math.round(t.copied / r.seconds) : t.copied;
  lines.push(
    `copied ${t.copied} rows into the delivery queue (${per}) in ${r.seconds.toFixed(1)} s (${rate} rows/s); looked at ${t.scanned}` +
      `${skipped.length ? `, skipped ${skipped.join(', ')}` : ''}`,
  );
  if (r.stoppedBy === 'limit') lines.push('stopped at --limit; run the same command again to continue where it stopped');
  else if (r.stoppedBy === 'signal') lines.push('interrupted; run the same command again to continue where it stopped');
  else if (r.complete) lines.push('the range is complete; the running probe (or "dcache-probe poll --once") delivers the copied rows');
  return lines;
}
