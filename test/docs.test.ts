/** The documents an operator copies from must match what the probe really exports. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';

const ROOT = join(__dirname, '..', '..');

describe('docs/prometheus-alerts.yml', () => {
  it('is valid YAML whose rules use only metrics the probe exports', () => {
    const rules = parse(readFileSync(join(ROOT, 'docs', 'prometheus-alerts.yml'), 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] };
    const source = readFileSync(join(ROOT, 'src', 'service', 'metrics.ts'), 'utf8');
    const exported = new Set([...source.matchAll(/name: '(dcache_probe_[a-z_]+)'/g)].map((m) => m[1]!));
    const used = rules.groups.flatMap((g) => g.rules).flatMap((r) => [...r.expr.matchAll(/dcache_probe_[a-z_]+/g)].map((m) => m[0]));
    assert.ok(used.length > 5);
    const unknown = used.filter((name) => !exported.has(name) && !exported.has(name.replace(/_(bucket|count|sum)$/, '')));
    assert.deepEqual(unknown, []);
  });
});
