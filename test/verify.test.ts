/** `dcache-probe verify`: the per-hour ledger against the billing tables. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TransferGenerator, messageStream, writeMessages } from '../src/tools/demo/simulator';
import { startCollector, type CollectorProcess } from './helpers/collector';
import { withDatabaseAndCollector } from './helpers/fixture';
import { createBillingDatabase, type BillingDatabase } from './helpers/database';
import { pollOnce, runCli } from './helpers/probe';
import { queueDepth, reportable } from './helpers/scenario';

const HOUR = 3_600_000;
const BASE = Date.parse('2026-11-24T08:00:00Z');

for (const form of ['modern', 'legacy'] as const) {
  describe(`verify on the ${form} schema`, () => {
    let db: BillingDatabase;
    let collector: CollectorProcess;
    withDatabaseAndCollector(form, (d, c) => ((db = d), (collector = c)));

    /** Transfers ending in the given hour after BASE. */
    const transfersIn = (hour: number, count: number, seed: number) => {
      const generator = new TransferGenerator({ seed, form, now: () => BASE + hour * HOUR + 30 * 60_000, clockSkewMs: 60_000 });
      return Array.from({ length: count }, () => generator.next());
    };
    const range = ['--since', new Date(BASE).toISOString(), '--until', new Date(BASE + 4 * HOUR).toISOString()];

    it('finds every record accounted for after delivery, hour by hour', async () => {
      const sim = [...transfersIn(0, 120, 71), ...transfersIn(2, 80, 72)];
      await writeMessages(messageStream(sim, 7, 0), { url: db.url, writers: 4, maxTransactionRows: 20 });
      const poll = await pollOnce({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: ['--door-grace', '0'] });
      assert.equal(poll.code, 0, poll.stderr);
      assert.equal(await queueDepth(db), 0);
      const result = await runCli(['verify', ...range, '--db-url', db.url, '--json']);
      assert.equal(result.code, 0, result.stdout + result.stderr);
      const checks = JSON.parse(result.stdout) as { hour: string; source: string; expected: number; delivered: number; difference: number }[];
      const transfers = checks.filter((c) => c.source === 'billinginfo');
      assert.deepEqual(transfers.map((c) => c.hour), [new Date(BASE).toISOString(), new Date(BASE + 2 * HOUR).toISOString()]);
      assert.deepEqual(transfers.map((c) => [c.expected, c.delivered, c.difference]), [
        [reportable(sim.slice(0, 120)), reportable(sim.slice(0, 120)), 0],
        [reportable(sim.slice(120)), reportable(sim.slice(120)), 0],
      ]);
    });

    it('lists the hours whose rows were never captured, and exits 1', async () => {
      await db.query('ALTER TABLE billinginfo DISABLE TRIGGER dcache_probe_capture');
      const missed = transfersIn(3, 25, 73);
      await writeMessages(messageStream(missed, 7, 0), { url: db.url, writers: 2, maxTransactionRows: 10 });
      await db.query('ALTER TABLE billinginfo ENABLE TRIGGER dcache_probe_capture');
      const result = await runCli(['verify', ...range, '--db-url', db.url]);
      assert.equal(result.code, 1);
      const hour3 = new Date(BASE + 3 * HOUR).toISOString();
      assert.match(result.stdout, new RegExp(`${hour3.replace(/[.]/g, '\\.')}\\s+billinginfo\\s+${reportable(missed)}\\s+0\\s+0\\s+0\\s+0\\s+${reportable(missed)} missing`));
      assert.match(result.stdout, /1 hours with missing or extra records/);
    });
  });
}
