/**
 * The page's outlook view in headless Chromium, against the API's contract rather than a
 * probe: a small HTTP server serves the built page files (the paths and files of the
 * dashboard's STATIC, with the probe's security headers, so a CSP violation shows) and fixed
 * answers for /api/outlook, /api/outlook/keys and /api/outlook.csv (and empty ones for the rest
 * of the page). Checks that the view draws the history, the forecast and its 80 % and 95 %
 * bands, names the method, shows the 3/6/12-month totals and the capacity's date, links the
 * exports of the selection, asks again when the selection changes, and says when it is loading
 * or cannot read the outlook. Saves docs/screenshots/outlook.png (with
 * DCACHE_PROBE_UPDATE_SCREENSHOTS=1; else into a temporary directory).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BrowserContext, Page, Route } from 'playwright-core';
import { STATIC } from '../src/features/dashboard/routes';
import { SECURITY_HEADERS } from '../src/service/http-auth';
import { SCREENSHOTS, launchChromium, requireChromium } from './helpers/browser';
import { waitFor } from './helpers/env';

const DAY = 86_400_000;
const HISTORY_DAYS = 120;
const FORECAST_DAYS = 365;
const FIRST_FORECAST_DAY = Date.UTC(2026, 11, 1);
const KEYS = { vo: ['atlas', 'cms'], storage_class: ['atlas:disk@osm', 'cms:tape@osm'] };
const iso = (ms: number) => new Date(ms).toISOString().slice(0, 10);

interface Band { point: number; lower80: number; upper80: number }

/** An answer of the shape the API promises; its numbers depend on the selection, so a switch shows. */
function outlook(scope: string, key: string | null, metric: string) {
  const level = (scope === 'site' ? 3e12 : key === 'cms' ? 0.8e12 : 1.6e12) * (metric === 'read' ? 1.5 : metric === 'growth' ? 0.4 : 1);
  const history = Array.from({ length: HISTORY_DAYS }, (_, i) => {
    const ms = FIRST_FORECAST_DAY - (HISTORY_DAYS - i) * DAY;
    const weekend = [0, 6].includes(new Date(ms).getUTCDay());
    return { day: iso(ms), value: i === 40 ? null : Math.round(level * (weekend ? 0.75 : 1) * (1 + 0.08 * Math.sin(i * 1.7))) };
  });
  const forecast = Array.from({ length: FORECAST_DAYS }, (_, i) => {
    const point = level * (1 + i / 730);
    const spread = level * 0.1 * Math.sqrt(1 + i / 7);
    return { day: iso(FIRST_FORECAST_DAY + i * DAY), point, lower80: point - spread, upper80: point + spread, lower95: Math.max(0, point - 1.53 * spread), upper95: point + 1.53 * spread };
  });
  const total = (months: number): Band => ({ point: level * 30.4 * months * 1.01, lower80: level * 30.4 * months * 0.9, upper80: level * 30.4 * months * 1.13 });
  return {
    scope,
    key,
    metric,
    unit: 'bytes/day',
    method: scope === 'site' ? 'MSTL(7) + AutoETS' : 'mean of 120 days',
    historyDays: HISTORY_DAYS,
    history,
    forecast,
    monthly: [{ month: '2026-12', point: level * 31, lower80: level * 28, upper80: level * 34 }],
    horizons: { months3: total(3), months6: total(6), months12: total(12) },
    capacity:
      scope === 'site'
        ? { bytes: 4.5e15, basis: 'free space of the pools', reachedOn: { point: '2027-06-14', earliest: '2027-03-02', latest: '2027-10-30' } }
        : key === 'cms' && metric === 'growth'
          ? { bytes: 2e15, basis: 'quota', reachedOn: { point: null, earliest: '2027-09-01', latest: null } }
          : null,
    generatedAt: '2026-12-01T06:00:00.000Z',
    // The fields of measured growth (issue 14), on growth's answers only.
    ...(metric === 'growth'
      ? { basis: "bytes written per UTC day: a removal's VO is not known", growthMeasured: false, removals: { countedDays: 90, removals: 1200, sized: 900, coverage: 0.75 } }
      : {}),
  };
}

/** Just enough of the rest of the API for the page to draw without an error. */
function otherApi(path: string): object | null {
  const now = Math.floor(Date.now() / 60_000) * 60;
  const generatedAt = new Date().toISOString();
  switch (path) {
    case '/api/summary': return { generatedAt, transfers: 0, bytes: 0, errors: 0, denied: 0, durationMs: 0, bytesPerSecond: null, errorRate: 0, deniedRate: 0, byDirection: {} };
    case '/api/series': return { generatedAt, dimension: 'direction', buckets: [now - 60, now], stepSeconds: 60, dataSince: null, series: [] };
    case '/api/top': return { generatedAt, rows: [] };
    case '/api/histogram': return { generatedAt, bins: [] };
    case '/api/alerts': return { generatedAt, open: [], recent: [] };
    case '/api/meta': return { generatedAt, dimensions: ['direction', 'vo'], windows: ['hour', 'day', 'week'] };
    default: return null;
  }
}

function csvOf(o: ReturnType<typeof outlook>): string {
  return 'day,point,lower80,upper80\n' + o.forecast.map((f) => `${f.day},${f.point},${f.lower80},${f.upper80}`).join('\n') + '\n';
}

/** The page files as the probe serves them, and the fixtures. Records every /api/ request. */
function startServer(asked: URL[]): Promise<Server> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const reply = (status: number, type: string, body: string | Buffer) => {
      res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type });
      res.end(body);
    };
    const file = STATIC[url.pathname];
    if (file) return reply(200, file.type, readFileSync(file.file()));
    if (!url.pathname.startsWith('/api/')) return reply(404, 'text/plain', 'not found');
    asked.push(url);
    const p = url.searchParams;
    if (url.pathname === '/api/outlook/keys') return reply(200, 'application/json', JSON.stringify(KEYS));
    if (url.pathname === '/api/outlook' || url.pathname === '/api/outlook.csv') {
      const scope = p.get('scope') ?? '';
      const key = p.get('key');
      const metric = p.get('metric') ?? '';
      const known = scope === 'site' ? key === null : (KEYS as Record<string, string[]>)[scope]?.includes(key ?? '');
      if (!known || !['written', 'read', 'growth'].includes(metric)) return reply(400, 'application/json', JSON.stringify({ error: 'bad selection' }));
      // The one failing selection: the page must say so and keep working.
      if (scope === 'storage_class' && metric === 'read') return reply(500, 'application/json', JSON.stringify({ error: 'the forecast failed' }));
      const o = outlook(scope, key, metric);
      return url.pathname.endsWith('.csv') ? reply(200, 'text/csv; charset=utf-8', csvOf(o)) : reply(200, 'application/json', JSON.stringify(o));
    }
    const other = otherApi(url.pathname);
    return other ? reply(200, 'application/json', JSON.stringify(other)) : reply(404, 'application/json', JSON.stringify({ error: 'no such API' }));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** What the page's chart holds, read in the page. */
function chartState(page: Page) {
  return page.evaluate(() => {
    type Axis = { _size: number; _values: string[] | null; font: [string]; ticks: { size: number }; gap: number };
    const w = globalThis as unknown as { document: any; devicePixelRatio: number };
    const u = w.document.getElementById('chart-outlook').uplot as {
      series: { label?: string }[];
      bands: { series: [number, number]; fill: unknown }[];
      data: (number | null)[][];
      axes: Axis[];
      ctx: { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } };
      bbox: { left: number; top: number; width: number; height: number };
      valToPos(v: number, scale: string, canvas?: boolean): number;
    };
    const y = u.axes[1]!;
    const measure = w.document.createElement('canvas').getContext('2d');
    measure.font = y.font[0];
    const widest = Math.max(...(y._values ?? []).map((v: string) => measure.measureText(v).width / w.devicePixelRatio));
    // Pixels drawn in the plot area (the canvas is transparent where nothing is).
    const area = u.ctx.getImageData(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height).data;
    let drawn = 0;
    for (let i = 3; i < area.length; i += 4) if (area[i]! > 0) drawn++;
    // A forecast day well inside: the alpha between the 95 % and the 80 % upper edges (95 % band
    // only) and between the 80 % upper edge and the point (both bands).
    const i = u.data[0]!.length - 100;
    const x = Math.round(u.valToPos(u.data[0]![i]!, 'x', true));
    const alphaAt = (v: number) => u.ctx.getImageData(x, Math.round(u.valToPos(v, 'y', true)), 1, 1).data[3]!;
    const [point, upper95, , upper80] = [u.data[2]![i]!, u.data[3]![i]!, u.data[4]![i]!, u.data[5]![i]!];
    return {
      labels: u.series.map((s) => s.label ?? ''),
      bands: u.bands.map((b) => b.series),
      nonNull: u.data.map((col) => col.filter((v) => v !== null).length),
      drawnShare: drawn / (area.length / 4),
      alpha95: alphaAt((upper95 + upper80) / 2),
      alpha80: alphaAt((upper80 + point) / 2),
      axis: { size: y._size, needed: widest + y.ticks.size + y.gap, labels: y._values },
    };
  });
}

const outlookAsked = (asked: URL[]) => asked.filter((u) => u.pathname === '/api/outlook').map((u) => Object.fromEntries(u.searchParams));

describe('the page’s outlook', () => {
  let server: Server;
  let base: string;
  let context: BrowserContext;
  let profile: string;
  let page: Page;
  const asked: URL[] = [];
  const problems: string[] = [];

  before(async () => {
    requireChromium();
    server = await startServer(asked);
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    profile = mkdtempSync(join(tmpdir(), 'probe-chromium-'));
    context = await launchChromium(profile);
    page = context.pages()[0] ?? (await context.newPage());
    // A CSP violation or a script error is a console error.
    page.on('console', (m) => void (m.type() === 'error' && !m.text().startsWith('Failed to load resource') && problems.push(m.text())));
    page.on('pageerror', (e) => void problems.push(e.message));
    mkdirSync(SCREENSHOTS, { recursive: true });
  });
  after(async () => {
    await context?.close().catch(() => undefined);
    if (profile) rmSync(profile, { recursive: true, force: true });
    server?.close();
  });

  const section = () => page.locator('[data-testid="outlook"]');
  const drawn = (scope: string, key: string, metric: string) => page.locator(`#outlook[data-scope="${scope}"][data-key="${key}"][data-metric="${metric}"]:not([data-loading])`).waitFor({ timeout: 10_000 });

  it('says it is loading, then draws the site’s history, forecast and bands, the method, the totals and the capacity', async () => {
    const held: Route[] = [];
    const isOutlook = (url: URL) => url.pathname === '/api/outlook';
    await page.route(isOutlook, (route) => void held.push(route));
    await page.goto(`${base}?refresh=0`);
    await waitFor('the page to ask for the outlook', () => held.length > 0);
    assert.equal(await section().getAttribute('data-loading'), 'true');
    assert.equal(await page.locator('#chart-outlook').textContent(), 'loading the outlook…');
    for (const route of held.splice(0)) await route.continue();
    await page.unroute(isOutlook);
    for (const route of held.splice(0)) await route.continue(); // asked for meanwhile
    await drawn('site', '', 'written');
    await page.locator('body[data-generation]').waitFor({ timeout: 10_000 });
    assert.equal(await page.locator('[data-testid="problem"]').textContent(), '', 'the rest of the page drew');
    assert.equal(await page.locator('[data-testid="outlook-problem"]').textContent(), '');

    const c = await chartState(page);
    assert.deepEqual(c.labels, ['day', 'history', 'forecast', '95 % upper', '95 % lower', '80 % upper', '80 % lower']);
    assert.deepEqual(c.bands, [[3, 4], [5, 6]]);
    // One x per day; the history's missing day is a gap, not a zero.
    assert.deepEqual(c.nonNull, [HISTORY_DAYS + FORECAST_DAYS, HISTORY_DAYS - 1, FORECAST_DAYS, FORECAST_DAYS, FORECAST_DAYS, FORECAST_DAYS, FORECAST_DAYS]);
    assert.equal(await page.locator('#chart-outlook').getAttribute('data-first-day'), iso(FIRST_FORECAST_DAY - HISTORY_DAYS * DAY));
    assert.equal(await page.locator('#chart-outlook').getAttribute('data-last-day'), iso(FIRST_FORECAST_DAY + (FORECAST_DAYS - 1) * DAY));
    assert.ok(c.drawnShare > 0.05, `the chart is drawn (${(c.drawnShare * 100).toFixed(1)} % of the plot area)`);
    assert.ok(c.alpha95 > 0, 'the 95 % band is filled');
    assert.ok(c.alpha80 > c.alpha95, `the 80 % band is filled over it (${c.alpha80} > ${c.alpha95})`);
    assert.ok(c.axis.size >= c.axis.needed, `y-axis ${c.axis.size} px for labels that need ${c.axis.needed.toFixed(1)} px: ${JSON.stringify(c.axis.labels)}`);
    assert.ok(c.axis.labels!.some((l) => / TB$/.test(l)), JSON.stringify(c.axis.labels));

    const method = await page.locator('[data-testid="outlook-method"]');
    assert.equal(await method.getAttribute('data-method'), 'MSTL(7) + AutoETS');
    assert.match((await method.textContent()) ?? '', /^Forecast by MSTL\(7\) \+ AutoETS from 120 days of history; .*80 % and 95 % prediction intervals/);
    assert.match((await page.locator('#outlook-title').textContent()) ?? '', /Bytes written per day, the site/);

    const o = outlook('site', null, 'written');
    const rows = page.locator('[data-testid="outlook-horizons"] tr[data-horizon]');
    assert.equal(await rows.count(), 3);
    for (const [i, h] of (['months3', 'months6', 'months12'] as const).entries()) {
      const row = rows.nth(i);
      assert.equal(await row.getAttribute('data-horizon'), h);
      for (const k of ['point', 'lower80', 'upper80'] as const) assert.equal(Number(await row.getAttribute(`data-${k}`)), o.horizons[h][k], `${h} ${k}`);
    }
    assert.deepEqual(await rows.nth(0).locator('td').allTextContents(), ['next 3 months', '276 TB', '246 TB – 309 TB']);
    assert.deepEqual(await rows.nth(2).locator('td').allTextContents(), ['next 12 months', '1.1 PB', '985 TB – 1.2 PB']);

    const capacity = page.locator('[data-testid="outlook-capacity"]');
    assert.ok(await capacity.isVisible());
    assert.equal(await capacity.getAttribute('data-point'), '2027-06-14');
    assert.equal(await capacity.getAttribute('data-earliest'), '2027-03-02');
    assert.equal(await capacity.getAttribute('data-latest'), '2027-10-30');
    assert.equal(await capacity.locator('[data-testid="capacity-date"]').textContent(), 'reached on 2027-06-14 (earliest 2027-03-02, latest 2027-10-30)');
    assert.match((await capacity.textContent()) ?? '', /4\.5 PB \(free space of the pools\)/);

    await section().screenshot({ path: join(SCREENSHOTS, 'outlook.png') });
  });

  it('links the CSV and JSON of the selection', async () => {
    for (const [id, path, type] of [['outlook-csv', '/api/outlook.csv', 'text/csv'], ['outlook-json', '/api/outlook', 'application/json']] as const) {
      const href = new URL((await page.locator(`[data-testid="${id}"]`).getAttribute('href'))!, base);
      assert.equal(href.pathname, path);
      assert.deepEqual(Object.fromEntries(href.searchParams), { scope: 'site', metric: 'written' });
      const answer = await fetch(href);
      assert.equal(answer.status, 200);
      assert.match(answer.headers.get('content-type') ?? '', new RegExp(type.replace('/', '\\/')));
    }
  });

  it('asks again when the scope, key or metric change, and keeps the selection in the address', async () => {
    asked.length = 0;
    await page.selectOption('[data-testid="outlook-scope"]', 'vo');
    await drawn('vo', 'atlas', 'written');
    assert.deepEqual(outlookAsked(asked), [{ scope: 'vo', key: 'atlas', metric: 'written' }]);
    const keySelect = page.locator('[data-testid="outlook-key"]');
    assert.ok(await keySelect.isVisible());
    assert.deepEqual(await keySelect.locator('option').allTextContents(), KEYS.vo);
    assert.ok(!(await page.locator('[data-testid="outlook-capacity"]').isVisible()), 'no capacity for a VO');
    assert.equal(await page.locator('[data-testid="outlook-method"]').getAttribute('data-method'), 'mean of 120 days');
    const point3 = async () => Number(await page.locator('tr[data-horizon="months3"]').getAttribute('data-point'));
    assert.equal(await point3(), outlook('vo', 'atlas', 'written').horizons.months3.point);

    await keySelect.selectOption('cms');
    await drawn('vo', 'cms', 'written');
    await page.selectOption('[data-testid="outlook-metric"]', 'growth');
    await drawn('vo', 'cms', 'growth');
    assert.equal(await point3(), outlook('vo', 'cms', 'growth').horizons.months3.point);
    assert.deepEqual(outlookAsked(asked).slice(1), [{ scope: 'vo', key: 'cms', metric: 'written' }, { scope: 'vo', key: 'cms', metric: 'growth' }]);
    for (const id of ['outlook-csv', 'outlook-json']) {
      const href = new URL((await page.locator(`[data-testid="${id}"]`).getAttribute('href'))!, base);
      assert.deepEqual(Object.fromEntries(href.searchParams), { scope: 'vo', key: 'cms', metric: 'growth' }, id);
    }
    assert.match((await page.locator('#outlook-title').textContent()) ?? '', /Growth per day, VO cms/);
    assert.match((await page.locator('[data-testid="outlook-method"]').textContent()) ?? '', /Series: bytes written per UTC day: a removal's VO is not known\.$/);
    assert.equal(await page.locator('[data-testid="capacity-date"]').textContent(), 'not reached within the forecast (earliest 2027-09-01, latest after the forecast)');

    // A key that needs escaping.
    await page.selectOption('[data-testid="outlook-scope"]', 'storage_class');
    await drawn('storage_class', 'atlas:disk@osm', 'growth');
    assert.deepEqual(outlookAsked(asked).at(-1), { scope: 'storage_class', key: 'atlas:disk@osm', metric: 'growth' });
    await page.locator('[data-testid="outlook-key"]').selectOption('cms:tape@osm');
    await drawn('storage_class', 'cms:tape@osm', 'growth');

    await page.reload();
    await drawn('storage_class', 'cms:tape@osm', 'growth');
    assert.equal(await page.locator('[data-testid="outlook-key"]').inputValue(), 'cms:tape@osm');
  });

  it('says when it cannot read the outlook, and draws again after', async () => {
    await page.selectOption('[data-testid="outlook-metric"]', 'read'); // the fixture fails this one
    await page.locator('#outlook[data-error]:not([data-loading])').waitFor({ timeout: 10_000 });
    assert.match((await page.locator('[data-testid="outlook-problem"]').textContent()) ?? '', /^cannot read the outlook: .*500.*the forecast failed/);
    await page.selectOption('[data-testid="outlook-scope"]', 'site');
    await drawn('site', '', 'read');
    assert.equal(await section().getAttribute('data-error'), null);
    assert.equal(await page.locator('[data-testid="outlook-problem"]').textContent(), '');
    assert.deepEqual(problems, [], 'no script error or CSP violation');
  });
});
