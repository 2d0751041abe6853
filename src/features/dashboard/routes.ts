/**
 * The dashboard on the probe's HTTP server: the page (`/`, an HTML, a CSS and a JS file from
 * src/features/dashboard/web, copied to dist/src/features/dashboard/web by the build), the charting library (uPlot, served from the
 * installed npm package: nothing is fetched from the internet), and the JSON API behind it
 * (API_ENDPOINTS, which `/api/` lists one line each; the capacity outlook's endpoints answer from
 * src/features/outlook/outlook.ts, one Outlook per server, whose cache the routes keep; its CSV is
 * a FileAnswer, sent as a download). Only the fixed files of STATIC are served:
 * no request path is ever joined to a directory. Credentials, methods and the page's security
 * headers are the HTTP server's (src/service/http-auth.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';
import type pg from 'pg';
import type { ExtraRoutes } from '../../lib';
import { DIMENSIONS } from '../statistics/keys';
import type { StatisticsOptions } from '../statistics/options';
import { alerts, type TopOrder } from '../../db/statistics';
import { histogram, series, summary, top, windowOf, WINDOWS, type WindowName } from '../statistics/store';
import { Outlook, OutlookRequestError, OUTLOOK_METRICS, OUTLOOK_SCOPES, parseOutlookRequest } from '../outlook/outlook';

/** The page's files: dist/src/features/dashboard/web after a build, else the source tree's src/features/dashboard/web. */
export function webDirectory(): string {
  const built = join(__dirname, 'web');
  return existsSync(join(built, 'index.html')) ? built : join(__dirname, '..', '..', '..', '..', 'src', 'features', 'dashboard', 'web');
}

function uplotDirectory(): string {
  return join(dirname(require.resolve('uplot/package.json')), 'dist');
}

export const STATIC: Record<string, { file: () => string; type: string }> = {
  '/': { file: () => join(webDirectory(), 'index.html'), type: 'text/html; charset=utf-8' },
  '/dashboard.js': { file: () => join(webDirectory(), 'dashboard.js'), type: 'text/javascript; charset=utf-8' },
  '/dashboard.css': { file: () => join(webDirectory(), 'dashboard.css'), type: 'text/css; charset=utf-8' },
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
  res.writeHead(status, { 'content-type': type });
  res.end(body);
}

type Window = ReturnType<typeof windowOf>;

/** An answer that is a file, not JSON (the outlook's CSV). */
export class FileAnswer {
  constructor(
    readonly type: string,
    readonly filename: string,
    readonly body: string,
  ) {}
}

/** What an endpoint's answer may use besides the pool: the parts of the server that keep state. */
export interface EndpointContext {
  outlook: Outlook;
}

interface Endpoint {
  path: string;
  /** The query it takes, as shown by /api/. */
  query: string;
  what: string;
  answer(pool: pg.Pool, p: URLSearchParams, window: () => Window, options: StatisticsOptions, context: EndpointContext): Promise<object>;
}

/** The API: what /api/ lists, and what answers. */
export const API_ENDPOINTS: readonly Endpoint[] = [
  { path: '/api/summary', query: '?window=hour|day|week', what: 'totals, rate, error rates, per direction', answer: (pool, _p, window) => summary(pool, window()) },
  {
    path: '/api/series',
    query: `?dimension=D&window=W[&limit=N]`,
    what: "per-bucket transfers/bytes/errors of D's top keys",
    answer: (pool, p, window) => series(pool, window(), oneOf(p, 'dimension', DIMENSIONS), limitOf(p, 8)),
  },
  {
    path: '/api/top',
    query: '?dimension=D&window=W&by=O[&limit=N]',
    what: 'keys ranked (slowest: lowest mean rate, keys with 10+ transfers)',
    answer: async (pool, p, window) => ({ dimension: p.get('dimension'), by: p.get('by') ?? 'bytes', rows: await top(pool, window(), oneOf(p, 'dimension', DIMENSIONS), oneOf(p, 'by', TOP_ORDERS, 'bytes'), limitOf(p, 10)) }),
  },
  { path: '/api/histogram', query: '?metric=duration|rate&window=W', what: 'log2 histograms', answer: (pool, p, window) => histogram(pool, window(), oneOf(p, 'metric', ['duration', 'rate'] as const)) },
  {
    path: '/api/alerts',
    query: '',
    what: 'open alerts and those closed in the last day',
    answer: async (pool) => {
      const rows = await alerts(pool);
      return { open: rows.filter((a) => a.closedAt === null), recent: rows.filter((a) => a.closedAt !== null) };
    },
  },
  {
    path: '/api/meta',
    query: '',
    what: 'dimensions, windows, detector settings',
    answer: async (_pool, _p, _w, options) => ({ dimensions: DIMENSIONS, windows: WINDOWS, topOrders: TOP_ORDERS, detectIntervalSeconds: options.detectIntervalSeconds, detectors: options.detectors }),
  },
  {
    path: '/api/outlook',
    query: '?scope=S[&key=K]&metric=M',
    what: 'capacity outlook: daily history, 365-day forecast (80/95 % intervals), months, 3/6/12-month totals, capacity date',
    answer: (_pool, p, _w, _o, { outlook }) => outlook.answer(parseOutlookRequest(p)),
  },
  {
    path: '/api/outlook.csv',
    query: '?scope=S[&key=K]&metric=M',
    what: 'the same outlook as CSV (day,kind,value,point,lower80,upper80,lower95,upper95)',
    answer: async (_pool, p, _w, _o, { outlook }) => {
      const { filename, body } = await outlook.csv(parseOutlookRequest(p));
      return new FileAnswer('text/csv; charset=utf-8', filename, body);
    },
  },
  { path: '/api/outlook/keys', query: '', what: 'the VOs and storage classes the outlook has history of', answer: (_pool, _p, _w, _o, { outlook }) => outlook.keys() },
];

/** The text of /api/: one line per endpoint. */
export function apiIndex(): string {
  const shown = API_ENDPOINTS.map((e) => `GET ${e.path}${e.query}`);
  const width = Math.max(...shown.map((s) => s.length)) + 2;
  return API_ENDPOINTS.map((e, i) => `${shown[i]!.padEnd(width)}${e.what}\n`).join('') + `\nD: ${DIMENSIONS.join('|')}\nW: ${WINDOWS.join('|')}\nO: ${TOP_ORDERS.join('|')}\nS: ${OUTLOOK_SCOPES.join('|')} (K: a VO or storage class; none for site)\nM: ${OUTLOOK_METRICS.join('|')}\nAnswers are JSON (outlook.csv: CSV); a bad parameter is answered 400 with {"error": "..."}.\n`;
}

export function dashboardRoutes(pool: pg.Pool, options: StatisticsOptions, now: () => number = Date.now): ExtraRoutes {
  const cache = new Map<string, Buffer>();
  const context: EndpointContext = { outlook: new Outlook(pool, options.capacity, now) };
  return async (req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    if (path === '/favicon.ico') {
      res.writeHead(204).end();
      return true;
    }
    const page = STATIC[path];
    if (page) {
      // Read once (the page's own files are re-read while developing: no cache for src/features/dashboard/web).
      let body = cache.get(path);
      if (!body) {
        body = readFileSync(page.file());
        if (path.startsWith('/vendor/')) cache.set(path, body);
      }
      send(res, 200, page.type, body);
      return true;
    }
    if (path === '/api/' || path === '/api') {
      send(res, 200, 'text/plain; charset=utf-8', apiIndex());
      return true;
    }
    if (!path.startsWith('/api/')) return false;
    const endpoint = API_ENDPOINTS.find((e) => e.path === path);
    if (!endpoint) {
      send(res, 404, 'application/json', JSON.stringify({ error: `no API ${path} (the list: /api/)` }) + '\n');
      return true;
    }
    const p = url.searchParams;
    try {
      const body = await endpoint.answer(pool, p, () => windowOf(oneOf<WindowName>(p, 'window', WINDOWS, 'hour'), now()), options, context);
      if (body instanceof FileAnswer) {
        res.writeHead(200, { 'content-type': body.type, 'content-disposition': `attachment; filename="${body.filename}"` });
        res.end(body.body);
      } else send(res, 200, 'application/json', JSON.stringify({ generatedAt: new Date(now()).toISOString(), ...body }) + '\n');
    } catch (err) {
      if (err instanceof BadRequest || err instanceof OutlookRequestError) send(res, 400, 'application/json', JSON.stringify({ error: err.message }) + '\n');
      else throw err;
    }
    return true;
  };
}
