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
 *   by the filter below.
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
import { ConfigError } from './config';
import { DatabaseOutage, connectionConfig, isConnectionFault } from './db';
import { backoffDelay, pause } from './lib';
import type { Logger } from './logger';
import { installedBillingSchema, requireInstalled } from './migrations';
import { WAKE_CHANNEL } from './queue';

export type Source = 'billinginfo' | 'storageinfo';

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
  sources: Partial<Record<Source, Tally>>;
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

function emptyTally(): Tally {
  return { scanned: 0, copied: 0, alreadySent: 0, p2p: 0, notTape: 0, noTransaction: 0 };
}

function addTally(into: Tally, t: Tally): void {
  for (const k of Object.keys(into) as (keyof Tally)[]) into[k] += t[k];
}

/** Refuses a `since` further back than maxHistoryDays (MaxBillingHistoryDays). */
export function checkHistoryBound(since: TimeArg, maxHistoryDays: number, now: number, flag = '--since'): void {
  const oldest = now - maxHistoryDays * 86_400_000;
  if (since.ms < oldest) {
    const days = ((now - since.ms) / 86_400_000).toFixed(1);
    throw new ConfigError(
      `${flag} ${since.text} is ${days} days ago, further back than --max-history-days ${maxHistoryDays} (the old probe's MaxBillingHistoryDays); ` +
        `give a larger --max-history-days to go further back`,
    );
  }
}

interface Progress {
  last_datestamp: string | null;
  last_ctid: string | null;
  rows_scanned: string;
  rows_copied: string;
  finished_at: Date | null;
}

interface ChunkRow {
  scanned: number;
  copied: number;
  already_sent: number;
  p2p: number;
  not_tape: number;
  no_transaction: number;
  last_datestamp: string | null;
  last_ctid: string | null;
}

/**
 * The classification (and, unless counting, the copy) of the rows of one source in the range
 * after the saved position. Parameters: $1 since, $2 until, $3 source, $4 chunk size (NULL:
 * no limit, for counting), then $5 last datestamp and $6 last ctid (when resuming).
 *
 * Filtering is done here, in SQL, against the probe's own tables:
 *  - delivered: md5('<source>:<transaction>')::uuid in delivered_key, exactly the key the
 *    delivery computes (deliveryKey in src/queue.ts; it trims the transaction, as here);
 *  - waiting: the same source and transaction in capture_queue or quarantine (hash joins over
 *    those small tables; the delivered keys are probed by their primary key).
 * A row skipped here would also be recognised by the delivery (its dedup key), but not sending
 * it at all keeps the counts honest and the queue short.
 */
export function chunkSql(table: string, opts: { resume: boolean; limited: boolean; copy: boolean }): string {
  const resume = opts.resume ? 'AND b.datestamp >= $5 AND (b.datestamp, b.ctid) > ($5, $6::tid)' : '';
  const scanned = `
    SELECT b.datestamp AS d, b.ctid AS tid, to_jsonb(b) AS record
      FROM ${table} b
     WHERE b.datestamp >= $1::timestamptz AND b.datestamp < $2::timestamptz ${resume}
     ${opts.limited ? 'ORDER BY b.datestamp, b.ctid' : ''} LIMIT $4::bigint`;
  const classified = `
    SELECT s.d, s.tid, s.record, CASE
             WHEN s.record ->> 'p2p' = 'true' THEN 'p2p'
             WHEN $3::text = 'storageinfo' AND coalesce(s.record ->> 'action', '') NOT IN ('store', 'restore') THEN 'not-tape'
             WHEN s.key IS NULL THEN 'no-transaction'
             WHEN k.key IS NOT NULL OR q.tx IS NOT NULL OR z.tx IS NOT NULL THEN 'already-sent'
             ELSE 'copy' END AS fate
      FROM (SELECT s0.*, s0.record ->> 'transaction' AS tx,
                   CASE WHEN btrim(coalesce(s0.record ->> 'transaction', '')) = '' THEN NULL
                        ELSE md5($3::text || ':' || btrim(s0.record ->> 'transaction'))::uuid END AS key
              FROM scanned s0) s
      LEFT JOIN dcache_probe.delivered_key k ON k.key = s.key
      LEFT JOIN (SELECT DISTINCT record ->> 'transaction' AS tx FROM dcache_probe.capture_queue WHERE source = $3::text) q ON q.tx = s.tx
      LEFT JOIN (SELECT DISTINCT record ->> 'transaction' AS tx FROM dcache_probe.quarantine WHERE source = $3::text) z ON z.tx = s.tx`;
  const copied = opts.copy
    ? `, copied AS (
        INSERT INTO dcache_probe.capture_queue (source, record)
        SELECT $3::text, c.record FROM classified c WHERE c.fate = 'copy' ORDER BY c.d, c.tid
        RETURNING 1)`
    : '';
  const last = opts.limited
    ? `(SELECT s.d::text FROM scanned s ORDER BY s.d DESC, s.tid DESC LIMIT 1) AS last_datestamp,
       (SELECT s.tid::text FROM scanned s ORDER BY s.d DESC, s.tid DESC LIMIT 1) AS last_ctid`
    : 'NULL::text AS last_datestamp, NULL::text AS last_ctid';
  return `
    WITH scanned AS MATERIALIZED (${scanned}),
         classified AS MATERIALIZED (${classified})${copied}
    SELECT count(*)::int AS scanned,
           ${opts.copy ? '(SELECT count(*) FROM copied)::int' : "count(*) FILTER (WHERE fate = 'copy')::int"} AS copied,
           count(*) FILTER (WHERE fate = 'already-sent')::int AS already_sent,
           count(*) FILTER (WHERE fate = 'p2p')::int AS p2p,
           count(*) FILTER (WHERE fate = 'not-tape')::int AS not_tape,
           count(*) FILTER (WHERE fate = 'no-transaction')::int AS no_transaction,
           ${last}
      FROM classified`;
}

function tallyOf(r: ChunkRow): Tally {
  return { scanned: r.scanned, copied: r.copied, alreadySent: r.already_sent, p2p: r.p2p, notTape: r.not_tape, noTransaction: r.no_transaction };
}

/** The first migration's time: when the capture triggers were installed. */
async function installationTime(client: pg.ClientBase): Promise<number> {
  const { rows } = await client.query<{ ms: string }>('SELECT floor(extract(epoch FROM min(applied_at)) * 1000)::bigint AS ms FROM dcache_probe.schema_migration');
  return Number(rows[0]!.ms);
}

export async function runBackfill(o: BackfillOptions): Promise<BackfillResult> {
  const now = o.now ?? Date.now;
  const started = now();
  checkHistoryBound(o.since, o.maxHistoryDays, started);
  for (const [name, v] of [['--rate', o.rate], ['--max-queue', o.maxQueue], ['--chunk', o.chunkSize]] as const) {
    if (!(Number.isFinite(v) && v > 0)) throw new ConfigError(`${name} must be a positive number`);
  }
  if (o.limit !== undefined && !(Number.isInteger(o.limit) && o.limit > 0)) throw new ConfigError('--limit must be a positive whole number');

  const connect = async (): Promise<pg.Client> => {
    const c = new pg.Client({
      ...connectionConfig({ url: o.url, timeZone: o.timeZone, applicationName: 'dcache-probe backfill' }),
      query_timeout: o.dryRun ? undefined : o.queryTimeoutMs,
    });
    // A broken connection fails the query in hand; it must not end the process.
    c.on('error', () => undefined);
    try {
      await c.connect();
      // The saved datestamp is ISO text in the column's own type; read and write it the same way.
      await c.query("SET DateStyle = 'ISO, YMD'");
      return c;
    } catch (err) {
      void c.end().catch(() => undefined);
      throw err;
    }
  };
  // A database that cannot be reached at the start is an error (this is a command, not a
  // daemon); one that goes away mid-run (a restart) is waited for, and the run goes on from
  // the saved progress.
  let client = await connect();
  const outage = o.outage ?? new DatabaseOutage(o.log);
  /** Waits for the database after a connection fault and connects again; false if interrupted first. */
  const reconnect = async (fault: unknown): Promise<boolean> => {
    void client.end().catch(() => undefined);
    for (let failures = 1; ; failures++) {
      outage.fault(fault, 'backfill');
      await pause(backoffDelay(failures, 250, 5_000), o.signal);
      if (o.signal?.aborted) return false;
      try {
        client = await connect();
        outage.ok();
        return true;
      } catch (err) {
        if (!isConnectionFault(err)) throw err;
        fault = err;
      }
    }
  };
  try {
    await requireInstalled(client, 'this command');
    const billing = (await installedBillingSchema(client))!;
    const installedMs = await installationTime(client);
    const until: TimeArg = o.until ?? timeArgOf(formatUtc(installedMs + o.overlapSeconds * 1000));
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

    const sources: Source[] = ['billinginfo'];
    const hasStorage = await client.query('SELECT to_regclass($1) IS NOT NULL AS present', [`${client.escapeIdentifier(billing)}.storageinfo`]);
    if (hasStorage.rows[0]?.present && o.reportTape) sources.push('storageinfo');

    let remaining = o.limit ?? Infinity;
    let allComplete = true;
    let anyWasComplete = false;
    let pacedUntil = now();
    let lastReport = now();
    for (const source of sources) {
      if (result.stoppedBy === 'signal') {
        allComplete = false;
        break;
      }
      const table = `${client.escapeIdentifier(billing)}.${client.escapeIdentifier(source)}`;
      const key = [o.since.text, until.text, source];
      if (!o.dryRun) {
        await client.query(
          `INSERT INTO dcache_probe.backfill_progress (range_since, range_until, source) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
          key,
        );
      }
      if (o.restart && !o.dryRun) {
        await client.query(
          `UPDATE dcache_probe.backfill_progress SET last_datestamp = NULL, last_ctid = NULL, rows_scanned = 0, rows_copied = 0,
                  started_at = now(), updated_at = now(), finished_at = NULL
            WHERE range_since = $1 AND range_until = $2 AND source = $3`,
          key,
        );
      }
      const readProgress = async (lock: boolean): Promise<Progress> => {
        const none: Progress = { last_datestamp: null, last_ctid: null, rows_scanned: '0', rows_copied: '0', finished_at: null };
        const { rows } = await client.query<Progress>(
          `SELECT last_datestamp, last_ctid::text AS last_ctid, rows_scanned, rows_copied, finished_at FROM dcache_probe.backfill_progress
            WHERE range_since = $1 AND range_until = $2 AND source = $3 ${lock ? 'FOR UPDATE' : ''}`,
          key,
        );
        return rows[0] ?? none;
      };
      /** One chunk in one transaction: copy, record the progress, wake the listener; null when another run finished the range. */
      const copyChunk = async (chunk: number): Promise<ChunkRow | null> => {
        await client.query('BEGIN');
        try {
          const progress = await readProgress(true); // serialises concurrent runs of the same range
          if (progress.finished_at) {
            await client.query('COMMIT');
            return null;
          }
          const resume = progress.last_datestamp !== null;
          const values: unknown[] = [o.since.text, until.text, source, chunk];
          if (resume) values.push(progress.last_datestamp, progress.last_ctid);
          const row = (await client.query<ChunkRow>(chunkSql(table, { resume, limited: true, copy: true }), values)).rows[0]!;
          const done = row.scanned < chunk;
          await client.query(
            `UPDATE dcache_probe.backfill_progress
                SET last_datestamp = coalesce($4, last_datestamp), last_ctid = coalesce($5::tid, last_ctid),
                    rows_scanned = rows_scanned + $6, rows_copied = rows_copied + $7, updated_at = now(),
                    finished_at = CASE WHEN $8::boolean THEN now() END
              WHERE range_since = $1 AND range_until = $2 AND source = $3`,
            [...key, row.last_datestamp, row.last_ctid, row.scanned, row.copied, done],
          );
          // Wake the listener: these rows did not come through the trigger.
          if (row.copied > 0) await client.query('SELECT pg_notify($1, $2)', [WAKE_CHANNEL, '']);
          await client.query('COMMIT');
          return row;
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw err;
        }
      };
      const tally = emptyTally();
      result.sources[source] = tally;
      const progress = await readProgress(false);
      if (progress.finished_at && !(o.restart && o.dryRun)) {
        anyWasComplete = true;
        o.print(
          `${source}: this range was backfilled completely on ${progress.finished_at.toISOString()} (${progress.rows_copied} rows copied); nothing to do (--restart scans it again)`,
        );
        continue;
      }
      const resumeFrom = o.restart ? null : progress.last_datestamp;
      if (resumeFrom) o.print(`${source}: resuming after datestamp ${resumeFrom} (${progress.rows_copied} rows copied by earlier runs)`);

      if (o.dryRun) {
        const values: unknown[] = [o.since.text, until.text, source, null];
        if (resumeFrom) values.push(progress.last_datestamp, progress.last_ctid);
        const { rows } = await client.query<ChunkRow>(chunkSql(table, { resume: Boolean(resumeFrom), limited: false, copy: false }), values);
        addTally(tally, tallyOf(rows[0]!));
        allComplete = false;
        continue;
      }

      for (;;) {
        if (o.signal?.aborted) {
          result.stoppedBy = 'signal';
          break;
        }
        if (remaining <= 0) {
          result.stoppedBy = 'limit';
          break;
        }
        const chunk = Math.max(1, Math.min(o.chunkSize, o.maxQueue, remaining));
        let chunkStarted = now();
        let row: ChunkRow | null;
        try {
          // Never more than maxQueue rows waiting: wait for the probe to deliver.
          let toldAt: number | null = null;
          for (;;) {
            const { rows } = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM dcache_probe.capture_queue');
            if (rows[0]!.n + chunk <= o.maxQueue || o.signal?.aborted) break;
            if (toldAt === null || now() - toldAt >= 30_000) {
              o.log.info('backfill waiting for the probe to deliver: the capture queue is full (is "dcache-probe run" running?)', { queued: rows[0]!.n, maxQueue: o.maxQueue });
              toldAt = now();
            }
            await pause(500, o.signal);
          }
          if (o.signal?.aborted) continue;
          const wait = pacedUntil - now();
          if (wait > 0) await pause(wait, o.signal);
          chunkStarted = now();
          row = await copyChunk(chunk);
          outage.ok();
        } catch (err) {
          // The chunk in hand rolled back (or committed, if only its answer was lost): the
          // saved progress says which, and the next chunk starts from there.
          if (isConnectionFault(err) && !o.signal?.aborted && (await reconnect(err))) continue;
          throw err;
        }
        if (row === null) break; // another run finished the range
        addTally(tally, tallyOf(row));
        remaining -= row.scanned;
        // --rate: the next chunk starts no sooner than this one's rows allow (from its start).
        pacedUntil = Math.max(pacedUntil, chunkStarted) + (row.copied / o.rate) * 1000;
        if (now() - lastReport >= 5000) {
          o.log.info('backfill progress', { source, copied: tally.copied, scanned: tally.scanned, upTo: row.last_datestamp });
          lastReport = now();
        }
        if (row.scanned < chunk) break;
      }
      if (result.stoppedBy === 'signal' || !(await readProgress(false)).finished_at) allComplete = false;
    }
    for (const t of Object.values(result.sources)) addTally(result.total, t);
    result.complete = !o.dryRun && allComplete;
    result.alreadyComplete = anyWasComplete && result.total.scanned === 0 && allComplete;
    if (result.complete) result.stoppedBy = undefined;
    result.seconds = (now() - started) / 1000;
    return result;
  } finally {
    await client.end().catch(() => undefined);
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
  const per = (Object.entries(r.sources) as [Source, Tally][]).map(([s, x]) => `${s} ${x.copied}`).join(', ');
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
