/**
 * Where the benchmark finds things: the real PostgreSQL (DCACHE_PROBE_BENCH_PG, else
 * DCACHE_PROBE_TEST_PG, else postgres://postgres@127.0.0.1:5432) and the compiled probe and
 * collector. The bench runs from dist/bench, like the tests run from dist/test.
 */
import { join, resolve } from 'node:path';

export const PG_ADMIN_URL =
  process.env.DCACHE_PROBE_BENCH_PG ?? process.env.DCACHE_PROBE_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/postgres';
/**
 * The compiled tree the bench runs from. run.ts first copies dist/ and sql/ to a private
 * snapshot (other developers rebuild dist/ while the bench runs: `npm run build` starts with
 * rm -rf dist) and runs from there; DCACHE_BENCH_REPO then names the real checkout.
 */
export const DIST = resolve(__dirname, '..', '..');
/** The checkout (or the snapshot) holding sql/. */
export const ROOT = resolve(DIST, '..');
/** The real checkout: results and profiles go here. */
export const REPO = process.env.DCACHE_BENCH_REPO ?? ROOT;
export const CLI = join(DIST, 'src', 'cli', 'bin.js');
export const COLLECTOR_MAIN = join(DIST, 'src', 'tools', 'collector', 'main.js');
export const SINK_MAIN = join(DIST, 'bench', 'sink.js');
export const FIXTURES = join(ROOT, 'sql', 'fixtures');
export const RESULTS_DIR = join(REPO, 'bench', 'results');

/** URL of another database on the same server. */
export function databaseUrl(name: string): string {
  const u = new URL(PG_ADMIN_URL);
  u.pathname = '/' + name;
  return u.toString();
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until truthy or the deadline passes (then throws). */
export async function waitFor<T>(what: string, check: () => Promise<T> | T, timeoutMs = 60_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Progress lines go to stderr so stdout carries only the result table. */
export function note(line: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

/**
 * Node flags the probe runs with where we deploy it (the Dockerfile's and the systemd unit's
 * NODE_OPTIONS): a 4 MB young generation keeps peak RSS ≈ 35 MB lower at no measurable CPU cost
 * (bench/experiments/heap-flags.ts). The bench runs the probe as deployed; a caller that sets
 * its own heap flags (that experiment) gets only its own.
 */
export const PROBE_NODE_FLAGS = ['--max-semi-space-size=4'];

/** `bare`: only `extra`, as node runs for an `npm i -g` install (no NODE_OPTIONS of ours). */
export function probeNodeFlags(extra: readonly string[] = [], bare = false): string[] {
  if (bare) return [...extra];
  return extra.some((f) => /^--max-(semi|old)-space-size/.test(f)) ? [...extra] : [...PROBE_NODE_FLAGS, ...extra];
}
