/**
 * The module graph of src/ has no cycles, type-only imports included, neither between modules
 * nor between the folders of the tree (its layers, docs/ARCHITECTURE.md): each layer may use
 * the ones below it, never the other way round. Read from the TypeScript sources (the build
 * erases type-only imports), with TypeScript's own scanner.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';
import { DIST } from './helpers/env';

const SRC = join(DIST, '..', 'src');

/** The layers, bottom first: a module may import from its own layer and the ones before it. */
const LAYERS = ['lib.ts', 'logger.ts', 'version.ts', 'config', 'record', 'db', 'legacy', 'pipeline', 'features', 'service', 'tools', 'cli', 'index.ts'];

function layerRank(file: string): number {
  const top = relative(SRC, file).split(sep)[0]!;
  const rank = LAYERS.indexOf(top);
  assert.ok(rank >= 0, `${top} is in no layer: add it to LAYERS (and to docs/ARCHITECTURE.md)`);
  return rank;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith('.ts') && !path.endsWith('.d.ts') ? [path] : [];
  });
}

/** The src/ modules a file imports (import, import type, export … from, require). */
function importsOf(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return info.importedFiles
    .map((f) => f.fileName)
    .filter((spec) => spec.startsWith('.'))
    .map((spec) => resolve(dirname(file), spec))
    .map((base) => [`${base}.ts`, join(base, 'index.ts')].find((candidate) => existsSync(candidate)))
    .filter((path): path is string => path !== undefined);
}

/** Strongly connected components of more than one module, or a module importing itself (Tarjan). */
function cycles(graph: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  let next = 0;
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

describe('the module graph of src/', () => {
  it('has no import cycles, type-only imports included', () => {
    const files = sourceFiles(SRC);
    assert.ok(files.length > 20, `found ${files.length} modules in ${SRC}`);
    const graph = new Map(files.map((f) => [f, importsOf(f)]));
    const shown = cycles(graph).map((c) => c.map((f) => relative(SRC, f)).join(' <-> '));
    assert.deepEqual(shown, []);
  });

  it('has no cycles between its folders (the layers), type-only imports included', () => {
    const layerOf = (file: string) => relative(SRC, file).split(sep).slice(0, -1).join('/') || relative(SRC, file);
    const layers = new Map<string, string[]>();
    const why = new Map<string, string>();
    for (const file of sourceFiles(SRC)) {
      const from = layerOf(file).split('/')[0]!;
      for (const target of importsOf(file)) {
        const to = layerOf(target).split('/')[0]!;
        if (from === to) continue;
        layers.set(from, [...(layers.get(from) ?? []), to]);
        why.set(`${from}>${to}`, `${relative(SRC, file)} -> ${relative(SRC, target)}`);
      }
      if (!layers.has(from)) layers.set(from, []);
    }
    const shown = cycles(layers).map((c) => c.map((l) => [...c].filter((m) => why.has(`${l}>${m}`)).map((m) => why.get(`${l}>${m}`)).join(', ')).join('; '));
    assert.deepEqual(shown, []);
  });

  it('imports only from its own layer or one listed before it (the order of docs/ARCHITECTURE.md)', () => {
    const against: string[] = [];
    for (const file of sourceFiles(SRC)) {
      const from = layerRank(file);
      for (const target of importsOf(file)) {
        if (layerRank(target) > from) against.push(`${relative(SRC, file)} -> ${relative(SRC, target)}`);
      }
    }
    assert.deepEqual(against, []);
  });
});

