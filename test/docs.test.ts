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

/** The files below a folder of the checkout, as paths from the root. */
function filesUnder(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? (['results', 'golden', 'screenshots'].includes(e.name) ? [] : filesUnder(join(dir, e.name))) : [join(dir, e.name)],
  );
}

describe('the documents', () => {
  it('name only files of the tree that exist (src/, sql/, test/, bench/, deploy/, docs/; dist/… as its source), and so do the comments', () => {
    // The documents, and the comments of the code, SQL and deployment files that point into the tree.
    const documents = [
      'README.md',
      'CONTRIBUTING.md',
      'Dockerfile',
      'docker-compose.yml',
      ...['docs', 'src', 'test', 'bench', 'sql', 'deploy'].flatMap((dir) => filesUnder(dir)).filter((f) => /\.(md|ts|sql|service|cron|example)$/.test(f)),
    ];
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
