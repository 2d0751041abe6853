/**
 * Claims are leases (migration 008): no transaction of the probe stays open while the collector
 * is asked, an HA partner that stops is taken over once its lease runs out, and the second
 * billing cell's copy of a transaction in flight in another lease waits for that outcome.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pg from 'pg';
import { collectorEndpoint } from '../src/config/schema';
import { createPool } from '../src/db/pool';
import { Delivery } from '../src/pipeline/delivery';
import { silentLogger } from '../src/logger';
import { CaptureQueue } from '../src/db/queue';
import { CollectorSender } from '../src/pipeline/sender';
import type { CollectorProcess } from './helpers/collector';
import type { BillingDatabase } from './helpers/database';
import { eachWithDatabaseCollectorAndProbes } from './helpers/fixture';
import { waitFor } from './helpers/env';
import { checkDelivery } from './helpers/expectations';
import { startProbe, type ProbeProcess } from './helpers/probe';
import { deliveredAll, queueDepth, reportable, simulate, write } from './helpers/scenario';

/** Retries fast, but waits for answers slower than the slow collector's. */
const PATIENT = ['--retry-base-ms', '50', '--retry-max-ms', '400', '--retry-budget', '3', '--collector-timeout', '10', '--door-grace', '5', '--bundle-size', '50'];

/**
 * Watches pg_stat_activity for the probe's sessions (application_name dcache-probe…) of one
 * database and keeps the age of the oldest open transaction seen, with and without an XID.
 */
class TransactionWatch {
  longestWithXidMs = 0;
  longestMs = 0;
  private running = true;
  private readonly done: Promise<void>;
  constructor(private readonly db: BillingDatabase) {
    this.done = this.loop();
  }
  private async loop(): Promise<void> {
    while (this.running) {
      const { rows } = await this.db.query<{ with_xid: number | null; any: number | null }>(
        `SELECT max(extract(epoch FROM clock_timestamp() - xact_start) * 1000) FILTER (WHERE backend_xid IS NOT NULL) AS with_xid,
                max(extract(epoch FROM clock_timestamp() - xact_start) * 1000) AS any
           FROM pg_stat_activity
          WHERE datname = $1 AND application_name LIKE 'dcache-probe%' AND xact_start IS NOT NULL AND pid <> pg_backend_pid()`,
        [this.db.name],
      );
      this.longestWithXidMs = Math.max(this.longestWithXidMs, Number(rows[0]?.with_xid ?? 0));
      this.longestMs = Math.max(this.longestMs, Number(rows[0]?.any ?? 0));
      await new Promise((r) => setTimeout(r, 10)); // the sampling period
    }
  }
  reset(): void {
    this.longestWithXidMs = 0;
    this.longestMs = 0;
  }
  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

describe('claims are leases', () => {
  let db: BillingDatabase;
  let collector: CollectorProcess;
  let probes: ProbeProcess[];
  eachWithDatabaseCollectorAndProbes('modern', (d, c, p) => ([db, collector, probes] = [d, c, p]));

  const allDelivered = (n: number) => deliveredAll(db, collector, n);

  it('holds no transaction open while the collector is slow (3 s an answer) and then down: the longest stays under 1 s', async (t) => {
    const watch = new TransactionWatch(db);
    try {
      // The watch sees a transaction of more than a second (one of ours, named like the probe's).
      const control = new pg.Client({ connectionString: db.url, application_name: 'dcache-probe control' });
      await control.connect();
      await control.query('BEGIN');
      await control.query('SELECT txid_current()');
      await waitFor('the watch to see the control transaction', () => watch.longestWithXidMs > 1200, 10_000);
      await control.query('COMMIT');
      await control.end();
      watch.reset();

      await collector.fault({ mode: 'slow-ack', delayMs: 3000 });
      const probe = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: PATIENT });
      probes.push(probe);
      const sim = simulate(400, 41);
      const writing = write(db, sim);
      await waitFor('three slow answers', async () => (await collector.stats()).faultsInjected >= 3, 60_000);
      const before = (await collector.stats()).faultsInjected;
      await collector.fault({ mode: 'unavailable' });
      await waitFor('the probe to find the collector unavailable', () => probe.output().includes('collector unavailable'), 30_000);
      await waitFor('more refused requests', async () => (await collector.stats()).faultsInjected >= before + 5, 30_000);
      await collector.fault({ mode: 'ok' });
      await writing;
      await waitFor('delivery once the collector is back', allDelivered(reportable(sim)), 60_000);
      t.diagnostic(`longest probe transaction: ${watch.longestWithXidMs.toFixed(0)} ms with an XID, ${watch.longestMs.toFixed(0)} ms at all`);
      assert.ok(watch.longestWithXidMs < 1000, `a probe transaction with an XID stayed open ${watch.longestWithXidMs.toFixed(0)} ms`);
      checkDelivery(sim, await collector.records());
    } finally {
      await watch.stop();
    }
  });

  it("takes over a stopped partner's lease once it runs out; the partner, continued, changes nothing", async (t) => {
    await collector.fault({ mode: 'slow-ack', delayMs: 1000 });
    const args = [...PATIENT, '--lease', '3'];
    const a = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: args });
    const b = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: args });
    probes.push(a, b);
    const sim = simulate(600, 42);
    const writing = write(db, sim);
    const leasesOf = async (pid: number) =>
      (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM dcache_probe.claim WHERE owner LIKE '%:' || $1 || ':%'`, [String(pid)])).rows[0]!.n;
    // Stop A while it holds a lease (if it has none the moment it stops, let it go on and try again).
    await waitFor(
      'probe A stopped while it holds a lease',
      async () => {
        if ((await leasesOf(a.process.pid!)) === 0) return false;
        a.process.kill('SIGSTOP');
        if ((await leasesOf(a.process.pid!)) > 0) return true;
        a.process.kill('SIGCONT');
        return false;
      },
      60_000,
    );
    await writing;
    await waitFor('B to take the lease over', () => b.output().includes('took back a lease that was not renewed in time'), 30_000);
    await waitFor('delivery by B alone', allDelivered(reportable(sim)), 60_000);
    a.process.kill('SIGCONT');
    // A finds its lease gone (at its next renewal, reservation or acknowledgement), or, stopped
    // inside a transaction, its session ended by the server. Either way it goes on, changing nothing.
    await waitFor('A to notice', () => /lease lost|drain failed|database unavailable/.test(a.output()), 30_000).catch((err) => {
      const state = require('node:fs').readFileSync(`/proc/${a.process.pid}/stat`, 'utf8').split(' ')[2];
      throw new Error(`${(err as Error).message} (A's state: ${state})\n${a.output().split('\n').slice(-12).join('\n')}`);
    });
    assert.equal(a.process.exitCode, null, 'A is still running');
    await collector.fault({ mode: 'ok' });
    // A changed nothing: no row came back, none was lost, and A exits cleanly when asked.
    await waitFor('A to be idle again', async () => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM dcache_probe.claim')).rows[0]!.n === 0, 30_000);
    assert.equal(await queueDepth(db), 0);
    assert.equal(await a.stop('SIGTERM'), 0);
    assert.equal(await b.stop('SIGTERM'), 0);
    const check = checkDelivery(sim, await collector.records());
    t.diagnostic(`${reportable(sim)} delivered; ${check.resent} re-sent (byte-identical) after the takeover`);
  });

  it('the second copy of a transaction in flight in another lease waits, then counts as a duplicate', async () => {
    const pool = createPool({ url: db.url, max: 4 });
    const sender = new CollectorSender({ endpoint: collectorEndpoint(collector.url), probeName: 'dcache-transfer:test.example.org', timeoutMs: 10_000, retryBaseMs: 50, retryMaxMs: 400, retryBudgetMs: 3000 });
    const options = {
      bundleSize: 50,
      maxBundleBytes: 1_800_000,
      doorGraceSeconds: 5,
      leaseSeconds: 30,
      mapping: { probeName: 'dcache-transfer:test.example.org', siteName: 'TEST_SITE', grid: 'OSG', dcacheServerHost: 'dcache.example.org', reportTape: true },
    };
    const queue = new CaptureQueue('public', (name) => pg.escapeIdentifier(name));
    const first = new Delivery(pool, queue, sender, options, silentLogger());
    const second = new Delivery(pool, queue, sender, options, silentLogger());
    const insertCopy = () =>
      db.query(`INSERT INTO billinginfo (datestamp, cellname, action, transaction, pnfsid, initiator, protocol, isnew, transfersize, connectiontime, errorcode, client)
                VALUES ('2024-05-01 10:00:00+00', 'pool1@d', 'transfer', 'twice-1', 'AB01', '<undefined>', 'Http-1.1', false, 10, 5, 0, '192.0.2.1')`);
    try {
      await collector.fault({ mode: 'slow-ack', delayMs: 4000, count: 1 });
      await insertCopy();
      const inFlight = first.deliverBatch();
      await waitFor('the first copy in flight', async () => (await collector.stats()).faultsInjected >= 1);
      await insertCopy(); // the second billing cell's copy
      const waiting = await second.deliverBatch();
      assert.deepEqual({ claimed: waiting.claimed, left: waiting.left, duplicates: waiting.duplicates, requests: waiting.requests }, { claimed: 1, left: 1, duplicates: 0, requests: 0 });
      assert.equal(await queueDepth(db), 2);

      assert.equal((await inFlight).delivered, 1);
      const settled = await second.deliverBatch();
      assert.deepEqual({ claimed: settled.claimed, left: settled.left, duplicates: settled.duplicates, requests: settled.requests }, { claimed: 1, left: 0, duplicates: 1, requests: 0 });
      assert.equal(await queueDepth(db), 0);
      assert.deepEqual((await collector.records()).map((r) => r.localJobId), ['twice-1']);
    } finally {
      await sender.close();
      await pool.end();
    }
  });
});
