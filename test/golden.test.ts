/**
 * The records themselves, byte for byte: a fixed set of billing rows (seeded, at a fixed time,
 * both schema forms) goes through the real triggers, the probe (`poll --once`) and the
 * collector, and the XML the collector accepted must equal the golden file checked in under
 * test/golden/. A change to the mapping, the XML or the record's identity shows here as a diff;
 * when one is meant, regenerate with DCACHE_PROBE_UPDATE_GOLDEN=1 and review the diff.
 *
 * Every row is written before the probe runs, so which movers have their door row is fixed,
 * and the door grace is 0, so movers without one are sent at once, without it.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TransferGenerator, messageStream, writeMessages, type SchemaForm } from '../src/tools/demo/simulator';
import type { CollectorProcess } from './helpers/collector';
import type { BillingDatabase } from './helpers/database';
import { DIST } from './helpers/env';
import { withDatabaseAndCollector } from './helpers/fixture';
import { pollOnce } from './helpers/probe';

const GOLDEN_DIR = join(DIST, '..', 'test', 'golden');
/** The rows' clock: 2024-03-14T12:00:00Z, whenever the test runs. */
const NOW = Date.parse('2024-03-14T12:00:00Z');
const ZONE = 'America/Chicago';

/** One record per block, in a fixed order (by LocalJobId, then by the XML itself). */
function goldenText(records: readonly { localJobId: string; xml: string }[]): string {
  const sorted = [...records].sort((a, b) => a.localJobId.localeCompare(b.localJobId) || a.xml.localeCompare(b.xml));
  return sorted.map((r) => r.xml.trim()).join('\n\n') + '\n';
}

for (const form of ['modern', 'legacy'] as SchemaForm[]) {
  describe(`records from a fixed set of ${form} billing rows`, () => {
    let db: BillingDatabase;
    let collector: CollectorProcess;
    withDatabaseAndCollector(form, (d, c) => ((db = d), (collector = c)));

    it('are byte-identical to the golden file', async () => {
      const generator = new TransferGenerator({ seed: form === 'modern' ? 1301 : 1302, form, now: () => NOW, duplicateShare: 0.05, p2pShare: 0.05, noDoorShare: 0.05, errorShare: 0.1 });
      const sim = Array.from({ length: 160 }, () => generator.next());
      await writeMessages(messageStream(sim, 7, 0), { url: db.url, writers: 1, maxTransactionRows: 20, timeZone: ZONE });
      const poll = await pollOnce({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: ['--door-grace', '0', '--db-time-zone', ZONE] });
      assert.equal(poll.code, 0, poll.stderr);
      const records = await collector.records();
      assert.equal(records.length, sim.filter((t) => t.reportable).length, 'every reportable transfer was delivered once');
      const actual = goldenText(records);
      const file = join(GOLDEN_DIR, `records-${form}.xml`);
      if (process.env.DCACHE_PROBE_UPDATE_GOLDEN === '1') writeFileSync(file, actual);
      assert.equal(actual, readFileSync(file, 'utf8'), `records differ from ${file}`);
    });
  });
}
