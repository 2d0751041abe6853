/**
 * The page as a person first sees it, in headless Chromium: a probe that has run for 20
 * minutes of the demo's traffic (written on the simulator's clock, test/helpers/demo-traffic.ts,
 * with a pool failing in the last minutes), serving its dashboard. Until the API answers, the
 * page says it is loading; the one-hour charts start at the first data (not 40 minutes of
 * zeros); every y-axis is as wide as its labels. Saves docs/screenshots/dashboard.png.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { BrowserContext, Route } from 'playwright-core';
import { freePort } from '../src/tools/demo/embedded';
import { INJECTED_FAULT_POOL } from '../src/tools/demo/simulator';
import type { CollectorProcess } from './helpers/collector';
import type { BillingDatabase } from './helpers/database';
import { writeDemoTraffic } from './helpers/demo-traffic';
import { SCREENSHOTS, launchChromium, requireChromium } from './helpers/browser';
import { waitFor } from './helpers/env';
import { withDatabaseAndCollector } from './helpers/fixture';
import { startProbe, type ProbeProcess } from './helpers/probe';

const MINUTES = 20;

describe('the page of a probe that has run for less than an hour', () => {
  let db: BillingDatabase;
  let collector: CollectorProcess;
  let probe: ProbeProcess;
  let context: BrowserContext;
  let profile: string;
  let base: string;
  // Registered first, so it runs before the fixture's: the probe stops before its database goes.
  after(async () => {
    await probe?.stop();
    await context?.close().catch(() => undefined);
    if (profile) rmSync(profile, { recursive: true, force: true });
  });
  withDatabaseAndCollector('modern', (d, c) => ((db = d), (collector = c)));

  before(async () => {
    requireChromium();
    const pool = new pg.Pool({ connectionString: db.url, max: 2 });
    try {
      // 20 minutes up to now, 60 rows/s; a pool fails most of its transfers for the last 2.5 minutes.
      await writeDemoTraffic(pool, { seed: 3, rate: 60, seconds: MINUTES * 60, startMs: Date.now() - MINUTES * 60_000, faultAfter: MINUTES * 60 - 150, deliverEverySeconds: 10 });
    } finally {
      await pool.end();
    }
    const port = await freePort();
    probe = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: ['--metrics-port', String(port)] });
    base = `http://127.0.0.1:${port}/`;
    profile = mkdtempSync(join(tmpdir(), 'probe-chromium-'));
    context = await launchChromium(profile);
    mkdirSync(SCREENSHOTS, { recursive: true });
  });

  it('says it is loading until the API answers, then shows the data', async (t) => {
    const page = context.pages()[0] ?? (await context.newPage());
    const held: Route[] = [];
    await page.route('**/api/**', (route) => void held.push(route));
    await page.goto(`${base}?refresh=0`);
    await waitFor('the page to ask the API', () => held.length > 0);
    assert.equal(await page.locator('body').getAttribute('data-loading'), 'true');
    assert.equal(await page.locator('[data-testid="updated"]').textContent(), 'loading the statistics…');
    assert.equal(await page.locator('[data-testid="total-transfers"]').textContent(), '…');
    assert.equal(await page.locator('[data-testid="loading"]').textContent(), 'loading…');
    assert.equal(await page.locator('[data-testid="chart-volume"]').textContent(), 'loading…');
    assert.ok(!((await page.locator('body').textContent()) ?? '').includes('never'));

    const released = Date.now();
    for (const route of held.splice(0)) await route.continue();
    await page.unroute('**/api/**');
    for (const route of held.splice(0)) await route.continue(); // asked for meanwhile
    await page.locator('body[data-generation]').waitFor({ timeout: 30_000 });
    t.diagnostic(`all parts drawn ${Date.now() - released} ms after the API was let through`);
    assert.equal(await page.locator('body').getAttribute('data-loading'), null);
    assert.match((await page.locator('[data-testid="updated"]').textContent()) ?? '', /^updated \d\d:\d\d:\d\d$/);
    assert.ok(Number(await page.locator('[data-testid="total-transfers"]').getAttribute('data-value')) > 10_000);
  });

  it('starts the one-hour charts at the first data, and gives every y-axis the width of its labels', async () => {
    const page = context.pages()[0]!;
    const series = (await (await fetch(`${base}api/series?dimension=direction&window=hour`)).json()) as { buckets: number[]; stepSeconds: number; dataSince: number };
    const firstStep = Math.floor(series.dataSince / series.stepSeconds) * series.stepSeconds;
    assert.ok(firstStep > series.buckets[0]! + 30 * 60, 'the probe has less than an hour of data');
    for (const id of ['chart-volume', 'chart-errors']) assert.equal(Number(await page.locator(`#${id}`).getAttribute('data-x-from')), firstStep, id);

    // In the page: each chart's y-axis (uPlot keeps its size and last labels) against the
    // width its labels take in the axis font.
    const axes = await page.evaluate(() => {
      type Axis = { _size: number; _values: string[] | null; font: [string]; ticks: { size: number }; gap: number };
      const w = globalThis as unknown as { document: any; devicePixelRatio: number };
      return ['chart-volume', 'chart-errors', 'hist-duration', 'hist-rate'].map((id) => {
        const u = w.document.getElementById(id).uplot as { axes: Axis[]; data: number[][] };
        const y = u.axes[1]!;
        const ctx = w.document.createElement('canvas').getContext('2d');
        ctx.font = y.font[0];
        const widest = Math.max(...(y._values ?? []).map((v: string) => ctx.measureText(v).width / w.devicePixelRatio));
        return { id, size: y._size, needed: widest + y.ticks.size + y.gap, labels: y._values, firstX: u.data[0]![0] };
      });
    });
    for (const a of axes) assert.ok(a.size >= a.needed, `${a.id}: y-axis ${a.size} px for labels that need ${a.needed.toFixed(1)} px: ${JSON.stringify(a.labels)}`);
    assert.ok(axes[0]!.labels!.some((l: string) => /B\/s$/.test(l)), JSON.stringify(axes[0]));
    assert.equal(axes[0]!.firstX, firstStep);

    const fault = page.locator(`[data-testid="alert"][data-kind="fault"][data-key="${INJECTED_FAULT_POOL}"]`);
    await page.reload();
    await fault.waitFor({ timeout: 30_000 });
    await page.locator('body[data-generation]').waitFor();
    await page.screenshot({ path: join(SCREENSHOTS, 'dashboard.png'), fullPage: true });
  });
});
