/**
 * The README's first command: `npm start` runs `dcache-probe demo`, which must do something
 * real with no configuration (embedded PostgreSQL, simulated dCache, probe, collector) and end
 * with an exactness check.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runCli } from './helpers/probe';

describe('the demo (npm start)', () => {
  it('runs the whole pipeline on an embedded PostgreSQL with no configuration and finds every transfer delivered once', async () => {
    const result = await runCli(['demo', '--duration', '4', '--rate', '300'], { DCACHE_PROBE_DB_URL: '', DCACHE_PROBE_COLLECTOR_URL: '', DCACHE_PROBE_SITE_NAME: '' });
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /ready in [0-9.]+ s/);
    assert.match(result.stdout, /committed \d+ \(\+\d+\)\s+delivered \d+/);
    const summary = result.stdout.match(/summary: (\d+) reportable transfers committed, (\d+) delivered, 0 missing, 0 duplicates at the collector/);
    assert.ok(summary, result.stdout);
    assert.ok(Number(summary[1]) > 100, 'traffic flowed');
    assert.equal(summary[1], summary[2]);
  });
});
