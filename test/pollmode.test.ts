/**
 * Poll mode, for databases where the probe may not install triggers: `migrate --no-triggers`,
 * then `--mode poll` reads billing rows by datestamp windows through the backfill's filters.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { messageStream, writeMessages } from '../src/tools/demo/simulator';
import type { CollectorProcess } from './helpers/collector';
import type { BillingDatabase } from './helpers/database';
import { waitFor } from './helpers/env';
import { checkDelivery } from './helpers/expectations';
import { withDatabaseAndCollector } from './helpers/fixture';
import { pollOnce, runCli, startProbe } from './helpers/probe';
import { queueDepth, reportable, simulate } from './helpers/scenario';

const POLL = ['--mode', 'poll', '--poll-settle', '0', '--poll-overlap', '600', '--door-grace', '0'];

for (const form of ['modern', 'legacy'] as const) {
  describe(`poll mode on the ${form} schema`, () => {
    let db: BillingDatabase;
    let collector: CollectorProcess;
    withDatabaseAndCollector(form, (d, c) => ((db = d), (collector = c)));

    it('installs no triggers, and delivers every transfer once by datestamp windows, again and again', async () => {
      // The fixture installed the triggers; a poll-mode site has none.
      assert.equal((await runCli(['uninstall', '--db-url', db.url, '--force'])).code, 0);
      const migrated = await runCli(['migrate', '--no-triggers', '--db-url', db.url]);
      assert.equal(migrated.code, 0, migrated.stderr);
      const triggers = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_trigger WHERE tgname LIKE 'dcache_probe%'`);
      assert.equal(triggers.rows[0]!.n, 0);

      const first = simulate(300, 91, form);
      await writeMessages(messageStream(first, 7, 0), { url: db.url, writers: 4, maxTransactionRows: 20 });
      assert.equal(await queueDepth(db), 0, 'nothing is captured without triggers');
      const poll1 = await pollOnce({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: POLL });
      assert.equal(poll1.code, 0, poll1.stderr);
      assert.equal(checkDelivery(first, await collector.records()).resent, 0);

      const second = simulate(200, 92, form);
      await writeMessages(messageStream(second, 7, 0), { url: db.url, writers: 4, maxTransactionRows: 20 });
      assert.equal((await pollOnce({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: POLL })).code, 0);
      // The second window overlaps the first: nothing is sent twice.
      const check = checkDelivery([...first, ...second], await collector.records());
      assert.equal(check.resent, 0);
    });

    it('misses a row inserted later than the overlap after its datestamp, and verify says so', async () => {
      await collector.reset();
      // Stamped 20 minutes before the last window ended, inserted now: outside the 10-minute overlap.
      const late = simulate(1, 93, form, () => Date.now() - 20 * 60_000).map((t) => ({ ...t, door: null, mover: { ...t.mover, initiator: '<undefined>' } }));
      await writeMessages(messageStream(late, 7, 0), { url: db.url, writers: 1, maxTransactionRows: 1 });
      assert.equal((await pollOnce({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: POLL })).code, 0);
      assert.equal((await collector.stats()).recordsAccepted, 0, 'the late row is not delivered');
      const verify = await runCli(['verify', '--since', new Date(Date.now() - 3_600_000).toISOString(), '--db-url', db.url]);
      assert.equal(verify.code, 1);
      assert.match(verify.stdout, /1 missing/);
    });
  });
}

describe('the poll-mode daemon', () => {
  let db: BillingDatabase;
  let collector: CollectorProcess;
  withDatabaseAndCollector('modern', (d, c) => ((db = d), (collector = c)));

  it('delivers new transfers on every poll without triggers or notifications', async () => {
    await runCli(['uninstall', '--db-url', db.url, '--force']);
    assert.equal((await runCli(['migrate', '--no-triggers', '--db-url', db.url])).code, 0);
    const probe = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: [...POLL, '--poll-interval', '0.5'] });
    try {
      const sim = simulate(150, 94, 'modern');
      await writeMessages(messageStream(sim, 7, 0), { url: db.url, writers: 4, maxTransactionRows: 20 });
      await waitFor('delivery by polling', async () => (await collector.stats()).recordsAccepted >= reportable(sim));
      assert.equal(checkDelivery(sim, await collector.records()).resent, 0);
      assert.doesNotMatch(probe.output(), /CAPTURE PROBLEM/);
    } finally {
      await probe.stop('SIGTERM');
    }
  });
});
