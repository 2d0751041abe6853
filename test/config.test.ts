import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, DEFAULT_BUNDLE_SIZE, SETTINGS, closestKey, collectorEndpoint, databaseUrlProblem, loadConfig, redactUrl } from '../src/config/schema';
import { runCli } from './helpers/probe';

const dir = mkdtempSync(join(tmpdir(), 'probe-config-'));
function file(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

const REQUIRED_ENV = {
  DCACHE_PROBE_DB_URL: 'postgres://probe:secret@db.example.org/billing',
  DCACHE_PROBE_COLLECTOR_URL: 'https://gracc.example.org',
  DCACHE_PROBE_SITE_NAME: 'EXAMPLE_SE',
};

describe('configuration', () => {
  it('fills defaults around the required settings', () => {
    const config = loadConfig({ env: REQUIRED_ENV });
    assert.equal(config.pipeline.bundleSize, DEFAULT_BUNDLE_SIZE);
    assert.equal(config.pipeline.doorGraceSeconds, 120);
    assert.equal(config.pipeline.pollIntervalSeconds, 30);
    assert.equal(config.probe.grid, 'OSG');
    assert.match(config.probe.name, /^dCache-transfer:/, "the old probe's form");
    assert.equal(config.database.billingSchema, 'public');
  });

  it('lets the environment override the file and flags override both', () => {
    const path = file('layers.yaml', 'probe:\n  siteName: FROM_FILE\n  grid: FILEGRID\npipeline:\n  bundleSize: 100\n');
    const config = loadConfig({
      file: path,
      env: { ...REQUIRED_ENV, DCACHE_PROBE_SITE_NAME: 'FROM_ENV', DCACHE_PROBE_BUNDLE_SIZE: '200' },
      flags: { 'pipeline.bundleSize': '300' },
    });
    assert.equal(config.probe.grid, 'FILEGRID');
    assert.equal(config.probe.siteName, 'FROM_ENV');
    assert.equal(config.pipeline.bundleSize, 300);
  });

  it('reads JSON files too (YAML is a superset)', () => {
    const path = file('c.json', JSON.stringify({ database: { url: 'postgres://x/billing' }, collector: { url: 'http://c:8880' }, probe: { siteName: 'J' } }));
    assert.equal(loadConfig({ file: path, env: {} }).probe.siteName, 'J');
  });

  it('names the key and the file for a bad value in the file', () => {
    const path = file('bad.yaml', 'pipeline:\n  bundleSize: many\n');
    assert.throws(() => loadConfig({ file: path, env: REQUIRED_ENV }), (err: Error) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /pipeline\.bundleSize/);
      assert.ok(err.message.includes(path), err.message);
      return true;
    });
  });

  it('names the key and the file for an unknown setting, with the closest known key', () => {
    const path = file('unknown.yaml', 'pipeline:\n  bundelSize: 10\n');
    assert.throws(() => loadConfig({ file: path, env: REQUIRED_ENV }), (err: Error) => {
      assert.equal(err.message, `invalid configuration: pipeline.bundelSize: unknown setting; did you mean pipeline.bundleSize? [${path}]`);
      return true;
    });
  });

  it('reports every mistake of a file at once: unknown keys with a "did you mean", values as written', () => {
    const path = file('many.yaml', [
      'database:',
      '  queryTimeoutSecond: 30',
      'collector:',
      '  timeoutSeconds: thirty',
      'pipeline:',
      '  workers: 1.5',
      '  mode: push',
      'queryTimeoutSecond: 5',
      'log: debug',
      'frobnicate: 1',
      '',
    ].join('\n'));
    assert.throws(() => loadConfig({ file: path, env: REQUIRED_ENV }), (err: Error) => {
      assert.ok(err instanceof ConfigError);
      assert.deepEqual(err.problems, [
        `database.queryTimeoutSecond: unknown setting; did you mean database.queryTimeoutSeconds? [${path}]`,
        `queryTimeoutSecond: unknown setting; did you mean database.queryTimeoutSeconds? [${path}]`,
        `log: must be a mapping of its settings (name: value), got "debug" [${path}]`,
        `frobnicate: unknown setting (README.md, "Configuration", lists them) [${path}]`,
        `collector.timeoutSeconds: must be a number, got "thirty" [${path}]`,
        `pipeline.workers: must be a whole number, got 1.5 [${path}]`,
        `pipeline.mode: must be one of capture, poll, got "push" [${path}]`,
      ]);
      assert.ok(!err.message.includes('NaN'), err.message);
      assert.ok(!err.message.includes('bundleSize'), 'not the list of every setting');
      return true;
    });
  });

  it('suggests the closest key only when one is close', () => {
    const keys = SETTINGS.map((s) => s.key);
    assert.equal(closestKey('database.queryTimeoutSecond', keys), 'database.queryTimeoutSeconds');
    assert.equal(closestKey('pipeline.bundle_size', keys), 'pipeline.bundleSize');
    assert.equal(closestKey('probe.sitename', keys), 'probe.siteName');
    assert.equal(closestKey('databse.url', keys), 'database.url');
    assert.equal(closestKey('collector.siteName', keys), 'probe.siteName', 'a key in the wrong section');
    assert.equal(closestKey('pipeline.colour', keys), undefined);
  });

  it('accepts the PostgreSQL URL forms pg connects with, and says what is wrong with others', () => {
    for (const ok of [
      'postgres://probe:secret@db.example.org:5432/billing',
      'postgresql://db.example.org/billing',
      'postgres://srmdcache@%2Fvar%2Frun%2Fpostgresql/billing',
      'postgres:///billing?host=/var/run/postgresql',
      'postgres://srmdcache@/billing?host=/var/run/postgresql',
    ]) assert.equal(databaseUrlProblem(ok), undefined, ok);
    assert.equal(databaseUrlProblem('localhost/billing'), 'has no scheme');
    assert.equal(databaseUrlProblem('db.example.org:5432/billing'), 'has no scheme');
    assert.equal(databaseUrlProblem('mysql://x@127.0.0.1/billing'), 'is mysql://');
    assert.equal(databaseUrlProblem('postgres://db.example.org'), 'names no database');
    assert.equal(databaseUrlProblem('postgres:///billing'), 'names no host (nor a socket directory in ?host=)');
    assert.equal(databaseUrlProblem('postgres://db:port/billing'), 'cannot be parsed');
  });

  it('names the environment variable for a bad value from the environment', () => {
    assert.throws(() => loadConfig({ env: { ...REQUIRED_ENV, DCACHE_PROBE_COLLECTOR_URL: 'ftp://x' } }), /collector\.url: .*environment variable DCACHE_PROBE_COLLECTOR_URL/);
  });

  it('reads true/false as 1/0, yes/no, on/off, and reports any other word instead of taking it for false', () => {
    const config = loadConfig({ env: { ...REQUIRED_ENV, DCACHE_PROBE_SUPPRESS_NO_DN: 'Yes', DCACHE_PROBE_REPORT_TAPE: 'off' } });
    assert.equal(config.identity.suppressNoDn, true);
    assert.equal(config.pipeline.reportTape, false);
    assert.throws(() => loadConfig({ env: { ...REQUIRED_ENV, DCACHE_PROBE_SUPPRESS_NO_DN: 'maybe' } }), /identity\.suppressNoDn: must be true or false, got "maybe" \[environment variable DCACHE_PROBE_SUPPRESS_NO_DN\]/);
  });

  it('names the flag for a bad flag value', () => {
    assert.throws(() => loadConfig({ env: REQUIRED_ENV, flags: { 'pipeline.maxBundleBytes': '5000000' } }), /pipeline\.maxBundleBytes: .*flag --max-bundle-bytes/);
  });

  it('says how to set a missing required setting', () => {
    assert.throws(() => loadConfig({ env: { DCACHE_PROBE_DB_URL: 'postgres://x/b', DCACHE_PROBE_COLLECTOR_URL: 'http://c' } }), /probe\.siteName: .*DCACHE_PROBE_SITE_NAME.*--site-name/);
  });

  it('reports a file that is not YAML with its path', () => {
    const path = file('broken.yaml', 'probe: [unclosed\n');
    assert.throws(() => loadConfig({ file: path, env: REQUIRED_ENV }), (err: Error) => err.message.startsWith(path));
  });

  it('takes the statistics and detector settings from the file, the environment and flags like any other', () => {
    const path = file('stats.yaml', 'statistics:\n  enabled: false\n  hourRetentionDays: 7\n  detectors:\n    fault:\n      minCount: 4\n    surge:\n      ratio: lots\n');
    assert.throws(() => loadConfig({ file: path, env: { ...REQUIRED_ENV, DCACHE_PROBE_ANOMALY_STOPPED_MIN_EXPECTED: '-3' } }), (err: Error) => {
      assert.ok(err instanceof ConfigError);
      assert.deepEqual(err.problems, [
        `statistics.detectors.surge.ratio: must be a number, got "lots" [${path}]`,
        'statistics.detectors.stopped.minExpected: must be at least 0, got "-3" [environment variable DCACHE_PROBE_ANOMALY_STOPPED_MIN_EXPECTED]',
      ]);
      return true;
    });
    const config = loadConfig({ file: path, env: { ...REQUIRED_ENV, DCACHE_PROBE_ANOMALY_FAULT_MIN_COUNT: '6' }, flags: { 'statistics.detectors.surge.ratio': '7' } });
    assert.equal(config.statistics.enabled, false);
    assert.equal(config.statistics.hourRetentionDays, 7);
    assert.equal(config.statistics.minuteRetentionHours, 48, 'a default');
    assert.equal(config.statistics.detectors.fault.minCount, 6, 'the environment over the file');
    assert.equal(config.statistics.detectors.surge.ratio, 7, 'a flag over the file');
    assert.equal(config.statistics.detectors.misuse.minCount, 20);
    assert.equal(SETTINGS.find((s) => s.key === 'statistics.detectors.surge.ratio')?.flag, 'anomaly-surge-ratio');
    const typo = file('stats-typo.yaml', 'statistics:\n  detectors:\n    fault:\n      minCont: 4\n');
    assert.throws(() => loadConfig({ file: typo, env: REQUIRED_ENV }), /statistics\.detectors\.fault\.minCont: unknown setting; did you mean statistics\.detectors\.fault\.minCount\?/);
  });

  it('validates only the sections a command needs', () => {
    const config = loadConfig({ env: { DCACHE_PROBE_DB_URL: 'postgres://x/b' } }, ['database', 'log']);
    assert.equal(config.database.url, 'postgres://x/b');
  });

  it('never shows a password', () => {
    assert.equal(redactUrl('postgres://probe:s3cret@db/billing'), 'postgres://probe:***@db/billing');
    assert.equal(redactUrl('probe:s3cret@db/billing'), 'probe:***@db/billing', 'not a URL, still no password');
    assert.equal(redactUrl('postgres://probe:s3cret@/billing?host=/tmp'), 'postgres://probe:***@/billing?host=/tmp');
    assert.equal(redactUrl('postgres://probe:s3/c@ret@db/billing'), 'postgres://probe:***@db/billing');
    assert.equal(redactUrl('mysql://probe@db/billing'), 'mysql://probe@db/billing', 'nothing to hide');
    assert.throws(() => loadConfig({ env: { ...REQUIRED_ENV, DCACHE_PROBE_DB_URL: 'mysql://probe:s3cret@db/billing' } }), (err: Error) => !err.message.includes('s3cret') && err.message.includes('mysql://probe:***@db/billing'));
    assert.throws(() => loadConfig({ env: { ...REQUIRED_ENV, DCACHE_PROBE_BUNDLE_SIZE: '-1' } }), (err: Error) => !err.message.includes('secret'));
  });

  it("defaults the collector path to Gratia's servlet", () => {
    assert.equal(collectorEndpoint('https://gracc.example.org').toString(), 'https://gracc.example.org/gratia-servlets/rmi');
    assert.equal(collectorEndpoint('http://c:8880/custom/path').pathname, '/custom/path');
  });
});

describe('configuration errors through the command (exit 2)', () => {
  it('a malformed or non-PostgreSQL --db-url: says what is wrong and shows the expected form', async () => {
    for (const [url, problem] of [['localhost/billing', 'has no scheme'], ['mysql://x@127.0.0.1/billing', 'is mysql://']] as const) {
      for (const command of [['status'], ['migrate'], ['demo', '--duration', '1']]) {
        const result = await runCli([...command, '--db-url', url]);
        assert.equal(result.code, 2, `${command[0]} ${url}: ${result.stderr}`);
        assert.ok(result.stderr.includes(`this one ${problem}`), result.stderr);
        assert.ok(result.stderr.includes('postgres://user@host:port/database'), result.stderr);
        assert.ok(result.stderr.includes(JSON.stringify(url)), 'the value as written');
        assert.ok(!/ENOTFOUND|getaddrinfo|\bbase\b/.test(result.stderr), result.stderr);
      }
    }
  });

  it('a config file with several mistakes: all of them, with key, value as written and file', async () => {
    const path = file('cli.yaml', 'database:\n  url: postgres://x@127.0.0.1:1/billing\n  queryTimeoutSecond: 30\ncollector:\n  url: http://127.0.0.1:1\n  timeoutSeconds: thirty\nprobe:\n  siteName: S\n');
    const result = await runCli(['run', '--config', path]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /invalid configuration, 2 problems:/);
    assert.ok(result.stderr.includes(`database.queryTimeoutSecond: unknown setting; did you mean database.queryTimeoutSeconds? [${path}]`), result.stderr);
    assert.ok(result.stderr.includes(`collector.timeoutSeconds: must be a number, got "thirty" [${path}]`), result.stderr);
  });
});

describe('the README', () => {
  it('documents every setting with its environment variable and flag', () => {
    const readme = readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8');
    const undocumented = SETTINGS.filter((s) => !readme.includes(s.env) || !readme.includes(`--${s.flag}`)).map((s) => s.key);
    assert.deepEqual(undocumented, []);
  });
});
