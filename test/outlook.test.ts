/**
 * The capacity outlook's API (issue 14, docs/OUTLOOK.md) on the real PostgreSQL: stats_day is
 * filled directly with synthetic series of known shape (a linear trend for the site's writes, a
 * trend with a weekly season and noise for a VO and its storage class, a weekly season for
 * reads), and the routes are served in-process behind the HTTP guard with a token configured.
 * It checks the answer's contract (continuous days, 365 forecast days, months and horizons that
 * add up), the CSV against the JSON, the capacity date of the linear series, the keys, the 400s,
 * the cache, the capacity settings' validation and that credentials are required.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { ConfigError, loadConfig, parseBytes } from '../src/config/schema';
import { createPool } from '../src/db/pool';
import { API_ENDPOINTS, apiIndex, dashboardRoutes } from '../src/features/dashboard/routes';
import { addDays, CSV_HEADER, Outlook, type OutlookAnswer } from '../src/features/outlook/outlook';
import { DEFAULT_STATISTICS_OPTIONS } from '../src/features/statistics/options';
import { HttpGuard, readCredentials } from '../src/service/http-auth';
import { createBillingDatabase, type BillingDatabase } from './helpers/database';

const DAYS = 400;
const NOW = Date.parse('2026-06-15T12:00:00Z');
const TODAY = '2026-06-15';
const FIRST = addDays(TODAY, -DAYS);
const TOKEN = 'f3b1c0d2e4a6b8c0d2e4f6a8b0c2d4e6f8a0b2c4';

/** Site writes: exactly linear, so the day the cumulative forecast passes a capacity is known. */
const linear = (t: number) => 1e12 + 2e9 * t;
/** A VO's writes: trend, weekly season (weekends 30 % lower), noise; its storage class's the same, with no row on every 50th day. */
function seasonal(t: number): number {
  const day = new Date(Date.parse(`${FIRST}T00:00:00Z`) + t * 86_400_000).getUTCDay();
  const noise = Math.sin(t * 12.9898) * 43758.5453;
  return (5e11 + 1e9 * t) * (day === 0 || day === 6 ? 0.7 : 1) * (1 + 0.04 * (noise - Math.floor(noise) - 0.5));
}
const read = (t: number) => 3e12 * (new Date(Date.parse(`${FIRST}T00:00:00Z`) + t * 86_400_000).getUTCDay() === 0 ? 0.5 : 1);
const SC = 'atlas:default@osm';

/** The day index of t days before today at which the site's cumulative forecast passes `bytes`. */
function linearFillDay(bytes: number): number {
  let sum = 0;
  for (let i = 0; ; i++) {
    sum += linear(DAYS + i);
    if (sum > bytes) return i;
  }
}
const CAPACITY_DAY = 100;
const SITE_BYTES = (() => {
  let sum = 0;
  for (let i = 0; i < CAPACITY_DAY; i++) sum += linear(DAYS + i);
  return sum + linear(DAYS + CAPACITY_DAY) / 2; // passed half-way through day CAPACITY_DAY
})();

async function fill(db: BillingDatabase): Promise<void> {
  const rows: [string, string, string, number][] = [];
  for (let t = 0; t < DAYS; t++) {
    const day = addDays(FIRST, t);
    const w = linear(t);
    const r = read(t);
    rows.push([day, 'all', '', w + r], [day, 'direction', 'write', w], [day, 'direction', 'read', r]);
    const v = Math.round(seasonal(t));
    rows.push([day, 'vo', 'atlas', v], [day, 'vo_direction', 'atlas write', v]);
    if (t % 50 !== 25) rows.push([day, 'storage_class', SC, v], [day, 'storage_class_direction', `${SC} write`, v]);
    // A VO that starts late and only reads.
    if (t >= DAYS - 30) rows.push([day, 'vo', 'cms', 7e9], [day, 'vo_direction', 'cms read', 7e9]);
  }
  await db.query(
    `INSERT INTO dcache_probe.stats_day (day, dimension, key, transfers, bytes)
     SELECT d::date, k1, k2, 1, b::bigint FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[]) AS u(d, k1, k2, b)`,
    [rows.map((r) => r[0]), rows.map((r) => r[1]), rows.map((r) => r[2]), rows.map((r) => Math.round(r[3]))],
  );
}

describe('the capacity outlook API', () => {
  let db: BillingDatabase;
  let pool: pg.Pool;
  let server: Server;
  let base: string;
  let clock = NOW;

  before(async () => {
    db = await createBillingDatabase('modern');
    await fill(db);
    pool = createPool({ url: db.url });
    const dir = mkdtempSync(join(tmpdir(), 'probe-outlook-'));
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    const settings = loadConfig({ env: { DCACHE_PROBE_HTTP_TOKEN_FILE: tokenFile } }, ['metrics']).metrics;
    const guard = new HttpGuard(readCredentials(settings), new Set(settings.openPaths));
    const options = { ...DEFAULT_STATISTICS_OPTIONS, capacity: { siteBytes: SITE_BYTES, storageClasses: { [SC]: 5e13 } } };
    const routes = dashboardRoutes(pool, options, () => clock);
    server = createServer((req, res) => {
      void (async () => {
        if (!(await guard.admit(req, res))) return;
        if (!(await routes(req, res))) res.writeHead(404).end();
      })().catch((err: unknown) => res.writeHead(500).end(String(err)));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    await new Promise((r) => server.close(r));
    await pool.end();
    await db.drop();
  });

  const get = (path: string, token: string | null = TOKEN) => fetch(base + path, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const json = async (path: string): Promise<OutlookAnswer & { generatedAt: string }> => {
    const res = await get(path);
    assert.equal(res.status, 200, `${path}: ${await res.clone().text()}`);
    assert.match(String(res.headers.get('content-type')), /^application\/json/);
    return (await res.json()) as OutlookAnswer & { generatedAt: string };
  };

  const continuous = (days: string[], first: string) => days.forEach((d, i) => assert.equal(d, addDays(first, i), `day ${i}`));
  const near = (a: number, b: number, what: string, tolerance = 1e-9 * Math.abs(b) + 400) => assert.ok(Math.abs(a - b) <= tolerance, `${what}: ${a} vs ${b}`);

  it('answers the contract: continuous history up to yesterday, 365 forecast days from today, months and horizons that add up', async () => {
    for (const path of ['/api/outlook?scope=site&metric=written', `/api/outlook?scope=vo&key=atlas&metric=written`, `/api/outlook?scope=storage_class&key=${encodeURIComponent(SC)}&metric=written`]) {
      const a = await json(path);
      assert.deepEqual(Object.keys(a).sort(), ['basis', 'capacity', 'forecast', 'generatedAt', 'growthMeasured', 'historyDays', 'history', 'horizons', 'key', 'method', 'metric', 'monthly', 'removals', 'scope', 'unit'].sort());
      assert.equal(a.unit, 'bytes/day');
      assert.equal(a.metric, 'written');
      assert.equal(a.method, 'MSTL(7) + AutoETS');
      assert.equal(a.historyDays, DAYS);
      assert.equal(a.history.length, DAYS);
      continuous(a.history.map((h) => h.day), FIRST);
      assert.equal(a.history.at(-1)!.day, addDays(TODAY, -1));
      assert.equal(a.forecast.length, 365);
      continuous(a.forecast.map((f) => f.day), TODAY);
      for (const f of a.forecast) assert.ok(f.lower95 <= f.lower80 && f.lower80 <= f.point && f.point <= f.upper80 && f.upper80 <= f.upper95, JSON.stringify(f));
      const forecastSum = a.forecast.reduce((s, f) => s + f.point, 0);
      assert.deepEqual(a.monthly.map((m) => m.month), ['2026-06', '2026-07', '2026-08', '2026-09', '2026-10', '2026-11', '2026-12', '2027-01', '2027-02', '2027-03', '2027-04', '2027-05', '2027-06']);
      assert.deepEqual([a.monthly[0]!.days, a.monthly.at(-1)!.days], [16, 14]);
      assert.equal(a.monthly.reduce((s, m) => s + m.days, 0), 365);
      near(a.monthly.reduce((s, m) => s + m.point, 0), forecastSum, 'months add up to the forecast', 13);
      let from = 0;
      for (const m of a.monthly) {
        near(m.point, a.forecast.slice(from, from + m.days).reduce((s, f) => s + f.point, 0), m.month, m.days);
        assert.ok(m.lower80 <= m.point && m.point <= m.upper80);
        from += m.days;
      }
      near(a.horizons.months12!.point, forecastSum, 'months12', 365);
      near(a.horizons.months3!.point, a.forecast.slice(0, 91).reduce((s, f) => s + f.point, 0), 'months3', 91);
      near(a.horizons.months6!.point, a.forecast.slice(0, 182).reduce((s, f) => s + f.point, 0), 'months6', 182);
      assert.ok(a.horizons.months3!.point < a.horizons.months6!.point && a.horizons.months6!.point < a.horizons.months12!.point);
    }
  });

  it('fills the days without rows with zeros, from the scope first day on', async () => {
    const sc = await json(`/api/outlook?scope=storage_class&key=${encodeURIComponent(SC)}&metric=written`);
    assert.equal(sc.history[75]!.value, 0);
    assert.equal(sc.history[74]!.value, Math.round(seasonal(74)));
    // cms only reads, from 30 days ago: its written series is 30 zeros, its read series 30 days of 7e9.
    const cmsWritten = await json('/api/outlook?scope=vo&key=cms&metric=written');
    assert.deepEqual(cmsWritten.history.map((h) => h.value), Array(30).fill(0));
    assert.equal(cmsWritten.history[0]!.day, addDays(TODAY, -30));
    assert.ok(cmsWritten.forecast.every((f) => f.point === 0), 'nothing written: nothing forecast');
    const cmsRead = await json('/api/outlook?scope=vo&key=cms&metric=read');
    assert.ok(cmsRead.history.every((h) => h.value === 7e9));
    assert.match(cmsRead.method, /^constant/);
    assert.equal(cmsRead.capacity, null, 'no capacity for a VO');
  });

  it('follows the trend and the weekly season', async () => {
    const atlas = await json('/api/outlook?scope=vo&key=atlas&metric=written');
    // A week on: the forecast is near the series continued (trend and weekday), within 10 %.
    for (let i = 0; i < 14; i++) near(atlas.forecast[i]!.point, seasonal(DAYS + i), `day ${i}`, 0.1 * seasonal(DAYS + i));
    const reads = await json('/api/outlook?scope=site&metric=read');
    const sunday = reads.forecast.find((f) => new Date(`${f.day}T00:00:00Z`).getUTCDay() === 0)!;
    const monday = reads.forecast.find((f) => new Date(`${f.day}T00:00:00Z`).getUTCDay() === 1)!;
    near(sunday.point, 1.5e12, 'Sunday', 0.1e12);
    near(monday.point, 3e12, 'Monday', 0.1e12);
  });

  it('dates the capacity: the day the cumulative forecast of a linear series passes the free space', async () => {
    assert.equal(linearFillDay(SITE_BYTES), CAPACITY_DAY);
    const a = await json('/api/outlook?scope=site&metric=written');
    assert.equal(a.capacity!.bytes, SITE_BYTES);
    assert.equal(a.capacity!.basis, 'written');
    const { point, earliest, latest } = a.capacity!.reachedOn;
    assert.equal(point, addDays(TODAY, CAPACITY_DAY));
    assert.ok(earliest !== null && latest !== null && earliest <= point! && point! <= latest, JSON.stringify(a.capacity));
    // The same date whichever metric is shown (the free space is filled by what is written).
    assert.deepEqual((await json('/api/outlook?scope=site&metric=read')).capacity, a.capacity);
    const sc = await json(`/api/outlook?scope=storage_class&key=${encodeURIComponent(SC)}&metric=written`);
    assert.equal(sc.capacity!.bytes, 5e13);
    assert.ok(sc.capacity!.reachedOn.point! > TODAY);
    assert.equal((await json('/api/outlook?scope=vo&key=atlas&metric=written')).capacity, null);
  });

  it('says what growth is based on (the bytes written: removals are not measured)', async () => {
    const growth = await json('/api/outlook?scope=site&metric=growth');
    const written = await json('/api/outlook?scope=site&metric=written');
    assert.equal(growth.growthMeasured, false);
    assert.match(growth.basis, /bytes written.*removals are not measured/);
    assert.deepEqual(growth.history, written.history);
    assert.deepEqual(growth.forecast, written.forecast);
  });

  it('gives the same outlook as CSV, with a file name', async () => {
    for (const path of ['?scope=site&metric=written', `?scope=storage_class&key=${encodeURIComponent(SC)}&metric=read`]) {
      const res = await get(`/api/outlook.csv${path}`);
      assert.equal(res.status, 200);
      assert.match(String(res.headers.get('content-type')), /^text\/csv/);
      assert.match(String(res.headers.get('content-disposition')), /^attachment; filename="outlook-[A-Za-z0-9._-]+\.csv"$/);
      const lines = (await res.text()).trimEnd().split('\n');
      assert.equal(lines[0], CSV_HEADER);
      const a = await json(`/api/outlook${path}`);
      const rows = lines.slice(1).map((l) => l.split(','));
      assert.ok(rows.every((r) => r.length === 8));
      const history = rows.filter((r) => r[1] === 'history');
      const forecast = rows.filter((r) => r[1] === 'forecast');
      assert.equal(history.length + forecast.length, rows.length);
      assert.deepEqual(history.map((r) => ({ day: r[0], value: Number(r[2]) })), a.history);
      assert.deepEqual(
        forecast.map((r) => ({ day: r[0], point: Number(r[3]), lower80: Number(r[4]), upper80: Number(r[5]), lower95: Number(r[6]), upper95: Number(r[7]) })),
        a.forecast,
      );
    }
    assert.equal((await get('/api/outlook.csv?scope=site&metric=written')).headers.get('content-disposition'), `attachment; filename="outlook-site-written-${TODAY}.csv"`);
    assert.equal(
      (await get(`/api/outlook.csv?scope=storage_class&key=${encodeURIComponent(SC)}&metric=read`)).headers.get('content-disposition'),
      `attachment; filename="outlook-storage_class-atlas_default_osm-read-${TODAY}.csv"`,
    );
  });

  it('lists the keys with history', async () => {
    const res = await get('/api/outlook/keys');
    assert.equal(res.status, 200);
    const keys = (await res.json()) as { vo: string[]; storage_class: string[] };
    assert.deepEqual({ vo: keys.vo, storage_class: keys.storage_class }, { vo: ['atlas', 'cms'], storage_class: [SC] });
  });

  it('answers 400 to bad parameters, saying what is wrong', async () => {
    const cases: [string, RegExp][] = [
      ['?scope=planet&metric=written', /scope must be one of site, vo, storage_class/],
      ['?scope=site&metric=deleted', /metric must be one of written, read, growth/],
      ['?scope=site', /metric must be one of/],
      ['?scope=site&key=atlas&metric=written', /scope=site takes no key/],
      ['?scope=vo&metric=written', /scope=vo needs a key/],
      ['?scope=vo&key=nobody&metric=written', /no history for vo "nobody"/],
      [`?scope=vo&key=${'x'.repeat(300)}&metric=written`, /longer than 256/],
    ];
    for (const [query, message] of cases) {
      for (const path of ['/api/outlook', '/api/outlook.csv']) {
        const res = await get(path + query);
        assert.equal(res.status, 400, path + query);
        assert.match(((await res.json()) as { error: string }).error, message);
      }
    }
  });

  it('needs credentials, and /api/ lists the three endpoints', async () => {
    for (const path of ['/api/outlook?scope=site&metric=written', '/api/outlook.csv?scope=site&metric=written', '/api/outlook/keys']) {
      assert.equal((await get(path, null)).status, 401, path);
      assert.equal((await get(path, TOKEN.replace(/.$/, '0'))).status, 401, path);
      assert.equal((await get(path)).status, 200, path);
    }
    const paths = API_ENDPOINTS.map((e) => e.path);
    for (const p of ['/api/outlook', '/api/outlook.csv', '/api/outlook/keys']) assert.ok(paths.includes(p), p);
    const index = await (await get('/api/')).text();
    assert.equal(index, apiIndex());
    assert.match(index, /^GET \/api\/outlook\?scope=S\[&key=K\]&metric=M /m);
    assert.match(index, /^GET \/api\/outlook\.csv\?/m);
    assert.match(index, /^GET \/api\/outlook\/keys /m);
  });

  it('reuses a forecast for a few minutes, then reads the statistics again', async () => {
    const path = '/api/outlook?scope=site&metric=written';
    const first = await json(path);
    await db.query(`UPDATE dcache_probe.stats_day SET bytes = bytes * 2 WHERE dimension = 'direction' AND key = 'write' AND day = $1::date - 1`, [TODAY]);
    assert.deepEqual((await json(path)).history, first.history, 'cached');
    clock = NOW + 6 * 60_000;
    try {
      const again = await json(path);
      assert.equal(again.history.at(-1)!.value, 2 * first.history.at(-1)!.value!);
    } finally {
      clock = NOW;
      await db.query(`UPDATE dcache_probe.stats_day SET bytes = bytes / 2 WHERE dimension = 'direction' AND key = 'write' AND day = $1::date - 1`, [TODAY]);
    }
  });

  it('answers an empty outlook when the statistics hold no day yet', async () => {
    const empty = await createBillingDatabase('modern');
    const emptyPool = createPool({ url: empty.url });
    try {
      const a = await new Outlook(emptyPool, { siteBytes: 1e15, storageClasses: {} }, () => NOW).answer({ scope: 'site', key: null, metric: 'written' });
      assert.deepEqual([a.history, a.forecast, a.monthly, a.historyDays], [[], [], [], 0]);
      assert.deepEqual(a.horizons, { months3: null, months6: null, months12: null });
      assert.deepEqual(a.capacity, { bytes: 1e15, basis: 'written', reachedOn: { point: null, earliest: null, latest: null } });
    } finally {
      await emptyPool.end();
      await empty.drop();
    }
  });
});

describe('the capacity settings', () => {
  const statistics = (env: Record<string, string>) => loadConfig({ env }, ['statistics']).statistics;

  it('take bytes as numbers or with units, and storage classes as class=bytes', () => {
    assert.deepEqual(statistics({}).capacity, { siteBytes: 0, storageClasses: {} });
    assert.deepEqual([parseBytes('2000'), parseBytes('2e12'), parseBytes('2T'), parseBytes('1.5 PiB'), parseBytes('500TB'), parseBytes('x'), parseBytes('-1')], [2000, 2e12, 2e12, 1.5 * 2 ** 50, 5e14, undefined, undefined]);
    const s = statistics({ DCACHE_PROBE_STATS_CAPACITY_SITE_BYTES: '3P', DCACHE_PROBE_STATS_CAPACITY_STORAGE_CLASSES: 'atlas:default@osm=500T, cms:disk@osm = 1.2e15' });
    assert.deepEqual(s.capacity, { siteBytes: 3e15, storageClasses: { 'atlas:default@osm': 5e14, 'cms:disk@osm': 1.2e15 } });
  });

  it('name every bad entry', () => {
    assert.throws(
      () => statistics({ DCACHE_PROBE_STATS_CAPACITY_SITE_BYTES: 'lots', DCACHE_PROBE_STATS_CAPACITY_STORAGE_CLASSES: 'atlas:default@osm=500T,cms:disk@osm,lhcb=many,=1T,atlas:default@osm=1T' }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        const text = err.problems.join('\n');
        assert.match(text, /statistics\.capacity\.siteBytes.*must be a number of bytes.*"lots"/);
        assert.match(text, /entry "cms:disk@osm" has no "=bytes"/);
        assert.match(text, /entry "lhcb=many": "many" is not a number of bytes/);
        assert.match(text, /entry "=1T" names no storage class/);
        assert.match(text, /storage class "atlas:default@osm" is given twice/);
        return true;
      },
    );
  });
});
