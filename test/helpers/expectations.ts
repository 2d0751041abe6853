/**
 * What the collector should receive for simulated transfers, computed from the simulator's
 * own description of each transfer (not by the probe's mapping code), and a parser for the
 * records the collector accepted.
 */
import assert from 'node:assert/strict';
import { XMLParser } from 'fast-xml-parser';
import type { AcceptedRecord } from '../../src/tools/collector/server';
import type { SimTransfer } from '../../src/tools/demo/simulator';

export interface ReceivedFields {
  localJobId: string;
  dn?: string;
  localUserId?: string;
  source: string;
  destination: string;
  protocol: string;
  isNew: string;
  startTime: string;
  endTime: string;
  bytes: string;
  wallDuration: string;
  submitHost?: string;
  status: string;
  grid: string;
  siteName: string;
  probeName: string;
}

const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@', removeNSPrefix: true, parseTagValue: false, isArray: (name) => name === 'Resource' });

export function fieldsOf(xml: string): ReceivedFields {
  const r = parser.parse(xml).JobUsageRecord;
  const resource = (d: string) => (r.Resource as { '@description': string; '#text': string }[]).find((x) => x['@description'] === d)?.['#text'];
  return {
    localJobId: r.JobIdentity.LocalJobId,
    dn: r.UserIdentity?.DN,
    localUserId: r.UserIdentity?.LocalUserId,
    source: resource('Source')!,
    destination: resource('Destination')!,
    protocol: resource('Protocol')!,
    isNew: resource('IsNew')!,
    startTime: r.StartTime,
    endTime: r.EndTime,
    bytes: typeof r.Network === 'object' ? r.Network['#text'] : r.Network,
    wallDuration: r.WallDuration,
    submitHost: r.SubmitHost,
    status: r.Status,
    grid: r.Grid,
    siteName: r.SiteName,
    probeName: r.ProbeName,
  };
}

const DCACHE_HOST = 'dcache.example.org';

/** The fields a transfer must arrive with (probe started by helpers/probe.ts settings). */
export function expectedFields(t: SimTransfer): ReceivedFields {
  const m = t.mover;
  const end = (m.datestamp as Date).getTime();
  const broken = (m.transfersize as number) < 0;
  const durationMs = broken ? 0 : (m.connectiontime as number);
  const pool = `${m.cellname}@${DCACHE_HOST}`;
  const owner = (t.door?.owner ?? m.owner ?? undefined) as string | undefined;
  const doorClient = t.door?.client as string | undefined;
  const seconds = durationMs / 1000;
  return {
    localJobId: m.transaction as string,
    dn: owner?.startsWith('/') ? owner : undefined,
    localUserId: owner,
    source: m.isnew ? (m.client as string) : pool,
    destination: m.isnew ? pool : (m.client as string),
    protocol: m.protocol as string,
    isNew: m.isnew ? '1' : '0',
    startTime: new Date(end - durationMs).toISOString(),
    endTime: new Date(end).toISOString(),
    bytes: String(broken ? 0 : m.transfersize),
    wallDuration: `PT${seconds}S`,
    submitHost: doorClient && doorClient !== 'unknown' ? doorClient : (m.client as string),
    status: String(m.errorcode),
    grid: String(m.protocol).startsWith('DCap') ? 'Local' : 'OSG',
    siteName: 'TEST_SITE',
    probeName: 'dcache-transfer:test.example.org',
  };
}

export interface DeliveryCheck {
  /** Records received more than once (all byte-identical re-sends). */
  resent: number;
  latenciesMs: number[];
}

/**
 * Asserts that every reportable transfer arrived, nothing else did, each with the right
 * fields, and that any record received twice was byte-identical to its first copy.
 */
export function checkDelivery(transfers: readonly SimTransfer[], received: readonly AcceptedRecord[], committedAt?: Map<string, number>): DeliveryCheck {
  const expected = new Map<string, SimTransfer>();
  for (const t of transfers) if (t.reportable) expected.set(t.mover.transaction as string, t);
  const first = new Map<string, AcceptedRecord>();
  let resent = 0;
  for (const r of received) {
    const earlier = first.get(r.localJobId);
    if (earlier) {
      assert.equal(r.xml, earlier.xml, `a re-sent record of ${r.localJobId} differs from the first copy`);
      resent++;
    } else first.set(r.localJobId, r);
  }
  const unexpected = [...first.keys()].filter((id) => !expected.has(id));
  assert.deepEqual(unexpected, [], 'records for transfers that are not reportable (p2p) or unknown');
  const missing = [...expected.keys()].filter((id) => !first.has(id));
  assert.deepEqual(missing, [], 'reportable transfers that never arrived');
  for (const [id, t] of expected) assert.deepEqual(fieldsOf(first.get(id)!.xml), expectedFields(t), `fields of ${id}`);
  const latenciesMs: number[] = [];
  if (committedAt) for (const [id, r] of first) {
    const c = committedAt.get(id);
    if (c !== undefined) latenciesMs.push(r.receivedAt - c);
  }
  return { resent, latenciesMs };
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
