/**
 * Delivery: claim a batch from the queue, turn it into records, send them, and settle the
 * rows. No transaction is open while the collector is asked (migration 008):
 *
 *  1. claim: one short transaction under the claim lock: give back expired leases, pick up to
 *     bundleSize ready rows and lease them, in one statement. Then, with nothing open, read the
 *     rows and encode them; and in another short transaction reserve their delivery keys. A
 *     batch with nothing to send (or in Summarize mode) is settled in that transaction.
 *  2. send: nothing open. The lease is renewed meanwhile (one-statement transactions); when it
 *     cannot be kept (the database is gone past the lease, or another probe took it over), the
 *     send is abandoned.
 *  3. settle: one short transaction, fenced by the lease: rows deleted, keys kept, refused
 *     records quarantined, ledger and hooks. If the collector could not be reached, the lease
 *     is given back instead and the rows stay queued.
 *
 * Outcomes per claimed row:
 *  - delivered:   acknowledged by the collector (200 "OK")
 *  - duplicate:   its transaction was already delivered (two billing cells insert every row)
 *  - skipped:     not reportable (pool-to-pool copies, tape rows when tape reporting is off)
 *  - quarantined: could not be encoded, or the collector refused exactly this record
 *  - left:        stays queued: its transaction is in flight in another lease, or this
 *                 batch's lease was lost (the rows are another probe's now)
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type pg from 'pg';
import { inTransaction } from '../db/pool';
import type { Logger } from '../logger';
import { errorMessage } from '../lib';
import { mapRow, type MappingOptions, type UsageRecord } from '../record/mapping';
import { deliveryKey } from '../db/delivery-key';
import { CaptureQueue, ClaimBusy, ledgerEntries, type QuarantineEntry } from '../db/queue';
import { planEncodedBodies } from '../record/envelope';
import { EncodeError, type CapturedRow } from '../record/types';
import type { RecordSender } from './sender';
import { addToSummaries, aggregate } from './summaries';
import { usageRecordForm } from '../record/xml';

/** A record the collector acknowledged, with the row it came from. */
export interface DeliveredRecord {
  row: CapturedRow;
  record: UsageRecord;
}

export interface DeliveryOptions {
  bundleSize: number;
  maxBundleBytes: number;
  doorGraceSeconds: number;
  /** How long a claim holds its rows without a renewal (pipeline.leaseSeconds). */
  leaseSeconds: number;
  mapping: MappingOptions;
  /**
   * Runs inside the settling transaction, before COMMIT: for state that must agree exactly
   * with what was delivered (e.g. statistics).
   */
  onDelivered?: (client: pg.ClientBase, delivered: readonly DeliveredRecord[]) => Promise<void>;
  /** Summarize mode: records are added to hourly summaries (sent by src/pipeline/summaries.ts), not sent. */
  summarize?: boolean;
}

export interface BatchResult {
  claimed: number;
  delivered: number;
  duplicates: number;
  skipped: number;
  quarantined: number;
  /** Claimed rows that stay queued (see the module comment); claimed - left were settled. */
  left: number;
  /** Collector requests made (after splitting). */
  requests: number;
  /** Set when the collector could not be reached; the batch's lease was given back. */
  unavailable?: string;
  /** Commit-to-acknowledgement latencies (capture time to ack), ms, one per delivered row. */
  latenciesMs: number[];
}

export function emptyResult(): BatchResult {
  return { claimed: 0, delivered: 0, duplicates: 0, skipped: 0, quarantined: 0, left: 0, requests: 0, latenciesMs: [] };
}

/** A row on its way: the encoded record and what it came from. */
interface Encoded {
  row: CapturedRow;
  record: UsageRecord;
  /** Its line of the multiupdate body, form-encoded (usageRecordForm): all a body needs of it. */
  form: string;
}

/** A claimed row with a delivery key: to send, or held back by a switch (identity quarantine). */
interface Keyed {
  row: CapturedRow;
  key: string;
  encoded?: Encoded;
  heldBack?: string;
}

/** What a claimed batch became, decided in the claim and completed by the collector's answers. */
interface Batch {
  rows: CapturedRow[];
  /** The lease's id, until the batch is settled or given back. */
  lease: string | null;
  skipped: CapturedRow[];
  quarantine: QuarantineEntry[];
  keyed: Keyed[];
  toSend: Encoded[];
  duplicates: number;
  /** Rows whose transaction another lease has in flight: settled as duplicates or left. */
  waiting: Keyed[];
}

class CollectorUnavailable extends Error {}

/** Bodies are never planned smaller than this (a single record is always sent alone). */
const MIN_BODY_LIMIT = 16 * 1024;

/** Identifies this process's leases in dcache_probe.claim (for people reading it). */
function leaseOwner(): string {
  return `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
}

/**
 * Keeps a batch's lease while its records are on their way: renews it every third of the
 * lease, and aborts the send when it can no longer be sure the lease holds (a renewal said it
 * is gone, or none succeeded for five sixths of the lease: the margin covers the time a renewal
 * takes). Times are the probe's own, measured from before each renewal was sent, so the
 * database's clock never has to agree with ours.
 */
class LeaseKeeper {
  private readonly controller = new AbortController();
  private readonly renewals: NodeJS.Timeout;
  private expiry: NodeJS.Timeout | null = null;
  private renewing = false;
  lost: string | null = null;
  readonly signal: AbortSignal;

  constructor(
    private readonly queue: CaptureQueue,
    private readonly pool: pg.Pool,
    private readonly batch: string,
    private readonly leaseSeconds: number,
    heldSince: number,
    outer: AbortSignal | undefined,
  ) {
    this.signal = outer ? AbortSignal.any([outer, this.controller.signal]) : this.controller.signal;
    this.extend(heldSince);
    this.renewals = setInterval(() => void this.renew(), (leaseSeconds * 1000) / 3);
    this.renewals.unref();
  }

  private extend(from: number): void {
    if (this.expiry) clearTimeout(this.expiry);
    const ms = from + (this.leaseSeconds * 1000 * 5) / 6 - Date.now();
    this.expiry = setTimeout(() => this.lose(`no renewal succeeded within ${this.leaseSeconds * (5 / 6)} s`), Math.max(0, ms));
    this.expiry.unref();
  }

  private async renew(): Promise<void> {
    if (this.renewing || this.lost) return;
    this.renewing = true;
    const before = Date.now();
    try {
      if (await this.queue.renewLease(this.pool, this.batch, this.leaseSeconds)) this.extend(before);
      else this.lose('another probe took the lease over');
    } catch {
      // The database is unreachable: the next renewal tries again; the expiry timer decides.
    } finally {
      this.renewing = false;
    }
  }

  private lose(why: string): void {
    if (this.lost) return;
    this.lost = why;
    this.controller.abort();
  }

  stop(): void {
    clearInterval(this.renewals);
    if (this.expiry) clearTimeout(this.expiry);
  }
}

export class Delivery {
  /** Body limit; lowered when a collector answers "too large" (as the Gratia library did). */
  private bodyLimit: number;
  private readonly owner = leaseOwner();

  /** The mapping options (summary records are built with the same). */
  get mapping(): MappingOptions {
    return this.options.mapping;
  }

  constructor(
    private readonly pool: pg.Pool,
    private readonly queue: CaptureQueue,
    private readonly sender: RecordSender,
    private readonly options: DeliveryOptions,
    private readonly log: Logger,
  ) {
    this.bodyLimit = options.maxBundleBytes;
  }

  /** Claims and delivers one batch. */
  async deliverBatch(signal?: AbortSignal): Promise<BatchResult> {
    const result = emptyResult();
    const lease = await this.claim();
    if (lease === null) return result;
    const rows = await this.queue.leasedRows(this.pool, lease);
    result.claimed = rows.length;
    const batch = this.encode(lease, rows);
    const reservedAt = Date.now();
    const kept = await inTransaction(this.pool, (client) => this.reserve(client, batch, result));
    if (!kept) {
      result.left = rows.length;
      this.log.warn('lease lost before its keys were reserved (was the probe stopped?): whoever took it delivers the rows', { rows: rows.length });
      return result;
    }
    if (batch.lease === null) return result; // settled with the reservation: nothing to send

    const keeper = new LeaseKeeper(this.queue, this.pool, batch.lease, this.options.leaseSeconds, reservedAt, signal);
    let unavailable: string | null = null;
    try {
      await this.sendAll(batch.toSend, batch.quarantine, result, keeper.signal);
    } catch (err) {
      if (!(err instanceof CollectorUnavailable)) throw err;
      unavailable = err.message;
    } finally {
      keeper.stop();
    }
    if (keeper.lost !== null || unavailable !== null) {
      // Give the rows back at once (if the database is unreachable, the lease runs out by itself).
      await this.queue.releaseLease(this.pool, batch.lease).catch(() => undefined);
      result.left = batch.rows.length;
      if (keeper.lost !== null && !signal?.aborted) {
        this.log.warn('lease lost while the collector was asked: gave the batch up; its rows are delivered again (byte-identical)', { reason: keeper.lost, rows: batch.rows.length });
        return result;
      }
      return { ...result, unavailable: unavailable ?? 'stopped' };
    }
    const settled = await inTransaction(this.pool, async (client) => {
      if (!(await this.queue.endLease(client, batch.lease!))) return false;
      await this.settle(client, batch, result);
      return true;
    });
    if (!settled) {
      result.left = batch.rows.length;
      this.log.warn('lease lost before the collector answered: whoever took it delivers the rows again (byte-identical)', { rows: batch.rows.length });
    }
    return result;
  }

  /**
   * The claim transaction, under the claim lock: gives back expired leases, then picks and
   * leases ready rows. Returns the lease, or null when nothing is ready (or another probe's
   * claim held the lock too long: the next cycle looks again).
   */
  private async claim(): Promise<string | null> {
    try {
      return await inTransaction(this.pool, async (client) => {
        await this.queue.claimLock(client);
        for (const expired of await this.queue.expireLeases(client)) {
          this.log.warn('took back a lease that was not renewed in time; its rows are delivered again', { owner: expired.owner, rows: expired.rows });
        }
        return this.queue.pickAndLease(client, this.options.bundleSize, this.options.doorGraceSeconds, this.owner, this.options.leaseSeconds);
      });
    } catch (err) {
      if (!(err instanceof ClaimBusy)) throw err;
      this.log.debug(err.message);
      return null;
    }
  }

  /**
   * Reserves the batch's delivery keys and sorts its rows by what to do with them. A batch with
   * nothing to send, and every batch in Summarize mode, is settled here and its lease ended.
   * Fenced like the acknowledgement: the lease is renewed with the reservation (which also
   * locks its row against expiry until this commits); false, and nothing changed, if it was
   * already gone.
   */
  private async reserve(client: pg.ClientBase, batch: Batch, result: BatchResult): Promise<boolean> {
    const fresh = await this.queue.renewAndReserve(client, batch.lease!, this.options.leaseSeconds, batch.keyed.map((k) => k.key));
    if (fresh === null) return false;
    // Keep the first row of each transaction whose key was free. A taken key was delivered, or
    // is in flight in another lease (or was given back just now): then the row waits, and the
    // settling transaction looks at the key again.
    const taken = await this.queue.keyStates(client, batch.keyed.filter((k) => !fresh.has(k.key)).map((k) => k.key));
    const seen = new Set<string>();
    for (const k of batch.keyed) {
      const first = !seen.has(k.key);
      seen.add(k.key);
      if (first && fresh.has(k.key)) {
        if (k.heldBack !== undefined) batch.quarantine.push({ id: k.row.id, door: k.row.door, stage: 'identity', reason: k.heldBack });
        else batch.toSend.push(k.encoded!);
      } else if (!first || taken.get(k.key) === 'delivered') batch.duplicates++;
      else batch.waiting.push(k);
    }

    if (this.options.summarize) await addToSummaries(client, aggregate(batch.toSend.map((e) => e.record)));
    if (batch.toSend.length === 0 || this.options.summarize) {
      await this.queue.endLease(client, batch.lease!);
      batch.lease = null;
      await this.settle(client, batch, result);
    }
    return true;
  }

  /** Maps and encodes each claimed row (pure, apart from the identity files' lookups). */
  private encode(lease: string, rows: CapturedRow[]): Batch {
    const batch: Batch = { rows, lease, skipped: [], quarantine: [], keyed: [], toSend: [], duplicates: 0, waiting: [] };
    for (const row of rows) {
      try {
        const mapped = mapRow(row, this.options.mapping);
        if (mapped.kind === 'skip') {
          batch.skipped.push(row);
          continue;
        }
        const key = deliveryKey(row.source, String(row.record.transaction));
        if (mapped.kind === 'quarantine') batch.keyed.push({ row, key, heldBack: mapped.reason });
        else batch.keyed.push({ row, key, encoded: { row, record: mapped.record, form: usageRecordForm(mapped.record) } });
      } catch (err) {
        const reason = err instanceof EncodeError ? err.message : `cannot encode: ${errorMessage(err)}`;
        batch.quarantine.push({ id: row.id, door: row.door, stage: 'encode', reason });
      }
    }
    return batch;
  }

  /**
   * Records every settled row's fate in one transaction: refused keys released, quarantine,
   * rows removed, ledger, hooks. Rows still waiting for another lease's outcome stay queued
   * unless that transaction turned out delivered.
   */
  private async settle(client: pg.ClientBase, batch: Batch, result: BatchResult): Promise<void> {
    // A waiting row is a duplicate once its transaction is delivered; while it is in flight,
    // or after its lease was given back undelivered, the row stays queued.
    const states = await this.queue.keyStates(client, batch.waiting.map((k) => k.key));
    const left = new Set(batch.waiting.filter((k) => states.get(k.key) !== 'delivered').map((k) => k.row.id));

    // A record the collector refused was not delivered: forget its key, so that an
    // operator's "quarantine retry" can deliver it later.
    const keyOf = new Map(batch.keyed.map((k) => [k.row.id, k.key]));
    const refused = new Set(batch.quarantine.filter((q) => q.stage === 'collector').map((q) => q.id));
    await this.queue.forgetDelivered(client, [...refused].map((id) => keyOf.get(id)!));
    await this.queue.quarantine(client, batch.quarantine);
    await this.queue.remove(client, batch.rows.filter((r) => !left.has(r.id)).map((r) => r.id));
    const acknowledged = batch.toSend.filter((e) => !refused.has(e.row.id));
    const delivered = acknowledged.map((e) => e.row);
    await this.queue.addToLedger(client, ledgerEntries([...delivered.map((row) => ({ row, delivered: true })), ...batch.skipped.map((row) => ({ row, delivered: false }))]));
    await this.options.onDelivered?.(client, acknowledged.map((e) => ({ row: e.row, record: e.record })));

    result.quarantined = batch.quarantine.length;
    result.skipped = batch.skipped.length;
    result.duplicates = batch.duplicates + batch.waiting.length - left.size;
    result.left = left.size;
    result.delivered = delivered.length;
    const ackedAt = Date.now();
    // (In summarize mode the rows are only summed here; their records go out by the hour.)
    if (!this.options.summarize) for (const row of delivered) result.latenciesMs.push(ackedAt - row.capturedAtMs);
    for (const q of batch.quarantine) this.log.warn('quarantined a billing row', { stage: q.stage, reason: q.reason, queueId: q.id });
  }

  /**
   * Sends encoded records in bodies under the size limit. A refused body is split in halves
   * until the refused records are found; those are quarantined with the collector's answer.
   * Throws CollectorUnavailable when the collector cannot be reached within the retry budget.
   */
  private async sendAll(records: Encoded[], quarantine: QuarantineEntry[], result: BatchResult, signal?: AbortSignal): Promise<void> {
    const send = async (part: Encoded[]): Promise<void> => {
      if (part.length === 0) return;
      for (const body of planEncodedBodies(part.map((e) => e.form), this.options.mapping.probeName, this.bodyLimit, 0)) {
        const slice = part.slice(body.start, body.end);
        result.requests++;
        const outcome = await this.sender.send(body.form, signal);
        if (outcome.kind === 'accepted') continue;
        if (outcome.kind === 'unavailable') throw new CollectorUnavailable(outcome.answer);
        if (outcome.kind === 'too-large') {
          const size = Buffer.byteLength(body.form);
          this.bodyLimit = Math.max(MIN_BODY_LIMIT, Math.min(this.bodyLimit, Math.floor(size * 0.9)));
          this.log.warn('collector says the bundle is too large; sending smaller bundles from now on', { bytes: size, newLimit: this.bodyLimit, answer: outcome.answer });
        }
        if (slice.length === 1) {
          const only = slice[0]!;
          quarantine.push({ id: only.row.id, door: only.row.door, stage: 'collector', reason: `collector refused the record: ${outcome.answer}` });
          continue;
        }
        if (outcome.kind === 'rejected') this.log.info('collector refused a bundle; splitting it to find the refused records', { records: slice.length, answer: outcome.answer });
        const mid = Math.ceil(slice.length / 2);
        await send(slice.slice(0, mid));
        await send(slice.slice(mid));
      }
    };
    await send(records);
  }
}
