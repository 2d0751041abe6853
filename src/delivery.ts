/**
 * Delivery: claim a batch from the queue, turn it into records, send them, and delete the
 * rows in the same transaction only after the collector acknowledged them.
 *
 * Outcomes per claimed row, all decided inside one transaction:
 *  - delivered:   acknowledged by the collector (200 "OK")
 *  - duplicate:   its transaction was already delivered (two billing cells insert every row)
 *  - skipped:     not reportable (pool-to-pool copies, tape rows when tape reporting is off)
 *  - quarantined: could not be encoded, or the collector refused exactly this record
 * If the collector is unavailable the transaction rolls back and the rows stay queued.
 */
import type pg from 'pg';
import type { Logger } from './logger';
import { EncodeError, mapRow, type CapturedRow, type MappingOptions, type UsageRecord } from './mapping';
import { CaptureQueue, deliveryKey, ledgerEntries, type QuarantineEntry } from './queue';
import { planBodies, type CollectorSender } from './sender';
import { addToSummaries, aggregate } from './summary';
import { usageRecordXml } from './xml';

/** A record the collector acknowledged, with the row it came from. */
export interface DeliveredRecord {
  row: CapturedRow;
  record: UsageRecord;
}

export interface DeliveryOptions {
  bundleSize: number;
  maxBundleBytes: number;
  doorGraceSeconds: number;
  mapping: MappingOptions;
  /**
   * Runs inside the delivery transaction, after the collector acknowledged, before COMMIT:
   * for state that must agree exactly with what was delivered (e.g. statistics).
   */
  onDelivered?: (client: pg.ClientBase, delivered: readonly DeliveredRecord[]) => Promise<void>;
  /** Summarize mode: records are added to hourly summaries (sent by summary.ts), not sent. */
  summarize?: boolean;
}

export interface BatchResult {
  claimed: number;
  delivered: number;
  duplicates: number;
  skipped: number;
  quarantined: number;
  /** Collector requests made (after splitting). */
  requests: number;
  /** Set when the collector could not be reached; nothing of the batch was committed. */
  unavailable?: string;
  /** Commit-to-acknowledgement latencies (capture time to ack), ms, one per delivered row. */
  latenciesMs: number[];
}

export function emptyResult(): BatchResult {
  return { claimed: 0, delivered: 0, duplicates: 0, skipped: 0, quarantined: 0, requests: 0, latenciesMs: [] };
}

/** A row on its way: the encoded record and what it came from. */
interface Encoded {
  row: CapturedRow;
  record: UsageRecord;
  xml: string;
}

class CollectorUnavailable extends Error {}

/** Bodies are never planned smaller than this (a single record is always sent alone). */
const MIN_BODY_LIMIT = 16 * 1024;

export class Delivery {
  /** Body limit; lowered when a collector answers "too large" (as the Gratia library did). */
  private bodyLimit: number;

  /** The mapping options (summary records are built with the same). */
  get mapping(): MappingOptions {
    return this.options.mapping;
  }

  constructor(
    private readonly pool: pg.Pool,
    private readonly queue: CaptureQueue,
    private readonly sender: CollectorSender,
    private readonly options: DeliveryOptions,
    private readonly log: Logger,
  ) {
    this.bodyLimit = options.maxBundleBytes;
  }

  /** Claims and delivers one batch. */
  async deliverBatch(signal?: AbortSignal): Promise<BatchResult> {
    const result = emptyResult();
    const client = await this.pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      const rows = await this.queue.claim(client, this.options.bundleSize, this.options.doorGraceSeconds);
      result.claimed = rows.length;
      if (rows.length === 0) {
        await client.query('COMMIT');
        return result;
      }

      const quarantine: QuarantineEntry[] = [];
      const skipped: CapturedRow[] = [];
      // Rows with a transaction: to send, or held back by a switch. Both take a delivery key,
      // so that the second copy of a transaction (two billing cells) is a duplicate either way.
      const keyed: { row: CapturedRow; key: string; xml?: string; record?: UsageRecord; heldBack?: string }[] = [];
      for (const row of rows) {
        try {
          const mapped = mapRow(row, this.options.mapping);
          if (mapped.kind === 'skip') {
            skipped.push(row);
            continue;
          }
          const key = deliveryKey(row.source, String(row.record.transaction));
          if (mapped.kind === 'quarantine') keyed.push({ row, key, heldBack: mapped.reason });
          else keyed.push({ row, key, xml: usageRecordXml(mapped.record), record: mapped.record });
        } catch (err) {
          const reason = err instanceof EncodeError ? err.message : `cannot encode: ${(err as Error).message}`;
          quarantine.push({ id: row.id, door: row.door, stage: 'encode', reason });
        }
      }

      // Keep the first row of each transaction not yet delivered; drop the rest as duplicates.
      const fresh = await this.queue.markDelivered(client, keyed.map((k) => k.key));
      const toSend: Encoded[] = [];
      for (const k of keyed) {
        if (!fresh.delete(k.key)) result.duplicates++;
        else if (k.heldBack !== undefined) quarantine.push({ id: k.row.id, door: k.row.door, stage: 'identity', reason: k.heldBack });
        else toSend.push({ row: k.row, xml: k.xml!, record: k.record! });
      }

      const keyOf = new Map(keyed.map((k) => [k.row.id, k.key]));
      if (this.options.summarize) await addToSummaries(client, aggregate(toSend.map((e) => e.record)));
      else await this.sendAll(toSend, quarantine, result, signal);

      // A record the collector refused was not delivered: forget its key, so that an
      // operator's "quarantine retry" can deliver it later.
      const refused = new Set(quarantine.filter((q) => q.stage === 'collector').map((q) => q.id));
      await this.queue.forgetDelivered(client, [...refused].map((id) => keyOf.get(id)!));
      await this.queue.quarantine(client, quarantine);
      await this.queue.remove(client, rows.map((r) => r.id));
      const acknowledged = toSend.filter((e) => !refused.has(e.row.id));
      const delivered = acknowledged.map((e) => e.row);
      await this.queue.addToLedger(client, ledgerEntries([...delivered.map((row) => ({ row, delivered: true })), ...skipped.map((row) => ({ row, delivered: false }))]));
      await this.options.onDelivered?.(client, acknowledged.map((e) => ({ row: e.row, record: e.record })));
      await client.query('COMMIT');
      result.quarantined = quarantine.length;
      result.skipped = skipped.length;
      const ackedAt = Date.now();
      // (In summarize mode the rows are only summed here; their records go out by the hour.)
      if (!this.options.summarize) for (const row of delivered) result.latenciesMs.push(ackedAt - row.capturedAtMs);
      result.delivered = delivered.length;
      for (const q of quarantine) this.log.warn('quarantined a billing row', { stage: q.stage, reason: q.reason, queueId: q.id });
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      if (err instanceof CollectorUnavailable) {
        return { ...emptyResult(), claimed: result.claimed, requests: result.requests, unavailable: err.message };
      }
      broken = true;
      throw err;
    } finally {
      client.release(broken);
    }
  }

  /**
   * Sends encoded records in bodies under the size limit. A refused body is split in halves
   * until the refused records are found; those are quarantined with the collector's answer.
   * Throws CollectorUnavailable when the collector cannot be reached within the retry budget.
   */
  private async sendAll(records: Encoded[], quarantine: QuarantineEntry[], result: BatchResult, signal?: AbortSignal): Promise<void> {
    const send = async (part: Encoded[]): Promise<void> => {
      if (part.length === 0) return;
      for (const body of planBodies(part.map((e) => e.xml), this.options.mapping.probeName, this.bodyLimit, 0)) {
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
