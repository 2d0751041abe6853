/**
 * Test environment: the real PostgreSQL (DCACHE_PROBE_TEST_PG, default
 * postgres://postgres@127.0.0.1:5432) and the compiled probe and collector.
 */
import { join, resolve } from 'node:path';

export const PG_ADMIN_URL = process.env.DCACHE_PROBE_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/postgres';
/** The compiled tree: dist/ (tests run from dist/test). */
export const DIST = resolve(__dirname, '..', '..');
export const CLI = join(DIST, 'src', 'cli', 'bin.js');
export const COLLECTOR_MAIN = join(DIST, 'src', 'tools', 'collector', 'main.js');
export const FIXTURES = resolve(DIST, '..', 'sql', 'fixtures');

/** URL of another database on the same server. */
export function databaseUrl(name: string, user?: string, password?: string, serverUrl = PG_ADMIN_URL): string {
  const u = new URL(serverUrl);
  u.pathname = '/' + name;
  if (user !== undefined) u.username = user;
  if (password !== undefined) u.password = password;
  return u.toString();
}

/** Polls `check` until it returns a truthy value or the deadline passes (then throws). */
export async function waitFor<T>(what: string, check: () => Promise<T> | T, timeoutMs = 30_000, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
