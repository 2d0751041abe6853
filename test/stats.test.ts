/**
 * Transfer statistics with real probe processes: an HA pair keeps them exact (no deadlock, the
 * numbers equal what the collector received, per dimension), the API answers from them, the
 * runtime role of `migrate --grant-to` can write them, and delivery goes on when they cannot be
 * written.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { freePort } from '../src/tools/demo/embedded';
import { INJECTED_FAULT_POOL, TransferGenerator } from '../src/tools/demo/simulator';
import { clientNetwork } from '../src/features/statistics/keys';
import { startCollector, type CollectorProcess } from './helpers/collector';
import { adminQuery, createBillingDatabase, type BillingDatabase } from './helpers/database';
import { databaseUrl, waitFor } from './helpers/env';
import { withDatabaseAndCollector } from './helpers/fixture';
import { runCli, startProbe } from './helpers/probe';
import { FAST_RETRIES, installedAtMs, liveAfter, queueDepth, reportable, simulate, write } from './helpers/scenario';

function tally<T>(items: readonly T[], key: (t: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const i of items) out[key(i)] = (out[key(i)] ?? 0) + 1;
  return out;
}

describe('transfer statistics', () => {
  describe('with probes delivering', () => {
    let db: BillingDatabase;
    let collector: CollectorProcess;
    withDatabaseAndCollector('modern', (d, c) => {
      db = d;
      collector = c;
    });

    it('an HA pair keeps them exact: totals and every dimension equal what the collector received', async () => {
      const ports = [await freePort(), await freePort()];
      const probes = await Promise.all(ports.map((port) => startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: [...FAST_RETRIES, '--metrics-port', String(port), '--bundle-size', '20'] })));
      try {
        // Live traffic, stamped after the installation (rows stamped before it are the history's).
        const installed = await installedAtMs(db);
        const sim = simulate(800, 71, 'modern', liveAfter(installed));
        await write(db, sim, 6);
        await waitFor('delivery', async () => (await queueDepth(db)) === 0 && (await collector.stats()).uniqueRecords >= reportable(sim), 60_000);
        const sent = sim.filter((t) => t.reportable);
        const rows = async (table: string, dimension: string) =>
          Object.fromEntries((await db.query<{ key: string; n: number }>(`SELECT key, sum(transfers)::int AS n FROM dcache_probe.${table} WHERE dimension = $1 GROUP BY key`, [dimension])).rows.map((r) => [r.key, r.n]));
        for (const table of ['stats_minute', 'stats_hour']) {
          assert.deepEqual(await rows(table, 'all'), { '': reportable(sim) }, table);
          assert.deepEqual(await rows(table, 'pool'), tally(sent, (t) => String(t.mover.cellname)), `${table} pool`);
          assert.deepEqual(await rows(table, 'error'), tally(sent, (t) => String(t.mover.errorcode)), `${table} error`);
          assert.deepEqual(await rows(table, 'client_net'), tally(sent, (t) => clientNetwork(String(t.mover.client))), `${table} client_net`);
          assert.deepEqual(await rows(table, 'direction'), tally(sent, (t) => (t.mover.isnew ? 'write' : 'read')), `${table} direction`);
        }
        const bytes = await db.query<{ b: string }>(`SELECT sum(bytes)::text AS b FROM dcache_probe.stats_hour WHERE dimension = 'all'`);
        assert.equal(Number(bytes.rows[0]!.b), sent.reduce((s, t) => s + Math.max(0, Number(t.mover.transfersize)), 0));
        // Both probes answer the API from the same tables.
        for (const port of ports) {
          const summary = (await (await fetch(`http://127.0.0.1:${port}/api/summary?window=hour`)).json()) as { transfers: number; denied: number; from: string; to: string };
          const buckets = await db.query(`SELECT min(bucket) AS first, max(bucket) AS last, count(*)::int AS n FROM dcache_probe.stats_minute WHERE dimension = 'all'`);
          assert.equal(summary.transfers, reportable(sim), `port ${port}: window ${summary.from} – ${summary.to}, minute rows ${JSON.stringify(buckets.rows[0])}, now ${new Date().toISOString()}`);
          assert.equal(summary.denied, sent.filter((t) => t.mover.errorcode === 10018).length);
        }
        for (const p of probes) assert.doesNotMatch(p.output(), /deadlock|could not update the transfer statistics/);
      } finally {
        await Promise.all(probes.map((p) => p.stop('SIGTERM')));
      }
    });

    it('delivery goes on, and says so once, when the statistics cannot be written', async () => {
      await db.query('ALTER TABLE dcache_probe.stats_minute RENAME TO stats_minute_away');
      const port = await freePort();
      const probe = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: [...FAST_RETRIES, '--metrics-port', String(port), '--bundle-size', '10'] });
      try {
        const before = (await collector.stats()).uniqueRecords;
        const sim = simulate(100, 72);
        await write(db, sim);
        await waitFor('delivery', async () => (await queueDepth(db)) === 0 && (await collector.stats()).uniqueRecords >= before + reportable(sim));
        assert.equal(probe.output().match(/could not update the transfer statistics/g)?.length, 1, probe.output());
      } finally {
        await probe.stop('SIGTERM');
        await db.query('ALTER TABLE dcache_probe.stats_minute_away RENAME TO stats_minute');
      }
    });
  });

  it('the runtime role of migrate --grant-to writes them, prunes them and opens alerts', async () => {
    const db = await createBillingDatabase('modern');
    const collector = await startCollector();
    const role = `probe_stats_${process.pid}`;
    try {
      await adminQuery(`DROP ROLE IF EXISTS ${role}`);
      await adminQuery(`CREATE ROLE ${role} LOGIN`);
      assert.equal((await runCli(['migrate', '--db-url', db.url, '--grant-to', role])).code, 0);
      const port = await freePort();
      const probe = await startProbe({
        dbUrl: databaseUrl(db.name, role),
        collectorUrl: collector.url,
        extraArgs: [...FAST_RETRIES, '--metrics-port', String(port)],
        env: { DCACHE_PROBE_ANOMALY_INTERVAL_SECONDS: '1' },
      });
      try {
        // One pool fails every transfer: a fault alert must open.
        const generator = new TransferGenerator({ seed: 73 });
        generator.inject = { faultPool: INJECTED_FAULT_POOL, faultShare: 1 };
        const sim = Array.from({ length: 300 }, () => generator.next());
        await write(db, sim);
        await waitFor('delivery', async () => (await queueDepth(db)) === 0 && (await collector.stats()).uniqueRecords >= reportable(sim));
        const n = await db.query<{ n: number }>(`SELECT sum(transfers)::int AS n FROM dcache_probe.stats_minute WHERE dimension = 'all'`);
        assert.equal(n.rows[0]!.n, reportable(sim));
        await waitFor('an alert opened by the runtime role', async () => {
          const alerts = (await (await fetch(`http://127.0.0.1:${port}/api/alerts`)).json()) as { open: unknown[] };
          return alerts.open.length > 0;
        });
        assert.doesNotMatch(probe.output(), /could not|permission denied|anomaly detection failed/, probe.output());
        assert.match(probe.output(), new RegExp(`ANOMALY \\(fault\\): pool ${INJECTED_FAULT_POOL}`));
      } finally {
        await probe.stop('SIGTERM');
      }
    } finally {
      await collector.stop();
      await db.drop();
      await adminQuery(`DROP ROLE IF EXISTS ${role}`);
    }
  });
});
