/**
 * Running it like a service: the metrics and health endpoints over real HTTP, and every
 * command's error paths (exit codes and messages a person can act on).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../src/tools/demo/embedded';
import { startCollector, type CollectorProcess } from './helpers/collector';
import { withDatabaseAndCollector } from './helpers/fixture';
import { createBillingDatabase, type BillingDatabase } from './helpers/database';
import { waitFor } from './helpers/env';
import { startPrivatePostgres, type PrivatePostgres } from './helpers/private-postgres';
import { runCli, startProbe } from './helpers/probe';
import { FAST_RETRIES, queueDepth, reportable, simulate, write } from './helpers/scenario';

/** One sample's value from the Prometheus text format. */
function metric(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'));
  assert.ok(line, `no metric ${name}`);
  return Number(line.split(' ').pop());
}

describe('metrics and health endpoints', () => {
  let db: BillingDatabase;
  let collector: CollectorProcess;
  withDatabaseAndCollector('modern', (d, c) => ((db = d), (collector = c)));

  it('serves /healthz, /readyz and Prometheus metrics that count what was delivered', async () => {
    const port = await freePort();
    const probe = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: [...FAST_RETRIES, '--metrics-port', String(port)] });
    const base = `http://127.0.0.1:${port}`;
    try {
      assert.equal((await fetch(`${base}/healthz`)).status, 200);
      const ready = await fetch(`${base}/readyz`);
      assert.equal(ready.status, 200, await ready.clone().text());
      assert.deepEqual(await ready.json(), { ready: true, database: true, listener: true, collector: true, problems: [] });

      const sim = simulate(200, 41);
      await write(db, sim);
      await waitFor('delivery', async () => (await queueDepth(db)) === 0 && (await collector.stats()).recordsAccepted >= reportable(sim));
      const text = await (await fetch(`${base}/metrics`)).text();
      assert.equal(metric(text, 'dcache_probe_records_delivered_total'), reportable(sim));
      assert.equal(metric(text, 'dcache_probe_duplicates_suppressed_total'), sim.filter((t) => t.duplicated).length);
      assert.equal(metric(text, 'dcache_probe_capture_to_ack_seconds_count'), reportable(sim));
      assert.equal(metric(text, 'dcache_probe_queue_depth'), 0);
      assert.equal(metric(text, 'dcache_probe_oldest_pending_seconds'), 0);
      assert.equal(metric(text, 'dcache_probe_rows_captured'), reportable(sim) + sim.filter((t) => t.duplicated).length);
      assert.equal(metric(text, 'dcache_probe_listener_connected'), 1);
      assert.ok(metric(text, 'dcache_probe_last_delivery_timestamp_seconds') > Date.now() / 1000 - 60);
      assert.equal(metric(text, 'dcache_probe_records_quarantined_total'), 0);
      assert.ok(text.includes('dcache_probe_collector_retries_total'));
      assert.equal((await fetch(`${base}/nothing`)).status, 404);
    } finally {
      await probe.stop('SIGTERM');
    }
  });

  it('is not ready, and says why, while the collector cannot be reached', async () => {
    const port = await freePort();
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    const probe = await startProbe({ dbUrl: db.url, collectorUrl: nowhere, extraArgs: [...FAST_RETRIES, '--metrics-port', String(port)] });
    try {
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      assert.equal(ready.status, 503);
      const body = (await ready.json()) as { collector: boolean; database: boolean; problems: string[] };
      assert.equal(body.collector, false);
      assert.equal(body.database, true);
      assert.match(body.problems.join(' '), /collector has not accepted anything/);
      assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200, 'alive all the same');
    } finally {
      await probe.stop('SIGTERM');
    }
  });

  it('says the metrics port is taken, and exits 1', async () => {
    const port = await freePort();
    const first = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: ['--metrics-port', String(port)] });
    try {
      const second = await runCli(['run', '--db-url', db.url, '--collector-url', collector.url, '--site-name', 'X', '--metrics-port', String(port)]);
      assert.equal(second.code, 1);
      assert.match(second.stderr, new RegExp(`metrics port 127\\.0\\.0\\.1:${port} is already in use`));
    } finally {
      await first.stop('SIGTERM');
    }
  });
});

describe('command errors a person can act on', () => {
  let server: PrivatePostgres;
  let db: BillingDatabase;
  before(async () => {
    server = await startPrivatePostgres();
    db = await createBillingDatabase('modern', { adminUrl: server.url('postgres'), migrate: false });
  });
  after(async () => {
    await db.drop();
    await server.stop();
  });

  const commands = [['run', '--collector-url', 'http://127.0.0.1:1', '--site-name', 'X', '--metrics-port', '0'], ['poll', '--once', '--collector-url', 'http://127.0.0.1:1', '--site-name', 'X'], ['migrate'], ['uninstall'], ['status'], ['quarantine', 'list']];

  for (const command of commands) {
    const name = command.filter((w) => !w.startsWith('-') && !w.includes(':') && w !== 'X' && w !== '0').join(' ');

    // (`run` waits for it instead: database-faults › waits at start-up for a database that is not up yet…)
    if (command[0] !== 'run') it(`${name}: an unreachable database exits 1 and says so`, async () => {
      const closed = await freePort();
      const result = await runCli([...command, '--db-url', `postgres://postgres@127.0.0.1:${closed}/billing`]);
      assert.equal(result.code, 1, result.stderr);
      assert.match(result.stderr, /cannot reach the database \(connection refused\)/);
    });

    it(`${name}: a wrong password exits 1 and says so, without showing the password`, async () => {
      const result = await runCli([...command, '--db-url', server.url(db.name, 'wrong-secret')]);
      assert.equal(result.code, 1, result.stderr);
      assert.match(result.stderr, /refused the password/);
      assert.ok(!result.stderr.includes('wrong-secret'));
    });

    it(`${name}: --help exits 0`, async () => {
      const result = await runCli([...command.slice(0, command[0] === 'quarantine' ? 2 : 1), '--help']);
      assert.equal(result.code, 0);
      assert.match(result.stdout, /Usage: dcache-probe/);
    });
  }

  for (const command of [['run', '--collector-url', 'http://127.0.0.1:1', '--site-name', 'X', '--metrics-port', '0'], ['poll', '--once', '--collector-url', 'http://127.0.0.1:1', '--site-name', 'X'], ['status']]) {
    it(`${command[0]}: a database without the probe installed exits 1 and says to migrate`, async () => {
      const result = await runCli([...command, '--db-url', server.url(db.name)]);
      assert.equal(result.code, 1);
      assert.match(result.stderr + result.stdout, /not installed in this database: run "dcache-probe migrate"/);
    });
  }

  it('an invalid configuration exits 2 naming the setting and the file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'probe-cli-'));
    const file = join(dir, 'probe.yaml');
    writeFileSync(file, 'collector:\n  url: not-a-url\n');
    const result = await runCli(['run', '--config', file, '--db-url', server.url(db.name), '--site-name', 'X']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /collector\.url: must be an http:\/\/ or https:\/\/ URL/);
    assert.ok(result.stderr.includes(file));
  });

  it('a missing required setting exits 2 and says how to set it', async () => {
    const result = await runCli(['run', '--db-url', server.url(db.name), '--collector-url', 'http://127.0.0.1:1'], { DCACHE_PROBE_SITE_NAME: '' });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /probe\.siteName: is required .*DCACHE_PROBE_SITE_NAME.*--site-name/);
  });

  it('verify, simulate and demo: an unreachable database exits 1 and says so; a bad time exits 2', async () => {
    const closed = `postgres://postgres@127.0.0.1:${await freePort()}/billing`;
    for (const args of [['verify', '--since', '2026-01-01T00:00:00Z'], ['simulate', '--duration', '1'], ['demo', '--duration', '1']]) {
      const result = await runCli([...args, '--db-url', closed]);
      assert.equal(result.code, 1, `${args[0]}: ${result.stderr}`);
      assert.match(result.stderr, /cannot reach the database \(connection refused\)/, args[0]);
    }
    const badTime = await runCli(['verify', '--since', 'yesterday', '--db-url', closed]);
    assert.equal(badTime.code, 2);
    assert.match(badTime.stderr, /--since: "yesterday" is not a time/);
  });

  it('an unknown command or option exits 2', async () => {
    assert.equal((await runCli(['frobnicate'])).code, 2);
    assert.equal((await runCli(['status', '--no-such-flag'])).code, 2);
  });

  it('poll --once: a collector URL that does not speak the protocol (HTTP 404) exits 1, keeps the rows and says what it answered', async () => {
    const installed = await createBillingDatabase('modern', { adminUrl: server.url('postgres') });
    const collector = await startCollector();
    try {
      await write(installed, simulate(20, 42));
      await collector.fault({ mode: 'ok' });
      // An answer that is not the protocol's: a proxy or an auth layer in front of it.
      const forbidden = await runCli(['poll', '--once', '--db-url', installed.url, '--collector-url', `${collector.url}/_control/not-here`, '--site-name', 'X', '--retry-budget', '1', '--retry-base-ms', '50']);
      assert.equal(forbidden.code, 1);
      assert.match(forbidden.stderr, /collector unavailable, records stay queued: HTTP 404/);
      assert.ok((await queueDepth(installed)) > 0);
    } finally {
      await collector.stop();
      await installed.drop();
    }
  });
});
