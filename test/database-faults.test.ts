/**
 * Database-side failures: a half-open listener connection, a LISTEN that never delivers,
 * PostgreSQL restarts (fast and immediate), sessions ended by pg_terminate_backend, the server
 * down for a while or not up yet at start-up (on a private server: these stop and kill it),
 * broken capture, and dCache's own deletes. The probe must never exit by itself.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { freePort } from '../src/tools/demo/embedded';
import type { AcceptedRecord } from '../src/tools/collector/server';
import { TransferGenerator, type SimTransfer } from '../src/tools/demo/simulator';
import { WakeListener } from '../src/pipeline/listener';
import { silentLogger } from '../src/logger';
import { startCollector, type CollectorProcess } from './helpers/collector';
import { createBillingDatabase, type BillingDatabase } from './helpers/database';
import { CLI, waitFor } from './helpers/env';
import { checkDelivery } from './helpers/expectations';
import { startPrivatePostgres, type PrivatePostgres } from './helpers/private-postgres';
import { runCli, spawnProbe, startProbe } from './helpers/probe';
import { FAST_RETRIES, deliveredAll, queueDepth, reportable, simulate, write } from './helpers/scenario';
import { startTcpProxy } from './helpers/tcp-proxy';

describe('database failures', () => {
  let collector: CollectorProcess;
  before(async () => {
    collector = await startCollector();
  });
  after(async () => collector.stop());

  const allDelivered = (db: BillingDatabase, n: number) => deliveredAll(db, collector, n);

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
      await waitFor('the first transfers', allDelivered(db, reportable(first)));

      proxy.blackhole();
      const second = simulate(50, 22);
      await write(db, second);
      await waitFor('the heartbeat to notice', () => probe.output().includes('listener connection lost'), 20_000);
      await waitFor('the transfers written while the connection was silent', allDelivered(db, reportable(first) + reportable(second)), 30_000);
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

  describe('PostgreSQL restarts, crashes and ends sessions while the probe runs', () => {
    // A private server: these tests stop and kill it.
    let server: PrivatePostgres;
    before(async () => {
      server = await startPrivatePostgres();
    });
    after(async () => server.stop());

    /** The probe's flags for these tests: fast retries, a heartbeat, no poll to rely on. */
    const args = (...more: string[]) => [...FAST_RETRIES, '--heartbeat', '1', '--poll-interval', '3600', ...more];
    const writeWhenUp = async (db: BillingDatabase, transfers: readonly SimTransfer[]) => {
      await waitFor('the database to accept writes again', async () => (await db.query('SELECT 1')).rowCount === 1);
      await write(db, transfers);
    };
    const count = (text: string, pattern: RegExp) => (text.match(new RegExp(pattern.source, 'g')) ?? []).length;

    it('reconnects under load and loses nothing; anything re-sent is byte-identical', async (t) => {
      await collector.reset();
      const db = await createBillingDatabase('modern', { adminUrl: server.url('postgres') });
      // Slow answers and small bundles: deliveries are in flight most of the time. A batch
      // whose settling met the restart is claimed again when its lease runs out: a short one.
      await collector.fault({ mode: 'slow-ack', delayMs: 150 });
      const probe = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: args('--bundle-size', '20', '--collector-timeout', '10', '--lease', '5') });
      try {
        const before = simulate(600, 23);
        await write(db, before);
        await waitFor('deliveries under way with a backlog left', async () => (await collector.stats()).faultsInjected >= 3 && (await queueDepth(db)) > 0);
        await server.restart('fast');
        const afterRestart = simulate(300, 24);
        await writeWhenUp(db, afterRestart);
        await waitFor('every transfer, also those written after the restart', allDelivered(db, reportable(before) + reportable(afterRestart)), 60_000);
        const check = checkDelivery([...before, ...afterRestart], await collector.records());
        assert.equal(probe.process.exitCode, null, `the probe exited by itself:\n${probe.output()}`);
        assert.match(probe.output(), /listener connection lost/);
        t.diagnostic(`${reportable(before) + reportable(afterRestart)} transfers across a restart under load, ${check.resent} re-sent (byte-identical)`);
      } finally {
        await probe.stop('SIGKILL');
        await db.drop();
      }
    });

    const faults: [string, () => Promise<unknown>][] = [
      ['a fast restart', () => server.restart('fast')],
      ['an immediate (crash) restart', () => server.restart('immediate')],
      ["pg_terminate_backend of the probe's sessions", async () => assert.ok((await server.terminate('dcache-probe')) >= 2, 'the listener and a delivery')],
    ];
    for (const [fault, inject] of faults) {
      it(`keeps running through ${fault} while a delivery is in flight: every transfer delivered, re-sends byte-identical`, async (t) => {
        await collector.reset();
        const db = await createBillingDatabase('modern', { adminUrl: server.url('postgres') });
        const probe = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: args('--collector-timeout', '1', '--retry-budget', '120') });
        try {
          await waitFor('the handshake', async () => (await collector.handshakes()).length > 0);
          // Every request hangs until the probe's timeout; it retries within its budget: the
          // first bundle stays in flight until the collector answers again, after the fault.
          await collector.fault({ mode: 'hang' });
          const first = simulate(200, 41);
          await write(db, first);
          await waitFor('a delivery in flight', async () => (await collector.stats()).faultsInjected >= 1);
          await inject();
          await collector.fault({ mode: 'slow-ack', delayMs: 100 });
          const second = simulate(200, 42);
          await writeWhenUp(db, second);
          await waitFor('every transfer', allDelivered(db, reportable(first) + reportable(second)), 60_000);
          const check = checkDelivery([...first, ...second], await collector.records());
          assert.equal(probe.process.exitCode, null, `the probe exited by itself:\n${probe.output()}`);
          const log = probe.output();
            assert.equal(count(log, /listener connection lost/), 1, log);
          assert.ok(count(log, /database unavailable/) <= 1, `said once per outage:\n${log}`);
          t.diagnostic(`${reportable(first) + reportable(second)} transfers, ${check.resent} re-sent (byte-identical)`);
        } finally {
          await probe.stop('SIGKILL');
          await db.drop();
        }
      });
    }

    it('says once that the database is gone, is not ready until it is back, then delivers what waited', async () => {
      await collector.reset();
      const db = await createBillingDatabase('modern', { adminUrl: server.url('postgres') });
      const port = await freePort();
      const probe = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: args('--metrics-port', String(port)) });
      const readyz = async () => {
        const res = await fetch(`http://127.0.0.1:${port}/readyz`);
        return { status: res.status, body: (await res.json()) as { problems: string[] } };
      };
      try {
        await waitFor('ready', async () => (await readyz()).status === 200);
        const first = simulate(100, 43);
        await write(db, first);
        await waitFor('the first transfers', allDelivered(db, reportable(first)));
        await server.halt('fast');
        // Several retries while it is down: the readiness answer counts them.
        const down = await waitFor('not ready, after several failed attempts', async () => {
          const r = await readyz();
          const attempts = /database unavailable for \d+ s \((\d+) failed attempts/.exec(r.body.problems.join(' '));
          return r.status === 503 && attempts && Number(attempts[1]) >= 3 ? r : null;
        }, 60_000);
        assert.match(down!.body.problems.join(' '), /LISTEN connection is down/);
        await server.resume();
        const second = simulate(100, 44);
        await writeWhenUp(db, second);
        await waitFor('the transfers written after the outage', allDelivered(db, reportable(first) + reportable(second)));
        await waitFor('ready again', async () => (await readyz()).status === 200);
        checkDelivery([...first, ...second], await collector.records());
        const log = probe.output();
        assert.equal(probe.process.exitCode, null, log);
        assert.equal(count(log, /database unavailable/), 1, `said once, not once per retry:\n${log}`);
        assert.equal(count(log, /database available again/), 1, log);
        assert.equal(count(log, /listener connection lost/), 1, log);
        assert.equal(count(log, /listener reconnected/), 1, log);
      } finally {
        await probe.stop('SIGKILL');
        await server.resume();
        await db.drop();
      }
    });

    it('a SIGTERM while the listener reconnects (the database down) ends the probe: exit 0, no connection after the stop', async (t) => {
      await collector.reset();
      const db = await createBillingDatabase('modern', { adminUrl: server.url('postgres') });
      const port = await freePort();
      const probe = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: args('--metrics-port', String(port)) });
      try {
        await waitFor('ready', async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200);
        await server.halt('fast');
        // The probe is idle: the failed attempts counted are the listener's reconnect loop.
        await waitFor('the listener reconnecting, after several failed attempts', async () => {
          const body = (await (await fetch(`http://127.0.0.1:${port}/readyz`)).json()) as { problems: string[] };
          const attempts = /database unavailable for \d+ s \((\d+) failed attempts/.exec(body.problems.join(' '));
          return probe.output().includes('listener connection lost') && attempts && Number(attempts[1]) >= 3;
        }, 60_000);
        const stoppedAt = Date.now();
        const exited = probe.stop('SIGTERM');
        // The database comes back meanwhile: a reconnect the stop did not cancel would succeed,
        // and its connection would keep the process alive.
        await server.resume();
        // Bound: pg-listen's wait between two attempts (at most 5 s) cannot be cut short.
        await waitFor('the probe to exit after SIGTERM', () => probe.process.exitCode !== null || probe.process.signalCode !== null, 20_000);
        assert.equal(await exited, 0, probe.output());
        const afterStop = probe.output().slice(probe.output().indexOf('stopping'));
        assert.doesNotMatch(afterStop, /listener reconnected/, afterStop);
        assert.match(afterStop, /stopped/);
        t.diagnostic(`exited ${Date.now() - stoppedAt} ms after SIGTERM`);
      } finally {
        await probe.stop('SIGKILL');
        await server.resume();
        await db.drop();
      }
    });

    it('poll mode (no triggers), the metrics and the dashboard go on through an outage', async () => {
      await collector.reset();
      const db = await createBillingDatabase('modern', { adminUrl: server.url('postgres'), migrate: false });
      assert.equal((await runCli(['migrate', '--no-triggers', '--db-url', db.url])).code, 0);
      const port = await freePort();
      const base = `http://127.0.0.1:${port}`;
      const probe = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: [...FAST_RETRIES, '--mode', 'poll', '--poll-settle', '0', '--poll-overlap', '600', '--poll-interval', '0.5', '--metrics-port', String(port)] });
      try {
        const first = simulate(100, 46);
        await write(db, first);
        await waitFor('the first transfers', async () => (await collector.stats()).uniqueRecords >= reportable(first));
        await server.halt('immediate');
        await waitFor('the polls to find the database gone', async () => {
          const body = (await (await fetch(`${base}/readyz`)).json()) as { problems: string[] };
          return /database unavailable for \d+ s \(([2-9]|\d\d+) failed attempts/.test(body.problems.join(' '));
        });
        // Still served, with the database's figures unknown; the dashboard's API answers an error.
        const metrics = await fetch(`${base}/metrics`);
        assert.equal(metrics.status, 200);
        // (prom-client writes "Nan"; Prometheus reads NaN in any case.)
        assert.match(await metrics.text(), /^dcache_probe_queue_depth nan$/im);
        assert.equal((await fetch(`${base}/api/summary?window=hour`)).status, 500);
        assert.equal((await fetch(`${base}/healthz`)).status, 200);
        await server.resume();
        const second = simulate(100, 47);
        await writeWhenUp(db, second);
        await waitFor('the transfers written after the outage', async () => (await collector.stats()).uniqueRecords >= reportable(first) + reportable(second));
        checkDelivery([...first, ...second], await collector.records());
        await waitFor('ready again', async () => (await fetch(`${base}/readyz`)).status === 200);
        const log = probe.output();
        assert.equal(probe.process.exitCode, null, log);
        assert.equal(count(log, /database unavailable/), 1, log);
        assert.equal(count(log, /database available again/), 1, log);
      } finally {
        await probe.stop('SIGKILL');
        await server.resume();
        await db.drop();
      }
    });

    it('summarize mode: an hour\'s summary out at the collector during a restart arrives, once and whole', async () => {
      await collector.reset();
      const db = await createBillingDatabase('modern', { adminUrl: server.url('postgres') });
      const probe = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: args('--summarize', 'true', '--summary-settle', '0', '--collector-timeout', '1', '--retry-budget', '120') });
      try {
        await waitFor('the handshake', async () => (await collector.handshakes()).length > 0);
        await collector.fault({ mode: 'hang' });
        // Transfers of an hour that ended long ago: its summary is due at once.
        const past = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3 * 3_600_000 + 20 * 60_000;
        const generator = new TransferGenerator({ seed: 49, now: () => past, clockSkewMs: 10 * 60_000, duplicateShare: 0.02, p2pShare: 0.03 });
        const sim = Array.from({ length: 200 }, () => generator.next());
        await write(db, sim);
        await waitFor('a summary out at the collector', async () => (await collector.stats()).faultsInjected >= 1);
        await server.restart('fast');
        await collector.fault({ mode: 'ok' });
        const njobs = (records: AcceptedRecord[]) => records.reduce((n, r) => n + Number(/<Njobs>(\d+)<\/Njobs>/.exec(r.xml)![1]), 0);
        const unique = async () => {
          const first = new Map<string, AcceptedRecord>();
          for (const r of await collector.records()) {
            const earlier = first.get(r.localJobId);
            if (earlier) assert.equal(r.xml, earlier.xml, `a re-sent summary ${r.localJobId} differs`);
            else first.set(r.localJobId, r);
          }
          return [...first.values()];
        };
        await waitFor('every transfer summed and sent', async () => (await queueDepth(db)) === 0 && njobs(await unique()) >= reportable(sim));
        assert.equal(njobs(await unique()), reportable(sim), 'each transfer counted once');
        assert.equal(probe.process.exitCode, null, probe.output());
      } finally {
        await probe.stop('SIGKILL');
        await db.drop();
      }
    });

    it('a backfill goes on through a restart, from its saved progress', async () => {
      await collector.reset();
      const db = await createBillingDatabase('modern', { adminUrl: server.url('postgres') });
      // Rows from before the probe: written with its capture trigger off.
      const sim = simulate(600, 48);
      await db.query('ALTER TABLE billinginfo DISABLE TRIGGER dcache_probe_capture');
      await write(db, sim);
      await db.query('ALTER TABLE billinginfo ENABLE TRIGGER dcache_probe_capture');
      const since = new Date(Date.now() - 3_600_000).toISOString();
      const backfill = spawn(process.execPath, [CLI, 'backfill', '--db-url', db.url, '--since', since, '--rate', '300', '--chunk', '30'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      backfill.stdout!.on('data', (d) => (output += d));
      backfill.stderr!.on('data', (d) => (output += d));
      const exited = new Promise<number | null>((resolve) => backfill.once('exit', resolve));
      try {
        await waitFor('part of the range copied', async () => (await queueDepth(db)) >= 60, 30_000, 10);
        await server.restart('fast');
        assert.equal(await exited, 0, output);
        assert.match(output, /the range is complete/);
        assert.equal(count(output, /database unavailable/), 1, output);
        const probe = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: FAST_RETRIES });
        try {
          await waitFor('every transfer', allDelivered(db, reportable(sim)));
          assert.equal(checkDelivery(sim, await collector.records()).resent, 0);
        } finally {
          await probe.stop('SIGKILL');
        }
      } finally {
        if (backfill.exitCode === null) backfill.kill('SIGKILL');
        await db.drop();
      }
    });

    it('waits at start-up for a database that is not up yet, not ready meanwhile, and stops cleanly while waiting', async () => {
      await collector.reset();
      const db = await createBillingDatabase('modern', { adminUrl: server.url('postgres') });
      const port = await freePort();
      await server.halt('fast');
      let probe: ChildProcess | null = null;
      try {
        const spawn = () => spawnProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: args('--metrics-port', String(port)) });
        const waiting = spawn();
        probe = waiting.process;
        await waitFor('not ready, after several failed attempts', async () => {
          const res = await fetch(`http://127.0.0.1:${port}/readyz`);
          const body = (await res.json()) as { problems: string[] };
          const attempts = /database unavailable for \d+ s \((\d+) failed attempts/.exec(body.problems.join(' '));
          return res.status === 503 && attempts && Number(attempts[1]) >= 3;
        });
        assert.equal(count(waiting.output(), /database unavailable/), 1, waiting.output());
        assert.match(waiting.output(), /cannot reach the database \(connection refused\)/);
        // A SIGTERM while it waits: a clean exit.
        assert.equal(await waiting.stop('SIGTERM'), 0, waiting.output());

        const again = spawn();
        probe = again.process;
        await waitFor('it to wait again', () => again.output().includes('database unavailable'));
        await server.resume();
        await waitFor('the probe to run', () => again.output().includes('probe running'));
        const sim = simulate(100, 45);
        await write(db, sim);
        await waitFor('delivery', allDelivered(db, reportable(sim)));
        checkDelivery(sim, await collector.records());
        assert.equal(count(again.output(), /database available again/), 1, again.output());
        assert.equal(again.process.exitCode, null);
        assert.equal(await again.stop('SIGTERM'), 0, again.output());
      } finally {
        if (probe && probe.exitCode === null) probe.kill('SIGKILL');
        await server.resume().catch(() => undefined);
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
        await waitFor('delivery of the captured rows', allDelivered(db, reportable(sim)));
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
        await waitFor('delivery', allDelivered(db, reportable(sim)));
        const ids = (await collector.records()).map((r) => r.localJobId).sort();
        assert.deepEqual(ids, sim.filter((t) => t.reportable).map((t) => t.mover.transaction as string).sort());
        // Deleting again while the probe runs changes nothing either.
        const more = simulate(100, 27);
        await write(db, more);
        await db.query('SELECT f_truncate_fine_grained_info($1)', [Date.now() - 3_600_000]);
        await waitFor('delivery', allDelivered(db, reportable(sim) + reportable(more)));
        checkDelivery(more, (await collector.records()).filter((r) => !ids.includes(r.localJobId)));
      } finally {
        await probe.stop('SIGKILL');
      }
    } finally {
      await db.drop();
    }
  });
});
