/**
 * Small helpers every part of the probe shares: the minute, the hour and the day in ms, the UTC
 * day as text, waiting
 * (abortable), backing off, turning whatever was thrown into words, and the shape of an HTTP
 * route the server and the features (the dashboard) agree on. Kept apart so that every layer
 * uses one definition of each without importing another layer for it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

/** The UTC day of epoch ms, as YYYY-MM-DD. */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** More routes on the probe's HTTP server (e.g. the dashboard's); resolves true if it answered. */
export type ExtraRoutes = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

/** Waits `ms` (a retry's delay, a throttle), or less if the signal fires. */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Exponential backoff with "equal jitter": half fixed, half random, capped. */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** What was thrown, in words: an Error's message, anything else as a string. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
