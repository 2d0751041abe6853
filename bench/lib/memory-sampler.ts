/**
 * Preloaded into a measured probe (`node -r dist/bench/lib/memory-sampler.js …`) by the memory
 * section: where the resident memory goes is only visible from inside the process. Every 250 ms
 * it appends one JSON line to $DCACHE_BENCH_MEMLOG: RSS, V8's heap (total and used), memory
 * outside the heap (external, of it array buffers) and each V8 heap space's committed size.
 * Bench-only; it never touches the probe's own modules.
 */
import { appendFileSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';

export interface MemorySample {
  t: number;
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  /** Committed bytes of each V8 heap space (new_space, old_space, large_object_space, code_space, …). */
  spaces: Record<string, { size: number; used: number }>;
}

const file = process.env.DCACHE_BENCH_MEMLOG;
if (file) {
  const started = Date.now();
  const sample = () => {
    const m = process.memoryUsage();
    const spaces: MemorySample['spaces'] = {};
    for (const s of getHeapSpaceStatistics()) spaces[s.space_name] = { size: s.space_size, used: s.space_used_size };
    const line: MemorySample = { t: Date.now() - started, rss: m.rss, heapTotal: m.heapTotal, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, spaces };
    try {
      appendFileSync(file, JSON.stringify(line) + '\n');
    } catch {
      /* best effort */
    }
  };
  setInterval(sample, 250).unref();
  process.on('exit', sample);
}
