/**
 * The randomized fault test (issue 11, docs/RELIABILITY.md "Random faults"): an HA pair of
 * probes on a private PostgreSQL under steady dCache-shaped writes, with a fault every few
 * seconds (server restarts and crashes, terminated connections, a probe killed or stopped,
 * the collector killed, answering 503, resetting, slow). Afterwards every transfer in the
 * billing table must have arrived, row by row, re-sends only byte-identical, and no process
 * may have exited by itself. The seed is printed; DCACHE_PROBE_CHAOS_SEED=N replays it.
 * `npm run chaos -- --duration 600` is the long run (test/chaos-run.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chaosSeed, faultSchedule, FAULT_KINDS } from './helpers/chaos-schedule';
import { failureContext, formatReport, runChaos } from './helpers/chaos';
import { checkDelivery } from './helpers/expectations';

describe('random faults (chaos)', () => {
  it('a seed replays the same schedule, and each round of nine faults has every kind once', () => {
    const a = faultSchedule(12345, 120_000);
    assert.deepEqual(faultSchedule(12345, 120_000), a);
    assert.notDeepEqual(faultSchedule(12346, 120_000), a);
    for (let i = 0; i + FAULT_KINDS.length <= a.length; i += FAULT_KINDS.length) {
      assert.deepEqual(a.slice(i, i + FAULT_KINDS.length).map((f) => f.kind).sort(), [...FAULT_KINDS].sort());
    }
    assert.ok(a.every((f, i) => i === 0 || f.atMs > a[i - 1]!.atMs), 'moments in order');
    assert.throws(() => chaosSeed('12x'), /flag --seed: "12x" is not a seed/);
    assert.equal(chaosSeed(undefined, { DCACHE_PROBE_CHAOS_SEED: '42' }), 42);
  });

  it('an HA pair under random faults delivers every transfer, re-sends only identical records, and never exits by itself', { timeout: 8 * 60_000 }, async (t) => {
    const report = await runChaos({ seed: chaosSeed(undefined), faultSeconds: 40 });
    for (const line of formatReport(report).split('\n')) t.diagnostic(line);
    const context = failureContext(report);
    assert.equal(report.error, undefined, context);
    assert.ok(report.faults.length >= FAULT_KINDS.length, `every kind of fault was injected\n${context}`);
    assert.notEqual(report.settleSeconds, null, `the queue emptied in the settle phase\n${context}`);
    assert.deepEqual(report.lost, [], `every transfer arrived\n${context}`);
    assert.equal(report.notInBilling, 0, `every written transfer is in the billing table\n${context}`);
    assert.deepEqual(report.differing, [], `re-sends are byte-identical\n${context}`);
    assert.deepEqual(report.deaths, [], `no process exited by itself\n${context}`);
    assert.deepEqual(report.stopExitCodes, [0, 0], `both probes stop cleanly on SIGTERM\n${context}`);
    assert.equal(report.quarantined, 0, context);
    try {
      checkDelivery(report.expected, report.received);
    } catch (err) {
      (err as Error).message = `${(err as Error).message}\n${context}`;
      throw err;
    }
  });
});
