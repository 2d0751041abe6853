/**
 * Caps V8's young generation at 4 MB semi-spaces in the probe's own process, for every install.
 *
 * Why: in a catch-up the probe's batches survive scavenges, so V8 grows its semi-spaces to its
 * default maximum (16 MB each on 64-bit: a 32 MB new space) and the peak RSS with them: the
 * daemon peaked at 213–228 MB with plain node against 182–184 MB with `--max-semi-space-size=4`,
 * at no measurable CPU cost (docs/PERFORMANCE.md, "Memory"). The unit and the image pass that
 * flag in NODE_OPTIONS, but `npm i -g` installs and `node bin.js` get none, and
 * `v8.setFlagsFromString('--max-semi-space-size=…')` after start-up changes nothing (V8 sizes
 * the new space when the heap is set up). What V8 does read at every growth is
 * `--semi-space-growth-factor` (new capacity = factor × current, up to the maximum): growth is
 * held at 1× while the modules load, and after each garbage collection the factor is set so
 * that the next growth lands on the cap and no further (and the new space may grow back to it
 * after V8 shrank it).
 *
 * It stands aside when node was started with its own young-generation setting (command line
 * or NODE_OPTIONS): a site's explicit choice wins.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';

/** The semi-space size the benchmarks chose (bench/experiments/heap-flags.ts), bytes. */
export const SEMI_SPACE_CAP_BYTES = 4 * 1024 * 1024;

const OWN_SETTING = /--(max-semi-space-size|min-semi-space-size|semi-space-growth-factor|max-young-generation-size)\b/;

/** Whether node was told how big its young generation may be (then we leave it alone). */
export function youngGenerationConfigured(execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  return execArgv.some((a) => OWN_SETTING.test(a)) || OWN_SETTING.test(nodeOptions ?? '');
}

/** The growth factor that takes a semi-space of `current` bytes to the cap at its next growth (1: stay). */
export function growthFactor(current: number, cap = SEMI_SPACE_CAP_BYTES): number {
  return current >= cap || current <= 0 ? 1 : Math.max(2, Math.ceil(cap / current));
}

function semiSpaceBytes(): number {
  const space = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
  return space ? space.space_size / 2 : 0;
}

/** Installs the cap (once, at start-up); false if node's own setting stands. */
export function capYoungGeneration(): boolean {
  if (youngGenerationConfigured(process.execArgv, process.env.NODE_OPTIONS)) return false;
  let factor = 0;
  const apply = (f: number) => {
    if (f === factor) return;
    setFlagsFromString(`--semi-space-growth-factor=${f}`);
    factor = f;
  };
  apply(1); // no growth while the modules load (synchronously: no callback runs meanwhile)
  new PerformanceObserver(() => apply(growthFactor(semiSpaceBytes()))).observe({ entryTypes: ['gc'] });
  return true;
}
