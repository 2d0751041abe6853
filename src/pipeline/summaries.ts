/**
 * Summarize mode (Gratia's Summarize="1"): instead of one record per transfer, one record per
 * hour and group of transfers that share user, VO, client, protocol, status and direction,
 * with Njobs, bytes and duration summed. The protocol of parts is explained in
 * sql/migrations/005_summary.sql. Grouping and the records are pure functions; the sending
 * is at the bottom, its SQL in src/db/summaries.ts.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { addSummaryGroups, closeSummaryPart, dueSummaryHours, lockOpenParts, markSummaryPartSent, summaryPartGroups } from '../db/summaries';
import type { Logger } from '../logger';
import { isDcap, type MappingOptions, type UsageRecord } from '../record/mapping';
import { rfc3339 } from '../record/time';
import { HOUR_MS } from '../lib';
import { planBodies } from '../record/envelope';
import type { CollectorSender } from './sender';
import { usageRecordXml } from '../record/xml';

/** What every transfer of one summary group has in common. */
export interface SummaryDimensions {
  dn: string | null;
  localUserId: string | null;
  voName: string | null;
  reportableVoName: string | null;
  /** The far side: the client host for reads and writes. */
  client: string;
  protocol: string;
  status: number;
  isNew: boolean;
  action: string;
}

export interface SummaryGroup {
  hourMs: number;
  key: string;
  dimensions: SummaryDimensions;
  njobs: number;
  bytes: number;
  durationMs: number;
}

const resource = (r: UsageRecord, d: string) => r.resources.find((x) => x.description === d)?.value;

export function dimensionsOf(record: UsageRecord): SummaryDimensions {
  const isNew = resource(record, 'IsNew') === '1';
  return {
    dn: record.dn ?? null,
    localUserId: record.localUserId ?? null,
    voName: record.voName ?? null,
    reportableVoName: record.reportableVoName ?? null,
    client: (isNew ? resource(record, 'Source') : resource(record, 'Destination')) ?? 'unknown',
    protocol: resource(record, 'Protocol') ?? '<unknown>',
    status: record.status,
    isNew,
    action: record.action,
  };
}

/** A stable key: md5 of the dimensions in a fixed order, as a uuid. */
export function groupKey(d: SummaryDimensions): string {
  const canonical = JSON.stringify([d.dn, d.localUserId, d.voName, d.reportableVoName, d.client, d.protocol, d.status, d.isNew, d.action]);
  const hex = createHash('md5').update(canonical).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Sums records into groups per hour of their end time. */
export function aggregate(records: readonly UsageRecord[]): SummaryGroup[] {
  const groups = new Map<string, SummaryGroup>();
  for (const r of records) {
    const hourMs = Math.floor(r.endTimeMs / HOUR_MS) * HOUR_MS;
    const dimensions = dimensionsOf(r);
    const key = groupKey(dimensions);
    const id = `${hourMs}:${key}`;
    const g = groups.get(id) ?? { hourMs, key, dimensions, njobs: 0, bytes: 0, durationMs: 0 };
    g.njobs++;
    g.bytes += r.networkBytes;
    g.durationMs += r.durationMs;
    groups.set(id, g);
  }
  return [...groups.values()];
}

/**
 * The summary record of one group and part. Everything in it is derived from the group, so the
 * same part always gives the same bytes: LocalJobId and recordId name hour, group and part,
 * and createTime is the end of the hour.
 */
export function summaryRecord(g: SummaryGroup, part: number, opts: MappingOptions): UsageRecord {
  const hour = rfc3339(g.hourMs).replace('.000Z', 'Z');
  const localJobId = `summary:${hour}:${g.key}:${part}`;
  const site = opts.dcacheServerHost;
  const d = g.dimensions;
  return {
    recordId: `${opts.probeName}:${localJobId}`,
    createTimeMs: g.hourMs + HOUR_MS,
    localJobId,
    dn: d.dn ?? undefined,
    localUserId: d.localUserId ?? undefined,
    voName: d.voName ?? undefined,
    reportableVoName: d.reportableVoName ?? undefined,
    resources: [
      { description: 'Source', value: d.isNew ? d.client : site },
      { description: 'Destination', value: d.isNew ? site : d.client },
      { description: 'Protocol', value: d.protocol },
      { description: 'IsNew', value: d.isNew ? '1' : '0' },
    ],
    startTimeMs: g.hourMs,
    endTimeMs: g.hourMs + HOUR_MS - 1,
    networkBytes: g.bytes,
    durationMs: g.durationMs,
    action: d.action,
    submitHost: d.client,
    status: d.status,
    probeName: opts.probeName,
    siteName: opts.siteName,
    grid: isDcap(d.protocol) ? 'Local' : opts.grid,
    njobs: g.njobs,
  };
}

// ---------------------------------------------------------------------------------------
// Database side

/**
 * Adds groups to their hours' open parts, inside the delivery transaction. The hours' state
 * rows are held FOR SHARE until that transaction ends, so a part cannot be closed while rows
 * are being added to it.
 */
export async function addToSummaries(client: pg.ClientBase, groups: readonly SummaryGroup[]): Promise<void> {
  if (groups.length === 0) return;
  const hours = [...new Set(groups.map((g) => g.hourMs))].sort((a, b) => a - b);
  const openPart = await lockOpenParts(client, hours);
  const sorted = [...groups].sort((a, b) => a.hourMs - b.hourMs || a.key.localeCompare(b.key));
  await addSummaryGroups(
    client,
    sorted.map((g) => ({ hourMs: g.hourMs, part: openPart.get(g.hourMs)!, key: g.key, dimensionsJson: JSON.stringify(g.dimensions), njobs: g.njobs, bytes: g.bytes, durationMs: g.durationMs })),
  );
}

export interface SummarySendResult {
  hoursSent: number;
  records: number;
  /** Set when the collector could not be reached; the closed part is sent again later. */
  unavailable?: string;
}

/**
 * Sends every complete hour's open or closed-but-unsent part: an hour is complete once it
 * ended `settleMs` ago (late movers and door rows have arrived). Stops at the first hour the
 * collector does not take.
 */
export async function sendCompleteHours(pool: pg.Pool, sender: CollectorSender, opts: MappingOptions, settleMs: number, maxBytes: number, log: Logger): Promise<SummarySendResult> {
  const result: SummarySendResult = { hoursSent: 0, records: 0 };
  // Round after round: re-sending a closed part can leave the hour's next part due too.
  for (;;) {
    const due = await dueSummaryHours(pool, settleMs / 1000);
    if (due.length === 0) return result;
    for (const hour of due) {
      if (!(await sendHourPart(pool, sender, opts, maxBytes, log, hour, result))) return result;
    }
  }
}

/** Closes (if needed), sends and records one part of one hour; false if the collector did not take it. */
async function sendHourPart(pool: pg.Pool, sender: CollectorSender, opts: MappingOptions, maxBytes: number, log: Logger, hour: Date, result: SummarySendResult): Promise<boolean> {
  // 1. Close the part (unless a failed attempt already closed it): from now on it is frozen.
  // (A connection lost here leaves the part as it was; the next cycle closes it.)
  const part = await closeSummaryPart(pool, hour);

  // 2. Send it.
  const groups = await summaryPartGroups<SummaryDimensions>(pool, hour, part);
  const xml = groups.map((g) => usageRecordXml(summaryRecord({ hourMs: hour.getTime(), ...g }, part, opts)));
  for (const body of planBodies(xml, opts.probeName, maxBytes, 0)) {
    const outcome = await sender.send(body.form);
    if (outcome.kind !== 'accepted') {
      // A refused summary cannot be quarantined row by row; keep it closed and say so.
      if (outcome.kind !== 'unavailable') log.error('collector refused summary records; they will be sent again', { hour: hour.toISOString(), part, answer: outcome.answer });
      result.unavailable = outcome.answer;
      return false;
    }
  }

  // 3. Record it as sent.
  await markSummaryPartSent(pool, hour, part);
  result.hoursSent++;
  result.records += xml.length;
  return true;
}
