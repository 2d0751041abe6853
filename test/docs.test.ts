/** The documents an operator copies from must match what the probe really exports. */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
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

describe('the documents', () => {
  it('name only files of the tree that exist (src/, sql/, test/, bench/, deploy/, docs/; dist/… as its source)', () => {
    const documents = ['README.md', 'CONTRIBUTING.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join('docs', f))];
    const missing: string[] = [];
    for (const document of documents) {
      const text = readFileSync(join(ROOT, document), 'utf8');
      for (const [, path] of text.matchAll(/(?<![\w./-])((?:dist\/)?(?:src|sql|test|bench|deploy|docs)\/[\w./*-]*[\w*])/g)) {
        if (path!.includes('*') || /^(dist\/)?bench\/results/.test(path!)) continue; // globs; what a bench run writes
        // dist/… is what the build makes of the source next to it.
        const source = path!.startsWith('dist/') ? path!.slice('dist/'.length).replace(/\.js$/, '.ts') : path!;
        if (!existsSync(join(ROOT, source))) missing.push(`${document}: ${path}`);
      }
    }
    assert.deepEqual(missing, []);
  });
});
