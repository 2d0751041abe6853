/**
 * Summarises a V8 .cpuprofile (node --cpu-prof): self time per function and per package, so
 * the hot spots can be named without a GUI. Also usable alone:
 *   node dist/bench/lib/profile.js FILE.cpuprofile [top]
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface HotSpot {
  name: string;
  selfMs: number;
  share: number;
}

export interface ProfileSummary {
  totalMs: number;
  /** Self time by function (file:line). */
  functions: HotSpot[];
  /** Self time by module group: our src files, each node_modules package, node internals, GC, idle. */
  groups: HotSpot[];
  /** Inclusive time of selected frames (ours): how much each src function costs with its callees. */
  inclusive: HotSpot[];
}

function group(url: string, name: string): string {
  if (name === '(garbage collector)') return '(gc)';
  if (name === '(idle)') return '(idle)';
  if (name === '(program)') return '(program)';
  const nm = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/);
  if (nm) return nm[1]!;
  const src = url.match(/dist\/(src\/.*?)\.js/);
  if (src) return src[1]!;
  if (url.startsWith('node:')) return 'node:' + url.slice(5).split('/')[0];
  return url ? url.replace(/^.*\//, '') : '(native)';
}

export function summariseProfile(file: string, top = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000));
  const totalMs = [...self.values()].reduce((a, b) => a + b, 0);

  const fn = new Map<string, number>();
  const grp = new Map<string, number>();
  const incl = new Map<string, number>();
  for (const [id, ms] of self) {
    const node = byId.get(id)!;
    const { functionName, url, lineNumber } = node.callFrame;
    const key = `${functionName || '(anonymous)'} ${url ? url.replace(/^.*?(node_modules\/|dist\/)/, '$1') + ':' + (lineNumber + 1) : ''}`.trim();
    fn.set(key, (fn.get(key) ?? 0) + ms);
    const g = group(url, functionName);
    grp.set(g, (grp.get(g) ?? 0) + ms);
    // inclusive time for our own functions: walk up, count each distinct src frame once
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      if (!/dist\/src\//.test(f.url)) continue;
      const k = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*dist\//, '')}:${f.lineNumber + 1}`;
      if (seen.has(k)) continue;
      seen.add(k);
      incl.set(k, (incl.get(k) ?? 0) + ms);
    }
  }
  const list = (m: Map<string, number>, n: number) =>
    [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, n).map(([name, selfMs]) => ({ name, selfMs, share: selfMs / totalMs }));
  return { totalMs, functions: list(fn, top), groups: list(grp, top), inclusive: list(incl, top) };
}

export function formatProfile(s: ProfileSummary): string {
  const fmt = (h: HotSpot) => `${h.selfMs.toFixed(0).padStart(8)} ms ${(h.share * 100).toFixed(1).padStart(5)}%  ${h.name}`;
  return [
    `total sampled ${s.totalMs.toFixed(0)} ms`,
    'self time by package/module:',
    ...s.groups.map(fmt),
    'self time by function:',
    ...s.functions.map(fmt),
    'inclusive time of the probe\'s own functions:',
    ...s.inclusive.map(fmt),
  ].join('\n');
}

if (require.main === module) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node dist/bench/lib/profile.js FILE.cpuprofile [top]\n');
    process.exit(2);
  }
  process.stdout.write(formatProfile(summariseProfile(file, Number(process.argv[3] ?? 25))) + '\n');
}
