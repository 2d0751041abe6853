/**
 * End to end with real processes: the billing database on the real PostgreSQL, dCache-like
 * writers, the probe as a child process, and the GRACC-strict collector as a child process.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TransferGenerator, messageStream, writeMessages, type Message, type SimTransfer } from '../src/tools/demo/simulator';
import { startCollector, type CollectorProcess } from './helpers/collector';
import { withDatabaseAndCollector } from './helpers/fixture';
import { createBillingDatabase, type BillingDatabase } from './helpers/database';
import { waitFor } from './helpers/env';
import { checkDelivery, percentile } from './helpers/expectations';
import { pollOnce, startProbe } from './helpers/probe';
import { queueDepth } from './helpers/scenario';

const ZONE = 'America/Chicago';

function transfers(count: number, form: 'modern' | 'legacy', seed: number): SimTransfer[] {
  const generator = new TransferGenerator({ seed, form, duplicateShare: 0.02, p2pShare: 0.04, noDoorShare: 0.02, errorShare: 0.05 });
  return Array.from({ length: count }, () => generator.next());
}

/**
 * When each transfer became complete in the database: the later of its mover's first commit
 * and its door row's commit. Latency is measured from there (a mover waits for its door).
 */
function commitClock(): { completeAt: () => Map<string, number>; onCommit: (m: readonly Message[], at: number) => void } {
  const moverAt = new Map<string, { at: number; initiator: string }>();
  const doorAt = new Map<string, number>();
  return {
    onCommit: (messages, at) => {
      for (const m of messages) {
        if (m.table === 'billinginfo' && !moverAt.has(m.row.transaction as string)) moverAt.set(m.row.transaction as string, { at, initiator: m.row.initiator as string });
        if (m.table === 'doorinfo') doorAt.set(m.row.transaction as string, at);
      }
    },
    completeAt: () => new Map([...moverAt].map(([id, m]) => [id, Math.max(m.at, doorAt.get(m.initiator) ?? 0)])),
  };
}

for (const form of ['modern', 'legacy'] as const) {
  describe(`end to end on the ${form} billing schema`, () => {
    let db: BillingDatabase;
    let collector: CollectorProcess;
    withDatabaseAndCollector(form, (d, c) => ((db = d), (collector = c)));

    it('delivers every reportable transfer exactly once, with the right fields, from 10 concurrent writers', async (t) => {
      const sim = transfers(form === 'modern' ? 6000 : 3000, form, form === 'modern' ? 101 : 202);
      const reportable = sim.filter((x) => x.reportable).length;
      const probe = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: ['--door-grace', '30', '--db-time-zone', ZONE] });
      const clock = commitClock();
      const started = Date.now();
      await writeMessages(messageStream(sim), { url: db.url, writers: 10, maxTransactionRows: 1000, timeZone: ZONE, onCommit: clock.onCommit });
      const written = Date.now();
      await waitFor('every reportable transfer at the collector', async () => (await collector.stats()).recordsAccepted >= reportable && (await queueDepth(db)) === 0, 60_000);
      const drained = Date.now();
      assert.equal(await probe.stop('SIGTERM'), 0, probe.output());

      const received = await collector.records();
      const check = checkDelivery(sim, received, clock.completeAt());
      assert.equal(check.resent, 0, 'no record was sent twice');
      assert.equal(received.length, reportable);
      const duplicatesInserted = sim.filter((x) => x.duplicated).length;
      const p2p = sim.length - reportable;
      assert.ok(duplicatesInserted > 0 && p2p >= (form === 'modern' ? 1 : 0), 'the stream had duplicates (and p2p rows on the modern schema)');
      t.diagnostic(
        `${sim.length} transfers (${reportable} reportable, ${p2p} p2p, ${duplicatesInserted} inserted twice): written in ${written - started} ms, ` +
          `all delivered ${drained - written} ms after the last commit; complete-to-collector latency p50 ${percentile(check.latenciesMs, 50)} ms, ` +
          `p99 ${percentile(check.latenciesMs, 99)} ms, max ${Math.max(...check.latenciesMs)} ms`,
      );
    });
  });
}

describe('a probe killed with SIGKILL mid-stream', () => {
  let db: BillingDatabase;
  let collector: CollectorProcess;
  withDatabaseAndCollector('modern', (d, c) => ((db = d), (collector = c)));

  it('loses nothing after a restart, and every re-sent record is byte-identical to the first', async (t) => {
    const sim = transfers(4000, 'modern', 303);
    // The killed probe's leases run out after 5 s; then its restarted self delivers those rows.
    const settings = { dbUrl: db.url, collectorUrl: collector.url, extraArgs: ['--door-grace', '30', '--bundle-size', '100', '--lease', '5'] };
    let probe = await startProbe(settings);
    const writing = writeMessages(messageStream(sim), { url: db.url, writers: 10, maxTransactionRows: 50 });
    await waitFor('some records delivered', async () => (await collector.stats()).recordsAccepted >= 500, 60_000);
    // Kill it in the worst place: the collector has stored a bundle but not yet said OK.
    await collector.fault({ mode: 'slow-ack', delayMs: 30_000, count: 1 });
    await waitFor('a bundle stored but not yet acknowledged', async () => (await collector.stats()).faultsInjected === 1, 60_000);
    await probe.stop('SIGKILL');
    const atKill = (await collector.stats()).recordsAccepted;
    probe = await startProbe(settings);
    await writing;
    const reportable = sim.filter((x) => x.reportable).length;
    await waitFor('every reportable transfer at the collector', async () => (await queueDepth(db)) === 0 && (await collector.stats()).recordsAccepted >= reportable, 60_000);
    assert.equal(await probe.stop('SIGTERM'), 0);

    const check = checkDelivery(sim, await collector.records());
    // Only the batches in flight at the kill can come again (at most workers x bundle size),
    // and the one the collector had stored must have.
    assert.ok(check.resent >= 1 && check.resent <= 2 * 100, `re-sent ${check.resent} records`);
    t.diagnostic(`killed after ${atKill} records; ${reportable} delivered in all, ${check.resent} re-sent (byte-identical)`);
  });
});

describe('poll --once (the cron fallback)', () => {
  let db: BillingDatabase;
  let collector: CollectorProcess;
  withDatabaseAndCollector('modern', (d, c) => ((db = d), (collector = c)));

  it('delivers everything ready and exits 0', async () => {
    const sim = transfers(500, 'modern', 404);
    await writeMessages(messageStream(sim, 7, 0), { url: db.url, writers: 4, maxTransactionRows: 20 });
    const result = await pollOnce({ dbUrl: db.url, collectorUrl: collector.url });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await queueDepth(db), 0);
    checkDelivery(sim, await collector.records());
  });

  it('exits non-zero and keeps the rows queued when the collector is unavailable', async () => {
    await collector.reset();
    await collector.fault({ mode: 'unavailable' });
    const sim = transfers(50, 'modern', 505);
    await writeMessages(messageStream(sim, 7, 0), { url: db.url, writers: 2, maxTransactionRows: 10 });
    const before = await queueDepth(db);
    const result = await pollOnce({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: ['--retry-budget', '1', '--retry-base-ms', '50'] });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /collector unavailable, records stay queued: HTTP 503/);
    assert.equal(await queueDepth(db), before);
    assert.equal((await collector.stats()).recordsAccepted, 0);
    await collector.fault({ mode: 'ok' });
    assert.equal((await pollOnce({ dbUrl: db.url, collectorUrl: collector.url })).code, 0);
    checkDelivery(sim, await collector.records());
  });
});

describe('a mover whose door row is committed after it', () => {
  let db: BillingDatabase;
  let collector: CollectorProcess;
  withDatabaseAndCollector('modern', (d, c) => ((db = d), (collector = c)));

  const mover = (transaction: string, initiator: string) =>
    db.query(
      `INSERT INTO billinginfo (datestamp, cellname, action, transaction, pnfsid, fullsize, transfersize, isnew, client, connectiontime, errorcode, errormessage, protocol, initiator)
       VALUES (now(), 'pool1@dCacheDomain', 'transfer', $1, '0000AB', 10, 10, false, '192.0.2.1', 5, 0, '', 'GFtp-2.0', $2)`,
      [transaction, initiator],
    );

  it('is delivered once its door row is there, found by the probe looking again (nothing notifies on doorinfo)', async () => {
    // An hour of poll interval and door grace: only the probe's door re-check can deliver it.
    const probe = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: ['--poll-interval', '3600', '--door-grace', '3600'] });
    try {
      await mover('late-door-mover', 'door:GFTP@d:late');
      // A transfer without a door to wait for, committed after the waiting one: once it has
      // arrived, the probe has looked at the queue and left the waiting mover there.
      await mover('no-door-mover', '<undefined>');
      await waitFor('the transfer without a door', async () => (await collector.records()).some((r) => r.localJobId === 'no-door-mover'));
      // (its delivery transaction commits just after the collector's answer)
      await waitFor('the delivered row to leave the queue', async () => (await queueDepth(db)) === 1);
      assert.ok(!(await collector.records()).some((r) => r.localJobId === 'late-door-mover'));

      await db.query(`INSERT INTO doorinfo (datestamp, cellname, action, transaction, pnfsid, owner, mappeduid, mappedgid, client, connectiontime, queuedtime, errorcode, errormessage, path)
                      VALUES (now(), 'GFTP@d', 'request', 'door:GFTP@d:late', '0000AB', '/DC=org/CN=Late Door', 1000, 1000, '192.0.2.1', 5, 0, 0, '', '/data/late')`);
      await waitFor('the mover, after its door row', async () => (await collector.records()).some((r) => r.localJobId === 'late-door-mover'));
      await waitFor('the queue to empty', async () => (await queueDepth(db)) === 0);
      const late = (await collector.records()).find((r) => r.localJobId === 'late-door-mover')!;
      assert.match(late.xml, /Late Door/, 'the record carries what only the door row has');
    } finally {
      assert.equal(await probe.stop(), 0);
    }
  });
});
