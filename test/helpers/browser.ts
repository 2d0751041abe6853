/**
 * Headless Chromium for the tests that drive the dashboard (Debian's chromium, driven by
 * playwright-core; DCACHE_PROBE_TEST_CHROMIUM names another): one launch with one set of
 * flags, and where the screenshots go: docs/screenshots/ when DCACHE_PROBE_UPDATE_SCREENSHOTS=1
 * (to refresh the documentation's pictures), else a temporary directory, so that a test run
 * leaves the checkout as it found it.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { DIST } from './env';

export const CHROMIUM = process.env.DCACHE_PROBE_TEST_CHROMIUM ?? '/usr/bin/chromium';
export const SCREENSHOTS = process.env.DCACHE_PROBE_UPDATE_SCREENSHOTS === '1' ? resolve(DIST, '..', 'docs', 'screenshots') : join(tmpdir(), 'dcache-probe-screenshots');
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Fails the test at once, saying how to install it, when there is no Chromium. */
export function requireChromium(): void {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium (.ci/run does)`);
}

/** A headless browser with its profile in `userDataDir` and a 1400×1000 window; `httpCredentials` answer HTTP Basic challenges. */
export function launchChromium(userDataDir: string, options: { httpCredentials?: { username: string; password: string; origin?: string } } = {}): Promise<BrowserContext> {
  return chromium.launchPersistentContext(userDataDir, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1400, height: 1000 }, ...options });
}
