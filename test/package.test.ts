/**
 * The package as npm publishes it: `main`, `types`, `exports` and `bin` in package.json name
 * files the build made, and the package loads by its own name (Node resolves a package's
 * self-reference through `exports`, exactly as a dependent's require would).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DIST } from './helpers/env';

const ROOT = join(DIST, '..');
const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));

/** Every file path an `exports` entry names (conditions included). */
function exportTargets(entry: unknown): string[] {
  if (typeof entry === 'string') return [entry];
  if (entry && typeof entry === 'object') return Object.values(entry).flatMap(exportTargets);
  return [];
}

describe('the package manifest', () => {
  it('names in main, types, exports and bin only files that exist after the build', () => {
    const targets = [manifest.main, manifest.types, ...exportTargets(manifest.exports), ...Object.values(manifest.bin as Record<string, string>)];
    assert.ok(targets.length >= 5);
    for (const target of targets) assert.ok(existsSync(join(ROOT, target)), `${target} does not exist`);
  });

  it('loads by its own name and offers the probe, the configuration and the migrations', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const api = require(manifest.name);
    assert.equal(require.resolve(manifest.name), join(ROOT, manifest.exports['.'].default));
    for (const name of ['Probe', 'loadConfig', 'ConfigError', 'SETTINGS', 'migrate', 'uninstall', 'grantRuntimeRole', 'createLogger']) {
      assert.equal(typeof api[name], name === 'SETTINGS' ? 'object' : 'function', name);
    }
    assert.equal(api.PROBE_VERSION, manifest.version);
  });
});
