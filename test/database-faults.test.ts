/**
 * Database-side failures: a half-open listener connection, a LISTEN that never delivers, a
 * PostgreSQL restart, broken capture, and dCache's own deletes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { WakeListener } from '../src/listener';
import { silentLogger } from '../src/logger';
import { startCollector, type CollectorProcess } from './helpers/collector';
import { createBillingDatabase, type BillingDatabase } from './helpers/database';
import { waitFor } from './helpers/env';
import { checkDelivery } from './helpers/expectations';
import { startPrivatePostgres, type PrivatePostgres } from './helpers/private-postgres';
import { startProbe } from './helpers/probe';
import { FAST_RETRIES, queueDepth, reportable, simulate, write } from './helpers/scenario';
import { startTcpProxy } from './helpers/tcp-proxy';

describe('database failures', () => {
  let collector: CollectorProcess;
  before(async () => {
    collector = await startCollector();
  });
  after(async () => collector.stop());

  const deliveredAll = (db: BillingDatabase, n: number) => async () => (await queueDepth(db)) === 0 && (await collector.stats()).recordsAccepted >= n;

  it('replaces a half-open connection found by the heartbeat, and delivers what arrived meanwhile without waiting for the poll', async () => {
    await collector.reset();
    const db = await createBillingDatabase('modern');
    const url = new URL(db.url);
    const proxy = await startTcpProxy(url.hostname, Number(url.port || 5432));
    url.port = String(proxy.port);
    const probe = await startProbe({
      dbUrl: url.toString(),
      collectorUrl: collector.url,
      // The poll is far away: only the reconnect can explain a prompt delivery.
      extraArgs: [...FAST_RETRIES, '--heartbeat', '1', '--query-timeout', '3', '--poll-interval', '3600'],
    });
    try {
      const first = simulate(50, 21);
      await write(db, first);
      await waitFor('the first transfers', deliveredAll(db, reportable(first)));

      proxy.blackhole();
      const second = simulate(50, 22);
      await write(db, second);
      await waitFor('the heartbeat to notice', () => probe.output().includes('listener connection lost'), 20_000);
      await waitFor('the transfers written while the connection was silent', deliveredAll(db, reportable(first) + reportable(second)), 30_000);
      assert.match(probe.output(), /listener reconnected; draining what arrived meanwhile/);
      const check = checkDelivery([...first, ...second], await collector.records());
      assert.equal(check.resent, 0);
    } finally {
      await probe.stop('SIGKILL');
      await proxy.close();
      await db.drop();
    }
  });

  it('detects a LISTEN that never delivers (the self-test fails)', async () => {
    // NOTIFY only reaches listeners of the same database: listening on another one is a
    // connection on which LISTEN can never deliver, as behind a transaction-mode pooler.
    const a = await createBillingDatabase('modern');
    const b = await createBillingDatabase('modern');
    const poolA = new pg.Pool({ connectionString: a.url, max: 1 });
    const sameDb = new WakeListener({ database: { url: a.url }, onWake: () => undefined, log: silentLogger() });
    const otherDb = new WakeListener({ database: { url: b.url }, onWake: () => undefined, log: silentLogger() });
    try {
      await sameDb.start();
      await otherDb.start();
      assert.equal(await sameDb.selfTest(poolA, 5000), true);
      assert.equal(await otherDb.selfTest(poolA, 500), false);
    } finally {
      await sameDb.stop();
      await otherDb.stop();
      await poolA.end();
      await a.drop();
      await b.drop();
    }
  });

  describe('a PostgreSQL restart while the probe runs', () => {
    let server: PrivatePostgres;
    before(async () => {
      server = await startPrivatePostgres();
    });
    after(async () => server.stop());

    it('reconnects and loses nothing; anything re-sent is byte-identical', async (t) => {
      await collector.reset();
      const db = await createBillingDatabase('modern', { adminUrl: server.url('postgres') });
      const probe = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: [...FAST_RETRIES, '--heartbeat', '1', '--poll-interval', '3600'] });
      try {
        const before = simulate(300, 23);
        await write(db, before);
        await waitFor('the first transfers', deliveredAll(db, reportable(before)));
        await server.restart();
        const afterRestart = simulate(300, 24);
        await waitFor('the database to accept writes again', async () => {
          await db.query('SELECT 1');
          return true;
        });
        await write(db, afterRestart);
        await waitFor('the transfers written after the restart', deliveredAll(db, reportable(before) + reportable(afterRestart)), 30_000);
        const check = checkDelivery([...before, ...afterRestart], await collector.records());
        assert.equal(check.resent, 0);
        assert.match(probe.output(), /listener connection lost/);
        t.diagnostic(`${reportable(before) + reportable(afterRestart)} transfers across a restart, ${check.resent} re-sent`);
      } finally {
        await probe.stop('SIGKILL');
        await db.drop();
      }
    });
  });

  it('says loudly at start when capture is broken, and still delivers what was captured', async () => {
    await collector.reset();
    const db = await createBillingDatabase('modern');
    try {
      const sim = simulate(30, 25);
      await write(db, sim);
      await db.query('ALTER TABLE billinginfo DISABLE TRIGGER dcache_probe_capture');
      const probe = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: FAST_RETRIES });
      try {
        await waitFor('delivery of the captured rows', deliveredAll(db, reportable(sim)));
        assert.match(probe.output(), /CAPTURE PROBLEM: trigger billinginfo\.dcache_probe_capture is missing or disabled/);
      } finally {
        await probe.stop('SIGKILL');
      }
    } finally {
      await db.drop();
    }
  });

  it("is not disturbed by dCache's own deletes (f_truncate_fine_grained_info)", async () => {
    await collector.reset();
    const db = await createBillingDatabase('modern');
    try {
      // Rows captured while no probe runs, then truncated by dCache before delivery: the queue
      // holds its own copies, so every transfer is still delivered.
      const sim = simulate(100, 26);
      await write(db, sim);
      await db.query('SELECT f_truncate_fine_grained_info($1)', [Date.now() + 60_000]);
      const left = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM billinginfo');
      assert.equal(left.rows[0]!.n, 0, 'dCache deleted its rows');
      const probe = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: [...FAST_RETRIES, '--door-grace', '1'] });
      try {
        await waitFor('delivery', deliveredAll(db, reportable(sim)));
        const ids = (await collector.records()).map((r) => r.localJobId).sort();
        assert.deepEqual(ids, sim.filter((t) => t.reportable).map((t) => t.mover.transaction as string).sort());
        // Deleting again while the probe runs changes nothing either.
        const more = simulate(100, 27);
        await write(db, more);
        await db.query('SELECT f_truncate_fine_grained_info($1)', [Date.now() - 3_600_000]);
        await waitFor('delivery', deliveredAll(db, reportable(sim) + reportable(more)));
        checkDelivery(more, (await collector.records()).filter((r) => !ids.includes(r.localJobId)));
      } finally {
        await probe.stop('SIGKILL');
      }
    } finally {
      await db.drop();
    }
  });
});
