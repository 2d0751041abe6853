/**
 * The dashboard on the probe's HTTP server: the page (`/`, one HTML and one JS file from
 * src/web, copied to dist/src/web by the build), the charting library (uPlot, served from the
 * installed npm package: nothing is fetched from the internet), and the JSON API behind it:
 *
 *   /api/summary?window=hour|day|week             totals, rate, error rates, per direction
 *   /api/series?dimension=D&window=W[&limit=N]    per-bucket transfers/bytes/errors of D's top keys
 *   /api/top?dimension=D&window=W&by=O[&limit=N]  keys ranked by bytes|transfers|errors|denied|error_rate|slowest
 *   /api/histogram?metric=duration|rate&window=W  log2 histograms
 *   /api/alerts                                   open alerts and those closed in the last day
 *   /api/meta                                     dimensions, windows, detector settings
 */
import { existsSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';
import type pg from 'pg';
import type { ExtraRoutes } from '../metrics';
import { DIMENSIONS } from './keys';
import type { StatisticsOptions } from './options';
import { alerts, histogram, series, summary, top, windowOf, WINDOWS, type TopOrder, type WindowName } from './store';

/** The page's files: dist/src/web after a build, else the source tree's src/web. */
export function webDirectory(): string {
  const built = join(__dirname, '..', 'web');
  return existsSync(join(built, 'index.html')) ? built : join(__dirname, '..', '..', '..', 'src', 'web');
}

function uplotDirectory(): string {
  return join(dirname(require.resolve('uplot/package.json')), 'dist');
}

const STATIC: Record<string, { file: () => string; type: string }> = {
  '/': { file: () => join(webDirectory(), 'index.html'), type: 'text/html; charset=utf-8' },
  '/dashboard.js': { file: () => join(webDirectory(), 'dashboard.js'), type: 'text/javascript; charset=utf-8' },
  '/vendor/uPlot.iife.min.js': { file: () => join(uplotDirectory(), 'uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  '/vendor/uPlot.min.css': { file: () => join(uplotDirectory(), 'uPlot.min.css'), type: 'text/css; charset=utf-8' },
};

const TOP_ORDERS: readonly TopOrder[] = ['bytes', 'transfers', 'errors', 'denied', 'error_rate', 'slowest'];

class BadRequest extends Error {}

function oneOf<T extends string>(params: URLSearchParams, name: string, allowed: readonly T[], fallback?: T): T {
  const v = params.get(name) ?? fallback;
  if (v === undefined || !allowed.includes(v as T)) throw new BadRequest(`${name} must be one of ${allowed.join(', ')}`);
  return v as T;
}

function limitOf(params: URLSearchParams, fallback: number): number {
  const raw = params.get('limit');
  if (raw === null) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 100) throw new BadRequest('limit must be an integer from 1 to 100');
  return n;
}

function send(res: ServerResponse, status: number, type: string, body: string | Buffer): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
  res.end(body);
}

export function dashboardRoutes(pool: pg.Pool, options: StatisticsOptions, now: () => number = Date.now): ExtraRoutes {
  const cache = new Map<string, Buffer>();
  return async (req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    if (path === '/favicon.ico') {
      res.writeHead(204).end();
      return true;
    }
    const page = STATIC[path];
    if (!page && !path.startsWith('/api/')) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'text/plain', 'only GET\n');
      return true;
    }
    if (page) {
      // Read once (the page's own files are re-read while developing: no cache for src/web).
      let body = cache.get(path);
      if (!body) {
        body = readFileSync(page.file());
        if (path.startsWith('/vendor/')) cache.set(path, body);
      }
      send(res, 200, page.type, body);
      return true;
    }
    const p = url.searchParams;
    try {
      const window = () => windowOf(oneOf<WindowName>(p, 'window', WINDOWS, 'hour'), now());
      let body: unknown;
      switch (path) {
        case '/api/summary':
          body = await summary(pool, window());
          break;
        case '/api/series':
          body = await series(pool, window(), oneOf(p, 'dimension', DIMENSIONS), limitOf(p, 8));
          break;
        case '/api/top':
          body = { dimension: p.get('dimension'), by: p.get('by') ?? 'bytes', rows: await top(pool, window(), oneOf(p, 'dimension', DIMENSIONS), oneOf(p, 'by', TOP_ORDERS, 'bytes'), limitOf(p, 10)) };
          break;
        case '/api/histogram':
          body = await histogram(pool, window(), oneOf(p, 'metric', ['duration', 'rate'] as const));
          break;
        case '/api/alerts': {
          const rows = await alerts(pool);
          body = { open: rows.filter((a) => a.closedAt === null), recent: rows.filter((a) => a.closedAt !== null) };
          break;
        }
        case '/api/meta':
          body = { dimensions: DIMENSIONS, windows: WINDOWS, topOrders: TOP_ORDERS, detectIntervalSeconds: options.detectIntervalSeconds, detectors: options.detectors };
          break;
        default:
          send(res, 404, 'application/json', JSON.stringify({ error: `no API ${path}` }) + '\n');
          return true;
      }
      send(res, 200, 'application/json', JSON.stringify({ generatedAt: new Date(now()).toISOString(), ...(body as object) }) + '\n');
    } catch (err) {
      if (err instanceof BadRequest) send(res, 400, 'application/json', JSON.stringify({ error: err.message }) + '\n');
      else throw err;
    }
    return true;
  };
}
