/** Summarize mode: one record per hour and group, sent once the hour is complete. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TransferGenerator, messageStream, writeMessages, type SimTransfer } from '../src/tools/demo/simulator';
import type { UsageRecord } from '../src/record/mapping';
import { aggregate, groupKey, summaryRecord, dimensionsOf } from '../src/pipeline/summaries';
import { usageRecordXml } from '../src/record/xml';
import { startCollector, type CollectorProcess } from './helpers/collector';
import { withDatabaseAndCollector } from './helpers/fixture';
import { createBillingDatabase, type BillingDatabase } from './helpers/database';
import { fieldsOf } from './helpers/expectations';
import { pollOnce } from './helpers/probe';
import { queueDepth } from './helpers/scenario';

const HOUR = 3_600_000;
const OPTIONS = { probeName: 'dcache-transfer:test.example.org', siteName: 'S', grid: 'OSG', dcacheServerHost: 'dcache.example.org', reportTape: true };

const transfer = (over: Partial<UsageRecord> = {}): UsageRecord => ({
  recordId: 'r', createTimeMs: 0, localJobId: 'j', dn: '/CN=a', localUserId: 'a', voName: 'cms', reportableVoName: 'CMS',
  resources: [{ description: 'Source', value: 'pool@d@h' }, { description: 'Destination', value: '192.0.2.1' }, { description: 'Protocol', value: 'GFtp-2.0' }, { description: 'IsNew', value: '0' }],
  startTimeMs: 0, endTimeMs: Date.parse('2026-11-24T10:15:00Z'), networkBytes: 100, durationMs: 1000, action: 'transfer', status: 0, probeName: 'p', siteName: 'S', grid: 'OSG', ...over,
});

describe('summary groups (pure)', () => {
  it('sums Njobs, bytes and duration per hour and group', () => {
    const groups = aggregate([transfer(), transfer({ networkBytes: 50, durationMs: 500 }), transfer({ status: 10006 }), transfer({ endTimeMs: Date.parse('2026-11-24T11:00:00Z') })]);
    assert.equal(groups.length, 3);
    const main = groups.find((g) => g.dimensions.status === 0 && g.hourMs === Date.parse('2026-11-24T10:00:00Z'))!;
    assert.deepEqual([main.njobs, main.bytes, main.durationMs], [2, 150, 1500]);
  });

  it('gives the same group and part the same record, byte for byte', () => {
    const [g] = aggregate([transfer()]);
    const a = usageRecordXml(summaryRecord(g!, 1, OPTIONS));
    const b = usageRecordXml(summaryRecord(aggregate([transfer()])[0]!, 1, OPTIONS));
    assert.equal(a, b);
    assert.match(a, /<LocalJobId>summary:2026-11-24T10:00:00Z:[0-9a-f-]{36}:1<\/LocalJobId>/);
    assert.match(a, /<Njobs>1<\/Njobs>/);
    assert.match(a, /urwg:createTime="2026-11-24T11:00:00Z"/);
    assert.notEqual(usageRecordXml(summaryRecord(g!, 2, OPTIONS)), a, 'another part is another record');
    assert.equal(groupKey(dimensionsOf(transfer())), groupKey(dimensionsOf(transfer({ networkBytes: 7 }))));
  });
});

describe('summarize mode end to end', () => {
  let db: BillingDatabase;
  let collector: CollectorProcess;
  withDatabaseAndCollector('modern', (d, c) => ((db = d), (collector = c)));

  const hourStart = Math.floor(Date.now() / HOUR) * HOUR;
  const inHour = (hourStartMs: number, count: number, seed: number): SimTransfer[] => {
    const g = new TransferGenerator({ seed, now: () => hourStartMs + 20 * 60_000, clockSkewMs: 10 * 60_000 });
    return Array.from({ length: count }, () => g.next());
  };
  const poll = (extra: string[] = []) => pollOnce({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: ['--summarize', 'true', '--door-grace', '0', '--retry-budget', '1', '--retry-base-ms', '50', ...extra] });
  const summed = (records: { xml: string }[]) => records.map((r) => ({ ...fieldsOf(r.xml), njobs: Number(r.xml.match(/<Njobs>(\d+)<\/Njobs>/)![1]) }));

  it('sends complete hours only, one record per group, whose Njobs and bytes add up to the transfers', async () => {
    const past = inHour(hourStart - 3 * HOUR, 200, 81);
    const current = inHour(hourStart, 50, 82);
    await writeMessages(messageStream([...past, ...current], 7, 0), { url: db.url, writers: 4, maxTransactionRows: 20 });
    const result = await poll();
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await queueDepth(db), 0, 'every row was summed');
    const records = summed(await collector.records());
    const reportable = past.filter((t) => t.reportable);
    assert.ok(records.length > 1 && records.length < reportable.length, `${records.length} summary records for ${reportable.length} transfers`);
    assert.ok(records.every((r) => r.startTime === new Date(hourStart - 3 * HOUR).toISOString()), 'only the complete hour was sent');
    assert.equal(records.reduce((n, r) => n + r.njobs, 0), reportable.length);
    const bytes = reportable.reduce((n, t) => n + Math.max(0, t.mover.transfersize as number), 0);
    assert.equal(records.reduce((n, r) => n + Number(r.bytes), 0), bytes);
    // Nothing new on a second run: the hour was sent.
    assert.equal((await poll()).code, 0);
    assert.equal((await collector.records()).length, records.length);
  });

  it('sends rows that arrive after their hour was sent as a further record, and freezes a part once it is closed', async () => {
    await collector.reset();
    const hour = hourStart - 5 * HOUR;
    const first = inHour(hour, 60, 83);
    await writeMessages(messageStream(first, 7, 0), { url: db.url, writers: 2, maxTransactionRows: 10 });
    // The collector is down: part 1 is closed but not sent.
    await collector.fault({ mode: 'unavailable' });
    assert.equal((await poll()).code, 1);
    // Late rows for the same hour go into part 2, not into the closed part 1.
    const late = inHour(hour, 30, 84);
    await writeMessages(messageStream(late, 7, 0), { url: db.url, writers: 2, maxTransactionRows: 10 });
    await collector.fault({ mode: 'ok' });
    assert.equal((await poll()).code, 0);
    const records = summed(await collector.records());
    const part = (n: number) => records.filter((r) => r.localJobId.endsWith(`:${n}`));
    assert.equal(part(1).reduce((n, r) => n + r.njobs, 0), first.filter((t) => t.reportable).length);
    assert.equal(part(2).reduce((n, r) => n + r.njobs, 0), late.filter((t) => t.reportable).length);
    assert.equal(records.length, part(1).length + part(2).length);
  });
});
