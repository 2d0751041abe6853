/**
 * The dashboard as a person uses it: `dcache-probe demo` against the test PostgreSQL with an
 * injected pool fault and a misuse burst, the page in headless Chromium (Debian's chromium,
 * driven by playwright-core). The injected anomalies must appear on the page (well within two
 * minutes), and what the page shows must be what the API returns and what the collector
 * received. The demo's dashboard is protected (a users file, DCACHE_PROBE_HTTP_USERS_FILE): the
 * browser logs in with HTTP Basic, and the page runs under its Content-Security-Policy without a
 * single violation. The alerts' screenshot goes to docs/screenshots/anomaly.png.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { INJECTED_FAULT_POOL, INJECTED_MISUSE_NETWORK } from '../src/tools/demo/simulator';
import { hashPassword } from '../src/service/http-auth';
import { SCREENSHOTS, launchChromium, requireChromium } from './helpers/browser';
import { CLI, PG_ADMIN_URL, waitFor } from './helpers/env';

interface Demo {
  process: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<number | null>;
}

const USER = 'operator';
const PASSWORD = 'a dashboard password';
const AUTHORIZATION = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;

function startDemo(args: string[], env: Record<string, string>): Demo {
  const child = spawn(process.execPath, [CLI, 'demo', '--db-url', PG_ADMIN_URL, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { process: child, stdout: () => out, stderr: () => err, exited };
}

async function json<T = any>(url: string): Promise<T> {
  const res = await fetch(url, { headers: { authorization: AUTHORIZATION } });
  assert.equal(res.status, 200, `${url}: ${res.status}`);
  return (await res.json()) as T;
}

async function attr(page: Page, selector: string, name: string): Promise<string | null> {
  return page.locator(selector).getAttribute(name);
}

describe('the dashboard in a browser', () => {
  let demo: Demo;
  let context: BrowserContext;
  let profile: string;
  let base: string;
  const timings: Record<string, number> = {};

  before(async () => {
    requireChromium();
    profile = mkdtempSync(join(tmpdir(), 'probe-chromium-'));
    const usersFile = join(profile, 'dashboard-users');
    writeFileSync(usersFile, `${USER}:${await hashPassword(PASSWORD)}\n`, { mode: 0o600 });
    // 14 s of traffic at 200 transfers/s; a pool fails from 3 s on, misuse from 5 s on; the
    // dashboard stays up after the summary until the test ends it.
    demo = startDemo(['--rate', '200', '--duration', '14', '--writers', '6', '--inject-fault-after', '3', '--inject-misuse-after', '5', '--linger', '120'], { DCACHE_PROBE_HTTP_USERS_FILE: usersFile });
    const url = await waitFor('the demo to print the dashboard URL', () => {
      if (demo.process.exitCode !== null) throw new Error(`demo exited: ${demo.stdout()}${demo.stderr()}`);
      return demo.stdout().match(/dashboard: (http:\/\/127\.0\.0\.1:\d+\/)/)?.[1] ?? '';
    });
    base = url;
    // The browser logs in as a person does at the prompt: HTTP Basic, answered when challenged.
    context = await launchChromium(join(profile, 'chromium'), { httpCredentials: { username: USER, password: PASSWORD, origin: new URL(base).origin } });
    // Anything the page's Content-Security-Policy blocks is recorded here.
    await context.addInitScript({ content: "window.violations = []; document.addEventListener('securitypolicyviolation', (e) => window.violations.push(e.violatedDirective + ' ' + e.blockedURI));" });
    mkdirSync(SCREENSHOTS, { recursive: true });
  });

  after(async () => {
    await context?.close().catch(() => undefined);
    if (profile) rmSync(profile, { recursive: true, force: true });
    if (demo && demo.process.exitCode === null) {
      demo.process.kill('SIGINT');
      await demo.exited;
    }
  });

  it('refuses the page and its API without the credentials', async () => {
    for (const path of ['', 'api/summary', 'dashboard.js']) {
      const res = await fetch(`${base}${path}`);
      assert.equal(res.status, 401, path);
      assert.match(res.headers.get('www-authenticate') ?? '', /^Basic /);
      assert.equal((await fetch(`${base}${path}`, { headers: { authorization: `Basic ${Buffer.from(`${USER}:wrong`).toString('base64')}` } })).status, 401, path);
    }
    assert.equal((await fetch(`${base}metrics`)).status, 200, 'Prometheus needs none');
  });

  it('shows the injected fault and misuse burst within two minutes, and exports them as metrics', async () => {
    const page = context.pages()[0] ?? (await context.newPage());
    const first = await page.goto(`${base}?refresh=1`);
    assert.equal(first?.status(), 200, 'logged in');
    assert.match(first?.headers()['content-security-policy'] ?? '', /script-src 'self'/);
    const injected = await waitFor('the fault and the misuse to be injected', () => {
      const out = demo.stdout();
      return out.includes('injected a fault') && out.includes('injected misuse') ? Date.now() : 0;
    });
    const fault = page.locator(`[data-testid="alert"][data-kind="fault"][data-dimension="pool"][data-key="${INJECTED_FAULT_POOL}"]`);
    const misuse = page.locator(`[data-testid="alert"][data-kind="misuse"][data-dimension="client_net"][data-key="${INJECTED_MISUSE_NETWORK}.0/24"]`);
    await fault.waitFor({ timeout: 120_000 });
    await misuse.waitFor({ timeout: 120_000 });
    timings.flaggedWithinMs = Date.now() - injected;
    assert.ok(timings.flaggedWithinMs < 120_000);
    assert.match((await fault.textContent()) ?? '', /of \d+ transfers failed/);
    assert.match((await misuse.textContent()) ?? '', /permission-denied errors/);
    // No other pool or door is blamed for the faulty pool's errors.
    const faults = await page.locator('[data-testid="alert"][data-kind="fault"]').evaluateAll((els) => els.map((e) => e.getAttribute('data-key')));
    assert.deepEqual(faults, [INJECTED_FAULT_POOL]);
    await page.locator('#alerts').screenshot({ path: join(SCREENSHOTS, 'anomaly.png') });

    // A pool's name is no one's personal data; a client network is: its alert number stands in.
    const metrics = await (await fetch(`${base}metrics`)).text();
    assert.match(metrics, new RegExp(`dcache_probe_anomaly\\{kind="fault",dimension="pool",key="${INJECTED_FAULT_POOL}"\\} 1`));
    const misuseId = await misuse.getAttribute('data-id');
    assert.match(misuseId ?? '', /^\d+$/);
    assert.match((await misuse.textContent()) ?? '', new RegExp(`alert ${misuseId}`), 'the page shows the number');
    assert.ok(metrics.includes(`dcache_probe_anomaly{kind="misuse",dimension="client_net",key="alert ${misuseId}"} 1`), metrics.split('\n').filter((l) => l.includes('anomaly')).join('\n'));
    assert.ok(!metrics.includes(INJECTED_MISUSE_NETWORK), 'no client network in /metrics');
    // Logged once, with the evidence.
    assert.equal(demo.stderr().split('\n').filter((l) => l.includes(`ANOMALY (fault): pool ${INJECTED_FAULT_POOL}`)).length, 1, demo.stderr());
    assert.match(demo.stderr(), /ANOMALY \(fault\).*"evidence":\{"failures":\d+/);

    // A bad request is answered with 400 and the reason.
    const bad = await fetch(`${base}api/series?dimension=nonsense`, { headers: { authorization: AUTHORIZATION } });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: string }).error, /dimension must be one of/);
  });

  it('shows the numbers the API returns, and they add up to what the collector received', async () => {
    const page = context.pages()[0]!;
    const summaryLine = await waitFor('the demo to finish its traffic', () => demo.stdout().match(/summary: (\d+) reportable transfers committed, (\d+) delivered, 0 missing, 0 duplicates at the collector/), 60_000);
    const delivered = Number(summaryLine![2]);
    assert.ok(delivered > 1000, 'traffic flowed');

    // The page refreshes every second: wait until it shows the final count.
    await waitFor('the page to show every delivered transfer', async () => (await attr(page, '[data-testid="total-transfers"]', 'data-value')) === String(delivered), 20_000);
    const summary = await json(`${base}api/summary?window=hour`);
    const series = await json(`${base}api/series?dimension=direction&window=hour`);
    assert.equal(summary.transfers, delivered, 'statistics = records the collector received');
    assert.equal(Number(await attr(page, '[data-testid="total-bytes"]', 'data-value')), summary.bytes);
    assert.equal(Number(await attr(page, '[data-testid="error-rate"]', 'data-value')), summary.errors);
    assert.equal(Number(await attr(page, '[data-testid="denied"]', 'data-value')), summary.denied);
    assert.ok(summary.denied > 0 && summary.errors > summary.denied);
    // The charts drew exactly the series the API returns, and they add up to the totals.
    const drawnTransfers = Number(await attr(page, '[data-testid="chart-volume"]', 'data-total-transfers'));
    const apiSeriesTransfers = series.series.reduce((s: number, l: { transfers: number[] }) => s + l.transfers.reduce((a, b) => a + b, 0), 0);
    assert.equal(drawnTransfers, apiSeriesTransfers);
    assert.equal(drawnTransfers, delivered);
    assert.equal(Number(await attr(page, '[data-testid="chart-volume"]', 'data-total-bytes')), summary.bytes);
    assert.equal(Number(await attr(page, '[data-testid="chart-errors"]', 'data-total-errors')), summary.errors);
    assert.deepEqual((await attr(page, '[data-testid="chart-volume"]', 'data-series'))!.split('\n').sort(), series.series.map((l: { key: string }) => l.key).sort());
    assert.equal(Number(await attr(page, '[data-testid="hist-duration"]', 'data-total-transfers')), delivered);
    assert.ok(await page.locator('[data-testid="chart-volume"] canvas').count(), 'uPlot drew a canvas');

    // Top users: the table's first row is the API's top user.
    const users = await json(`${base}api/top?dimension=user&window=hour&by=bytes`);
    assert.equal(await page.locator('[data-testid="top-user"] tr[data-key]').first().getAttribute('data-key'), users.rows[0].key);
    // The injected fault makes its pool the worst by error rate.
    assert.equal(await page.locator('[data-testid="error-rate-door"] tr[data-key]').first().getAttribute('data-key'), `pool ${INJECTED_FAULT_POOL}`);

    // Another dimension and another window: still the same totals.
    await page.selectOption('[data-testid="dimension"]', 'protocol');
    await page.click('button[data-window="day"]');
    await waitFor('the page to show the day by protocol', async () => (await page.locator('body').getAttribute('data-dimension')) === 'protocol' && (await page.locator('body').getAttribute('data-window')) === 'day', 10_000);
    await waitFor('the day totals', async () => (await attr(page, '[data-testid="chart-volume"]', 'data-total-transfers')) === String(delivered), 10_000);
    assert.equal(await attr(page, '[data-testid="total-transfers"]', 'data-value'), String(delivered));
    const byProtocol = await json(`${base}api/series?dimension=protocol&window=day`);
    assert.deepEqual((await attr(page, '[data-testid="chart-volume"]', 'data-series'))!.split('\n').sort(), byProtocol.series.map((l: { key: string }) => l.key).sort());
    assert.equal(await page.locator('[data-testid="problem"]').textContent(), '');

    await page.click('button[data-window="hour"]');
    await waitFor('the hour again', async () => (await page.locator('body').getAttribute('data-window')) === 'hour', 10_000);
    // (docs/screenshots/dashboard.png is test/page.test.ts's: 20 minutes of data, not seconds.)

    // Everything ran under the page's Content-Security-Policy, and nothing was blocked.
    assert.deepEqual(await page.evaluate('window.violations'), []);
    // The page links the API's list.
    await page.click('[data-testid="api-link"]');
    const listing = (await page.locator('body').textContent()) ?? '';
    assert.match(listing, /^GET \/api\/summary/m);
    assert.match(listing, /^GET \/api\/alerts/m);
    await page.goBack();

    // Ctrl-C ends the lingering demo cleanly.
    demo.process.kill('SIGINT');
    assert.equal(await demo.exited, 0, demo.stdout() + demo.stderr());
  });
});
