/**
 * Delivery in-process: the real Delivery, CaptureQueue, billing schema and migrations on the
 * real PostgreSQL, with a scripted collector in place of CollectorSender (a RecordSender that
 * answers by the records a body carries). What the collector refuses is found by splitting
 * and quarantined alone; what is refused or could not be sent gives its delivery keys back,
 * so that a later delivery of it counts as delivered, not as a duplicate, and nothing is lost.
 */
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import pg from 'pg';
import { Delivery, type BatchResult, type DeliveryOptions } from '../src/pipeline/delivery';
import { silentLogger } from '../src/logger';
import { CaptureQueue } from '../src/db/queue';
import type { RecordSender, SendOutcome } from '../src/pipeline/sender';
import type { BillingDatabase } from './helpers/database';
import { withDatabaseAndPool } from './helpers/fixture';
import { queueDepth, quarantineSize } from './helpers/scenario';

const PROBE_NAME = 'dcache-transfer:test.example.org';
const OPTIONS: DeliveryOptions = {
  bundleSize: 50,
  maxBundleBytes: 1_800_000,
  doorGraceSeconds: 5,
  leaseSeconds: 30,
  mapping: { probeName: PROBE_NAME, siteName: 'TEST_SITE', grid: 'OSG', dcacheServerHost: 'dcache.example.org', reportTape: true },
};

/** The transactions (LocalJobIds) a multiupdate body carries, in order. */
function jobIdsOf(form: string): string[] {
  const envelope = new URLSearchParams(form).get('arg1') ?? '';
  return [...envelope.matchAll(/<LocalJobId>([^<]*)<\/LocalJobId>/g)].map((m) => m[1]!);
}

/**
 * A collector that answers each body by the records in it (`answer`), and keeps every body it
 * was sent and the records of those it accepted.
 */
class ScriptedCollector implements RecordSender {
  readonly bodies: string[] = [];
  private readonly answers: SendOutcome[] = [];
  constructor(private readonly answer: (jobIds: string[]) => SendOutcome) {}

  async send(body: string | Buffer): Promise<SendOutcome> {
    const form = typeof body === 'string' ? body : body.toString('latin1');
    const answer = this.answer(jobIdsOf(form));
    this.bodies.push(form);
    this.answers.push(answer);
    return answer;
  }

  /** The records of each body, in the order they were sent. */
  get requests(): string[][] {
    return this.bodies.map(jobIdsOf);
  }

  /** Every record of every accepted body (a record accepted twice is here twice). */
  get accepted(): string[] {
    return this.bodies.filter((_, i) => this.answers[i]!.kind === 'accepted').flatMap(jobIdsOf);
  }
}

const ACCEPT = (): SendOutcome => ({ kind: 'accepted', attempts: 1 });
const REFUSE_IF = (bad: string) => (ids: string[]): SendOutcome =>
  ids.includes(bad) ? { kind: 'rejected', attempts: 1, answer: 'HTTP 400: bad record' } : ACCEPT();
const UNAVAILABLE = (): SendOutcome => ({ kind: 'unavailable', attempts: 5, answer: 'ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:8880' });

/** The counts of a batch result that tell what happened to its rows. */
function outcome(r: BatchResult) {
  return { claimed: r.claimed, delivered: r.delivered, duplicates: r.duplicates, quarantined: r.quarantined, skipped: r.skipped, left: r.left, requests: r.requests };
}

describe('delivery against the real queue, with a scripted collector', () => {
  let db: BillingDatabase;
  let pool: pg.Pool;
  const queue = new CaptureQueue('public', (name) => pg.escapeIdentifier(name));
  const delivery = (collector: RecordSender) => new Delivery(pool, queue, collector, OPTIONS, silentLogger());

  withDatabaseAndPool('modern', (d, p) => ((db = d), (pool = p)), 4);
  beforeEach(async () => {
    for (const table of ['capture_queue', 'quarantine', 'delivered_key', 'claim', 'delivered_hour']) await db.query(`DELETE FROM dcache_probe.${table}`);
  });

  /** dCache writes one mover row per transaction (no door to wait for); the trigger captures it. */
  const transfer = (transaction: string) =>
    db.query(
      `INSERT INTO billinginfo (datestamp, cellname, action, transaction, pnfsid, initiator, protocol, isnew, transfersize, connectiontime, errorcode, client)
       VALUES ('2024-05-01 10:00:00+00', 'pool1@d', 'transfer', $1, 'AB01', '<undefined>', 'Http-1.1', false, 10, 5, 0, '192.0.2.1')`,
      [transaction],
    );
  const transfers = async (transactions: readonly string[]) => {
    for (const t of transactions) await transfer(t);
  };
  const keptKeys = async () => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM dcache_probe.delivered_key')).rows[0]!.n;
  const leases = async () => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM dcache_probe.claim')).rows[0]!.n;
  const ledger = async () => (await db.query<{ n: number }>('SELECT coalesce(sum(delivered), 0)::int AS n FROM dcache_probe.delivered_hour')).rows[0]!.n;

  const EIGHT = ['t-1', 't-2', 't-3', 't-4', 't-5', 't-6', 't-7', 't-8'];

  it('a bundle refused for one bad record is split until that record is found; it alone is quarantined, the rest delivered once', async () => {
    await transfers(EIGHT);
    const collector = new ScriptedCollector(REFUSE_IF('t-6'));

    const result = await delivery(collector).deliverBatch();

    // Halves are sent until the refused record stands alone: 8 -> 4 + 4 -> 2 + 2 -> 1 + 1.
    assert.deepEqual(collector.requests, [EIGHT, ['t-1', 't-2', 't-3', 't-4'], ['t-5', 't-6', 't-7', 't-8'], ['t-5', 't-6'], ['t-5'], ['t-6'], ['t-7', 't-8']]);
    assert.deepEqual(outcome(result), { claimed: 8, delivered: 7, duplicates: 0, quarantined: 1, skipped: 0, left: 0, requests: 7 });
    assert.equal(result.unavailable, undefined);
    assert.deepEqual(collector.accepted.sort(), EIGHT.filter((t) => t !== 't-6'));

    const { rows: quarantined } = await db.query<{ transaction: string; stage: string; reason: string }>(
      `SELECT record ->> 'transaction' AS transaction, stage, reason FROM dcache_probe.quarantine`,
    );
    assert.deepEqual(quarantined, [{ transaction: 't-6', stage: 'collector', reason: 'collector refused the record: HTTP 400: bad record' }]);
    assert.equal(await queueDepth(db), 0, 'every row is settled: delivered or quarantined');
    assert.equal(await keptKeys(), 7, 'the delivered records keep their keys; the refused one does not');
    assert.equal(await ledger(), 7);
    assert.equal(await leases(), 0);
  });

  it("a refused record's key is released: delivered later, it counts as delivered, not as a duplicate", async () => {
    await transfers(EIGHT);
    await delivery(new ScriptedCollector(REFUSE_IF('t-6'))).deliverBatch();

    // The refused transaction comes again (as "quarantine retry" puts it back), and with it a
    // second copy of a delivered one; now the collector takes everything.
    await transfers(['t-6', 't-1']);
    const collector = new ScriptedCollector(ACCEPT);
    const again = await delivery(collector).deliverBatch();

    assert.deepEqual(outcome(again), { claimed: 2, delivered: 1, duplicates: 1, quarantined: 0, skipped: 0, left: 0, requests: 1 });
    assert.deepEqual(collector.accepted, ['t-6']);
    assert.equal(await queueDepth(db), 0);
    assert.equal(await keptKeys(), 8);
  });

  it('when the collector is unavailable the batch is given back: rows queued, keys and lease released; the next delivery sends them all', async () => {
    await transfers(EIGHT);
    const down = new ScriptedCollector(UNAVAILABLE);

    const failed = await delivery(down).deliverBatch();

    assert.deepEqual(outcome(failed), { claimed: 8, delivered: 0, duplicates: 0, quarantined: 0, skipped: 0, left: 8, requests: 1 });
    assert.equal(failed.unavailable, 'ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:8880');
    assert.equal(await queueDepth(db), 8, 'the rows stay queued');
    assert.equal(await keptKeys(), 0, 'their keys are released');
    assert.equal(await leases(), 0, 'the lease is given back at once');
    assert.equal(await quarantineSize(db), 0);

    const up = new ScriptedCollector(ACCEPT);
    const delivered = await delivery(up).deliverBatch();

    assert.deepEqual(outcome(delivered), { claimed: 8, delivered: 8, duplicates: 0, quarantined: 0, skipped: 0, left: 0, requests: 1 });
    assert.deepEqual(up.accepted, EIGHT);
    assert.deepEqual(up.bodies, down.bodies, 'sent again byte-identical');
    assert.equal(await queueDepth(db), 0);
    assert.equal(await keptKeys(), 8);
    assert.equal(await ledger(), 8);
  });

  it('a collector lost while a refused bundle is split gives the whole batch back, its accepted half too, which is sent again byte-identical', async () => {
    await transfers(EIGHT);
    // The bundle is refused; its first half is accepted; then the collector is gone.
    const flaky = new ScriptedCollector((ids) => (ids.length === 8 ? REFUSE_IF('t-6')(ids) : ids.includes('t-1') ? ACCEPT() : UNAVAILABLE()));

    const failed = await delivery(flaky).deliverBatch();

    assert.deepEqual(flaky.requests, [EIGHT, ['t-1', 't-2', 't-3', 't-4'], ['t-5', 't-6', 't-7', 't-8']]);
    assert.deepEqual(outcome(failed), { claimed: 8, delivered: 0, duplicates: 0, quarantined: 0, skipped: 0, left: 8, requests: 3 });
    assert.ok(failed.unavailable);
    assert.equal(await queueDepth(db), 8, 'nothing is settled, not even the accepted half');
    assert.equal(await keptKeys(), 0);
    assert.equal(await quarantineSize(db), 0, 'the refused record was not found yet: it is not quarantined');

    const collector = new ScriptedCollector(REFUSE_IF('t-6'));
    const result = await delivery(collector).deliverBatch();

    assert.deepEqual(outcome(result), { claimed: 8, delivered: 7, duplicates: 0, quarantined: 1, skipped: 0, left: 0, requests: 7 });
    assert.equal(collector.bodies[1], flaky.bodies[1], 'the half accepted before is sent again byte-identical (the collector deduplicates it)');
    assert.deepEqual(collector.accepted.sort(), EIGHT.filter((t) => t !== 't-6'));
    assert.equal(await queueDepth(db), 0);
    assert.equal(await quarantineSize(db), 1);
    assert.equal(await keptKeys(), 7);
  });
});
