/**
 * 7. Memory: peak RSS of the probe through catch-ups of growing backlogs, for the daemon
 * (`dcache-probe run`, its defaults: statistics, the HTTP server, 500 × 2) and for `poll --once`,
 * with the node flags we deploy with (the unit's and the image's NODE_OPTIONS) and with none (an
 * `npm i -g` install). Peak RSS is the kernel's VmHWM; a preloaded sampler (lib/memory-sampler.ts)
 * says what it was made of at its highest sample: V8's heap by space, and memory outside it.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { freePort } from '../src/tools/demo/embedded';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { queueDepth, restoreQueue } from './lib/db';
import { DIST, sleep } from './lib/env';
import { pollOnce, startDaemon, type CollectorProcess } from './lib/proc';
import type { MemorySample } from './lib/memory-sampler';

/** Another build's CLI to measure beside this one (e.g. the commit before issue 15), if given. */
export const BASELINE_CLI = process.env.DCACHE_PROBE_BENCH_BASELINE_CLI ?? '';
const SAMPLER = join(DIST, 'bench', 'lib', 'memory-sampler.js');

export interface MemoryVariant {
  probe: 'current' | 'baseline';
  mode: 'daemon' | 'poll';
  flags: 'deployed' | 'none';
}

export interface MemoryRun extends MemoryVariant {
  rows: number;
  delivered: number;
  left: number;
  ok: boolean;
  wallS: number;
  cpuS: number;
  /** VmHWM (daemon) or ru_maxrss (poll --once), MB. */
  peakRssMb: number;
  /** RSS, MB, about every second. */
  rssSamplesMb: number[];
  /** The sampler's line with the highest RSS (MB figures), if it ran. */
  atPeak: MemoryBreakdown | null;
  loadAvg1: number;
}

export interface MemoryBreakdown {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  newSpace: number;
  oldSpace: number;
  largeObjects: number;
  code: number;
  /** RSS − V8's committed heap − external: node, its modules' native memory, malloc arenas. */
  outsideHeap: number;
}

export interface MemoryContext {
  pool: pg.Pool;
  dbUrl: string;
  collector: CollectorProcess;
}

const MB = 1024 * 1024;

function breakdownAtPeak(file: string): MemoryBreakdown | null {
  if (!existsSync(file)) return null;
  let best: MemorySample | null = null;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    try {
      const s = JSON.parse(line) as MemorySample;
      if (!best || s.rss > best.rss) best = s;
    } catch {
      /* a torn last line */
    }
  }
  if (!best) return null;
  const space = (name: string) => (best!.spaces[name]?.size ?? 0) / MB;
  return {
    rss: best.rss / MB,
    heapTotal: best.heapTotal / MB,
    heapUsed: best.heapUsed / MB,
    external: best.external / MB,
    arrayBuffers: best.arrayBuffers / MB,
    newSpace: space('new_space'),
    oldSpace: space('old_space'),
    largeObjects: space('large_object_space') + space('new_large_object_space'),
    code: space('code_space') + space('code_large_object_space'),
    outsideHeap: (best.rss - best.heapTotal - best.external) / MB,
  };
}


/** One catch-up of the restored snapshot backlog (`rows` queued) by one variant. */
export async function memoryRun(ctx: MemoryContext, rows: number, v: MemoryVariant, sample: boolean): Promise<MemoryRun> {
  const depth = await restoreQueue(ctx.dbUrl);
  if (depth !== rows) throw new Error(`expected ${rows} queued rows, found ${depth}`);
  await ctx.collector.reset();
  const cli = v.probe === 'baseline' ? BASELINE_CLI : undefined;
  const bare = v.flags === 'none';
  const memlog = join(tmpdir(), `dcache-bench-memlog-${process.pid}-${Date.now()}.jsonl`);
  const nodeFlags = sample ? ['-r', SAMPLER] : [];
  const env = sample ? { DCACHE_BENCH_MEMLOG: memlog } : undefined;
  const t0 = performance.now();
  let result: Omit<MemoryRun, keyof MemoryVariant | 'atPeak' | 'rows' | 'loadAvg1' | 'left' | 'delivered' | 'ok'>;
  let code: number | null = 0;
  try {
    if (v.mode === 'poll') {
      const run = await pollOnce({ cli, bare, dbUrl: ctx.dbUrl, collectorUrl: ctx.collector.url }, { nodeFlags, env });
      code = run.code;
      if (run.code !== 0) process.stderr.write(run.stderr);
      const every = run.rssSamplesMb.filter((_, i) => i % 4 === 0); // 250 ms → 1 s
      result = { wallS: run.wallMs / 1000, cpuS: run.userS + run.sysS, peakRssMb: run.peakRssMb, rssSamplesMb: every };
    } else {
      const port = await freePort();
      const probe = await startDaemon({ cli, bare, dbUrl: ctx.dbUrl, collectorUrl: ctx.collector.url, extra: ['--metrics-port', String(port)] }, nodeFlags, undefined, env);
      const rssSamplesMb: number[] = [];
      let hwm = 0;
      let cpu = 0;
      const deadline = Date.now() + 120_000 + rows; // 1 ms per row beyond two minutes
      try {
        for (let tick = 0; ; tick++) {
          const mem = probe.memoryKb();
          if (mem) {
            hwm = Math.max(hwm, mem.hwm);
            if (tick % 5 === 0) rssSamplesMb.push(mem.rss / 1024);
          }
          cpu = probe.cpuSeconds() ?? cpu;
          if (tick % 5 === 0) {
            const accepted = (await ctx.collector.stats()).recordsAccepted;
            if (accepted >= rows && (await queueDepth(ctx.pool)) === 0) break;
            if (Date.now() > deadline) break;
          }
          await sleep(200);
        }
        const mem = probe.memoryKb();
        if (mem) hwm = Math.max(hwm, mem.hwm);
        cpu = probe.cpuSeconds() ?? cpu;
      } finally {
        code = (await probe.stop()).code;
      }
      result = { wallS: (performance.now() - t0) / 1000, cpuS: cpu, peakRssMb: hwm / 1024, rssSamplesMb };
    }
    await sleep(300); // the sampler's exit line
    const atPeak = sample ? breakdownAtPeak(memlog) : null;
    const left = await queueDepth(ctx.pool);
    const delivered = (await ctx.collector.stats()).recordsAccepted;
    return { ...v, rows, ...result, delivered, left, ok: left === 0 && delivered === rows && (v.mode === 'daemon' || code === 0), atPeak, loadAvg1: loadavg()[0] ?? NaN };
  } finally {
    rmSync(memlog, { force: true });
  }
}

/** The variants, in the order they run for each backlog (the baseline only if it is built). */
export function memoryVariants(): MemoryVariant[] {
  const probes: MemoryVariant['probe'][] = BASELINE_CLI && existsSync(BASELINE_CLI) ? ['baseline', 'current'] : ['current'];
  const out: MemoryVariant[] = [];
  for (const mode of ['daemon', 'poll'] as const) for (const flags of ['deployed', 'none'] as const) for (const probe of probes) out.push({ probe, mode, flags });
  return out;
}


