import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, DEFAULT_BUNDLE_SIZE, SETTINGS, collectorEndpoint, loadConfig, redactUrl } from '../src/config';

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
    assert.match(config.probe.name, /^dcache-transfer:/);
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

  it('names the key and the file for an unknown setting', () => {
    const path = file('unknown.yaml', 'pipeline:\n  bundelSize: 10\n');
    assert.throws(() => loadConfig({ file: path, env: REQUIRED_ENV }), /unknown\.yaml: pipeline\.bundelSize: unknown setting/);
  });

  it('names the environment variable for a bad value from the environment', () => {
    assert.throws(() => loadConfig({ env: { ...REQUIRED_ENV, DCACHE_PROBE_COLLECTOR_URL: 'ftp://x' } }), /collector\.url: .*environment variable DCACHE_PROBE_COLLECTOR_URL/);
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

  it('validates only the sections a command needs', () => {
    const config = loadConfig({ env: { DCACHE_PROBE_DB_URL: 'postgres://x/b' } }, ['database', 'log']);
    assert.equal(config.database.url, 'postgres://x/b');
  });

  it('never shows a password', () => {
    assert.equal(redactUrl('postgres://probe:s3cret@db/billing'), 'postgres://probe:***@db/billing');
    assert.throws(() => loadConfig({ env: { ...REQUIRED_ENV, DCACHE_PROBE_BUNDLE_SIZE: '-1' } }), (err: Error) => !err.message.includes('secret'));
  });

  it("defaults the collector path to Gratia's servlet", () => {
    assert.equal(collectorEndpoint('https://gracc.example.org').toString(), 'https://gracc.example.org/gratia-servlets/rmi');
    assert.equal(collectorEndpoint('http://c:8880/custom/path').pathname, '/custom/path');
  });
});

describe('the README', () => {
  it('documents every setting with its environment variable and flag', () => {
    const readme = readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8');
    const undocumented = SETTINGS.filter((s) => !readme.includes(s.env) || !readme.includes(`--${s.flag}`)).map((s) => s.key);
    assert.deepEqual(undocumented, []);
  });
});
