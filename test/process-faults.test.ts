/**
 * Process-side failures: stopping with a bundle in flight, and two probes on one database
 * (an HA pair), one of them killed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CollectorProcess } from './helpers/collector';
import type { BillingDatabase } from './helpers/database';
import { eachWithDatabaseCollectorAndProbes } from './helpers/fixture';
import { waitFor } from './helpers/env';
import { checkDelivery } from './helpers/expectations';
import { startProbe, type ProbeProcess } from './helpers/probe';
import { FAST_RETRIES, capturedRows, deliveredAll, queueDepth, reportable, simulate, write } from './helpers/scenario';

/** The counters a probe logs when it stops ("stopped {...}"). */
function stoppedCounters(output: string): { delivered: number; duplicates: number } {
  const line = output.split('\n').find((l) => l.includes(' stopped {'));
  assert.ok(line, `no "stopped" line in:\n${output}`);
  return JSON.parse(line.slice(line.indexOf('{')));
}

describe('stopping and killing probes', () => {
  let db: BillingDatabase;
  let collector: CollectorProcess;
  let probes: ProbeProcess[];
  eachWithDatabaseCollectorAndProbes('modern', (d, c, p) => ([db, collector, probes] = [d, c, p]));

  const allDelivered = (n: number) => deliveredAll(db, collector, n);

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`on ${signal}, abandons the bundle in flight after the stop deadline, exits 0, and loses nothing`, async () => {
      // The collector holds the request open; the probe's own timeout (60 s) is far away.
      await collector.fault({ mode: 'hang' });
      const probe = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: ['--collector-timeout', '60', '--stop-deadline', '1', '--door-grace', '5'] });
      probes.push(probe);
      const sim = simulate(100, 31);
      await write(db, sim);
      // The handshake hangs too: wait for it and a bundle of records.
      await waitFor('a bundle in flight', async () => (await collector.stats()).faultsInjected >= 2);
      const asked = Date.now();
      assert.equal(await probe.stop(signal), 0);
      const took = Date.now() - asked;
      assert.ok(took < 10_000, `stopped after ${took} ms, not after the 60 s request timeout`);
      assert.equal(await queueDepth(db), capturedRows(sim), 'the abandoned bundle went back to the queue');
      assert.equal((await collector.stats()).recordsAccepted, 0);

      await collector.fault({ mode: 'ok' });
      probes.push(await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: FAST_RETRIES }));
      await waitFor('delivery after the restart', allDelivered(reportable(sim)));
      assert.equal(checkDelivery(sim, await collector.records()).resent, 0);
    });
  }

  it('two probes on one database deliver each row exactly once between them', async () => {
    const a = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: [...FAST_RETRIES, '--bundle-size', '50'] });
    const b = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: [...FAST_RETRIES, '--bundle-size', '50'] });
    probes.push(a, b);
    const sim = simulate(3000, 32);
    await write(db, sim, 10);
    await waitFor('delivery', allDelivered(reportable(sim)));
    assert.equal(await a.stop('SIGTERM'), 0);
    assert.equal(await b.stop('SIGTERM'), 0);
    const check = checkDelivery(sim, await collector.records());
    assert.equal(check.resent, 0, 'no row was delivered by both');
    const fromA = stoppedCounters(a.output());
    const fromB = stoppedCounters(b.output());
    assert.equal(fromA.delivered + fromB.delivered, reportable(sim));
    assert.ok(fromA.delivered > 0 && fromB.delivered > 0, `both worked: ${fromA.delivered} + ${fromB.delivered}`);
    // Each second copy of a transaction (two billing cells) was dropped by one of them.
    assert.equal(fromA.duplicates + fromB.duplicates, sim.filter((t) => t.duplicated).length);
  });

  it('when one probe of a pair is killed, the other delivers everything', async (t) => {
    // The killed probe's leases run out after 5 s; then the survivor takes them back.
    const a = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: [...FAST_RETRIES, '--bundle-size', '50', '--lease', '5'] });
    const b = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: [...FAST_RETRIES, '--bundle-size', '50', '--lease', '5'] });
    probes.push(a, b);
    const sim = simulate(3000, 33);
    const writing = write(db, sim, 10);
    await waitFor('some deliveries', async () => (await collector.stats()).recordsAccepted >= 300);
    await a.stop('SIGKILL');
    await writing;
    await waitFor('delivery by the survivor', allDelivered(reportable(sim)));
    const check = checkDelivery(sim, await collector.records());
    // Only the batches the killed probe had in flight can come twice (byte-identical).
    assert.ok(check.resent <= 2 * 50, `${check.resent} re-sent`);
    t.diagnostic(`${reportable(sim)} delivered, ${check.resent} re-sent after the kill`);
  });
});
