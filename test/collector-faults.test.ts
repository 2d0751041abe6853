/**
 * Collector-side failures, with real processes: the collector (with fault injection), the
 * probe as a child process, the real PostgreSQL. Every test asserts exact counts of delivered,
 * re-sent and quarantined records.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { freePort } from '../src/tools/demo/embedded';
import { startCollector, type CollectorProcess } from './helpers/collector';
import { createBillingDatabase, type BillingDatabase } from './helpers/database';
import { waitFor } from './helpers/env';
import { checkDelivery } from './helpers/expectations';
import { runCli, startProbe, type ProbeProcess } from './helpers/probe';
import { FAST_RETRIES, capturedRows, quarantineSize, deliveredAll, queueDepth, reportable, simulate, write } from './helpers/scenario';

describe('when the collector fails', () => {
  let db: BillingDatabase;
  let collector: CollectorProcess;
  let probe: ProbeProcess | null = null;
  beforeEach(async () => {
    db = await createBillingDatabase('modern');
    collector = await startCollector();
  });
  afterEach(async () => {
    await probe?.stop('SIGKILL');
    probe = null;
    await collector.stop();
    await db.drop();
  });

  const allDelivered = (n: number) => deliveredAll(db, collector, n);

  it('keeps the backlog in the database while the collector is down, and catches up by itself when it returns', async () => {
    const port = await freePort();
    await collector.stop();
    probe = await startProbe({ dbUrl: db.url, collectorUrl: `http://127.0.0.1:${port}`, extraArgs: FAST_RETRIES });
    const sim = simulate(300, 11);
    await write(db, sim);
    await waitFor('the probe to report the outage', () => probe!.output().includes('collector unavailable; records stay queued'));
    assert.equal(await queueDepth(db), capturedRows(sim), 'every captured row is still queued in the database');
    collector = await startCollector(['--port', String(port)]);
    await waitFor('the backlog delivered', allDelivered(reportable(sim)));
    const check = checkDelivery(sim, await collector.records());
    assert.equal(check.resent, 0);
  });

  it('retries 503 answers with backoff and delivers everything once the collector recovers', async () => {
    await collector.fault({ mode: 'unavailable', count: 5 });
    probe = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: FAST_RETRIES });
    const sim = simulate(200, 12);
    await write(db, sim);
    await waitFor('delivery', allDelivered(reportable(sim)));
    assert.equal((await collector.stats()).faultsInjected, 5);
    assert.equal(checkDelivery(sim, await collector.records()).resent, 0);
    assert.match(probe.output(), /collector request failed; retrying.*HTTP 503/);
  });

  it('retries when the collector resets connections', async () => {
    await collector.fault({ mode: 'reset', count: 3 });
    probe = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: FAST_RETRIES });
    const sim = simulate(200, 13);
    await write(db, sim);
    await waitFor('delivery', allDelivered(reportable(sim)));
    assert.equal((await collector.stats()).faultsInjected, 3);
    assert.equal(checkDelivery(sim, await collector.records()).resent, 0);
  });

  it('gives up on a request the collector does not answer within the timeout, and sends it again', async () => {
    probe = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: [...FAST_RETRIES, '--collector-timeout', '1'] });
    // After the start-up handshake, so that the request left hanging is one with records.
    await waitFor('the handshake', async () => (await collector.handshakes()).length === 1);
    await collector.fault({ mode: 'hang', count: 1 });
    const sim = simulate(100, 14);
    await write(db, sim);
    await waitFor('delivery', allDelivered(reportable(sim)));
    assert.equal((await collector.stats()).faultsInjected, 1);
    assert.equal(checkDelivery(sim, await collector.records()).resent, 0);
    assert.match(probe.output(), /TimeoutError|aborted|timeout/i);
  });

  for (const old of [false, true]) {
    it(`quarantines exactly the records the collector refuses (${old ? "old collector's 200 Error answer" : '400'}) and delivers the rest`, async () => {
      // Refuse every record of one user; the probe must find them by splitting bundles.
      await collector.fault({ mode: 'ok', rejectPattern: 'CN=dteam', oldCollectorAnswers: old });
      probe = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: FAST_RETRIES });
      const sim = simulate(400, 15);
      const refused = sim.filter((t) => t.reportable && String(t.door?.owner ?? t.mover.owner).includes('CN=dteam'));
      assert.ok(refused.length > 0);
      await write(db, sim);
      await waitFor('delivery and quarantine', async () => (await queueDepth(db)) === 0 && (await quarantineSize(db)) === refused.length);
      const delivered = await collector.records();
      assert.equal(delivered.length, reportable(sim) - refused.length);
      const refusedIds = new Set(refused.map((t) => t.mover.transaction));
      assert.ok(delivered.every((r) => !refusedIds.has(r.localJobId)));

      const list = await runCli(['quarantine', 'list', '--json', '--db-url', db.url]);
      const rows = JSON.parse(list.stdout) as { transaction: string; stage: string; reason: string }[];
      assert.deepEqual(new Set(rows.map((r) => r.transaction)), refusedIds);
      assert.ok(rows.every((r) => r.stage === 'collector' && /refused/.test(r.reason)), list.stdout);

      // The operator fixes the collector and replays: everything arrives, exactly once.
      await collector.fault({ mode: 'ok' });
      const retry = await runCli(['quarantine', 'retry', '--all', '--db-url', db.url]);
      assert.equal(retry.stdout, `requeued ${refused.length} rows\n`);
      await waitFor('the replayed records', allDelivered(reportable(sim)));
      assert.equal(await quarantineSize(db), 0);
      assert.equal(checkDelivery(sim, await collector.records()).resent, 0);
    });
  }

  it('drops quarantined rows only when told to', async () => {
    await collector.fault({ mode: 'ok', rejectPattern: 'CN=dteam' });
    probe = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: FAST_RETRIES });
    const sim = simulate(100, 16);
    await write(db, sim);
    await waitFor('quarantine', async () => (await queueDepth(db)) === 0 && (await quarantineSize(db)) > 0);
    const before = await quarantineSize(db);
    const refusedUsage = await runCli(['quarantine', 'drop', '--db-url', db.url]);
    assert.equal(refusedUsage.code, 2, 'drop without --id or --all is a usage error');
    assert.equal(await quarantineSize(db), before);
    const dropped = await runCli(['quarantine', 'drop', '--all', '--db-url', db.url]);
    assert.equal(dropped.stdout, `dropped ${before} rows\n`);
    assert.equal(await quarantineSize(db), 0);
  });

  it('sends smaller bundles after "Post too large", and delivers everything', async () => {
    await collector.fault({ mode: 'ok', postTooLargeAbove: 150_000 });
    // A backlog first, so that the probe's bundles are full (500 records, ~1 MB).
    const sim = simulate(3000, 17);
    await write(db, sim);
    probe = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: [...FAST_RETRIES, '--bundle-size', '500', '--workers', '1'] });
    await waitFor('delivery', allDelivered(reportable(sim)));
    const stats = await collector.stats();
    assert.ok(stats.tooLarge >= 1);
    assert.equal(checkDelivery(sim, await collector.records()).resent, 0);
    assert.equal(await quarantineSize(db), 0);
    assert.match(probe.output(), /sending smaller bundles from now on/);
    // Once shrunk, the probe stays under the limit: a few refusals, not one per bundle.
    assert.ok(stats.bundlesAccepted > 20 && stats.tooLarge <= 5, `${stats.tooLarge} too-large answers for ${stats.bundlesAccepted} bundles`);
  });
});
