/**
 * `dcache-probe demo --history-days N` (issue 14): the demo writes N days of simulated billing
 * history before it installs the capture, and counts it into the statistics with the history
 * builder, so that the outlook has a series to forecast at once. Here: the demo's writer and
 * builder on a fresh database (45 days: every day counted, with the bytes meant, a weekly
 * season, VOs and storage classes with different shares, a level change, reads and writes,
 * and a weekly forecast from it), and the demo as a process with a 30-day history, whose
 * outlook API answers with a weekly forecast as soon as the demo is up.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../src/config/schema';
import { migrate } from '../src/db/migrations';
import type { HistoryResult } from '../src/features/statistics/history';
import { forecastDaily } from '../src/features/outlook/forecast';
import { demoStatistics } from '../src/tools/demo/demo';
import { WEEK } from '../src/tools/demo/history';
import { DAY_MS } from '../src/lib';
import { countSiteHistory, levelForRate, writeSiteHistory, type WrittenHistory } from '../src/tools/demo/site-history';
import { createBillingDatabase, type BillingDatabase } from './helpers/database';
import { CLI, waitFor } from './helpers/env';
import { runCli } from './helpers/probe';

const DAYS = 45;
const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const isWeekend = (dayMs: number) => [0, 6].includes(new Date(dayMs).getUTCDay());

describe("the demo's simulated history, written and counted (45 days)", () => {
  let db: BillingDatabase;
  let written: WrittenHistory;
  let counted: HistoryResult;
  /** dimension -> key -> per-day [transfers, bytes], oldest first. */
  const days = new Map<string, Map<string, { day: number; transfers: number; bytes: number }[]>>();
  const series = (dimension: string, key: string) => days.get(dimension)?.get(key) ?? [];

  before(async () => {
    db = await createBillingDatabase('modern', { migrate: false });
    const config = loadConfig({ env: {}, commandDefaults: demoStatistics(DAYS) }, ['statistics', 'pipeline']);
    assert.ok(config.statistics.historyDays > DAYS, 'the demo counts its whole history');
    // Up to a midnight, so that every day is whole.
    const untilMs = Math.floor(Date.now() / DAY_MS) * DAY_MS;
    written = await writeSiteHistory({ url: db.url, days: DAYS, untilMs, level: levelForRate(200), seed: 7 });
    await migrate(db.url, 'public');
    counted = await countSiteHistory({
      url: db.url,
      historyDays: config.statistics.historyDays,
      hourRetentionDays: config.statistics.hourRetentionDays,
      reportTape: config.pipeline.reportTape,
      onlyInterSiteTransfers: config.pipeline.onlyInterSiteTransfers,
    });
    const { rows } = await db.query<{ day: Date; dimension: string; key: string; transfers: string; bytes: string }>(
      `SELECT day::timestamp AT TIME ZONE 'UTC' AS day, dimension, key, transfers, bytes FROM dcache_probe.stats_day ORDER BY day`,
    );
    for (const r of rows) {
      const byKey = days.get(r.dimension) ?? days.set(r.dimension, new Map()).get(r.dimension)!;
      const list = byKey.get(r.key) ?? byKey.set(r.key, []).get(r.key)!;
      list.push({ day: r.day.getTime(), transfers: Number(r.transfers), bytes: Number(r.bytes) });
    }
  });
  after(async () => {
    await db?.drop();
  });

  it('stats_day holds every day of the history for dimension all, each with the bytes meant', () => {
    assert.ok(counted.complete, 'the builder ran to completion');
    assert.ok(written.transfers >= DAYS * 500 && written.transfers <= DAYS * 3000, `${written.transfers} transfers`);
    const all = series('all', '');
    assert.equal(all.length, DAYS);
    assert.deepEqual(all.map((d) => d.day), Array.from({ length: DAYS }, (_, i) => written.fromMs + i * DAY_MS));
    assert.equal(counted.rowsCounted, all.reduce((s, d) => s + d.transfers, 0));
    // Sizes are scaled so that a day's bytes are the shape's (each transfer rounded to a byte).
    for (const [i, d] of all.entries()) assert.ok(Math.abs(d.bytes - written.daily[i]!) <= d.transfers, `day ${i}: ${d.bytes} bytes, meant ${written.daily[i]}`);
  });

  it('has the weekly season: weekdays busier than weekends by the intended factor', (t) => {
    const all = series('all', '');
    const weekdays = mean(all.filter((d) => !isWeekend(d.day)).map((d) => d.bytes));
    const weekends = mean(all.filter((d) => isWeekend(d.day)).map((d) => d.bytes));
    const intended = mean(WEEK.slice(0, 5)) / mean(WEEK.slice(5));
    t.diagnostic(`weekday mean / weekend mean: ${(weekdays / weekends).toFixed(3)} (intended ${intended.toFixed(3)})`);
    assert.ok(Math.abs(weekdays / weekends / intended - 1) < 0.1, `${weekdays / weekends} against ${intended}`);
  });

  it('has VOs and storage classes with different shares, reads and writes, and a level change (atlas writes more)', (t) => {
    const total = (dimension: string, key: string) => series(dimension, key).reduce((s, d) => s + d.transfers, 0);
    assert.ok(written.changeMs !== null);
    // (Before the level change: after it, atlas carries the site's extra volume.)
    const vos = ['cms', 'atlas', 'osg', 'dteam'].map((vo) => series('vo', vo).filter((d) => d.day < written.changeMs!).reduce((s, d) => s + d.transfers, 0));
    t.diagnostic(`transfers by VO before the level change: cms ${vos[0]}, atlas ${vos[1]}, osg ${vos[2]}, dteam ${vos[3]}; (none) in all ${total('vo', '(none)')}`);
    assert.ok(vos.every((n, i) => i === 0 || n < vos[i - 1]! * 0.8), 'VOs of distinctly different shares');
    assert.ok(total('vo', '(none)') > 0);
    const classes = [...(days.get('storage_class')?.keys() ?? [])];
    assert.ok(classes.length >= 5, classes.join(', '));
    assert.ok(total('direction', 'read') > total('direction', 'write') && total('direction', 'write') > 0);
    assert.ok(total('vo_direction', 'atlas write') > 0 && total('storage_class_direction', 'cms:default@osm read') > 0);
    const atlas = series('vo', 'atlas');
    const before = mean(atlas.filter((d) => d.day < written.changeMs!).map((d) => d.transfers));
    const later = mean(atlas.filter((d) => d.day >= written.changeMs!).map((d) => d.transfers));
    t.diagnostic(`atlas: ${before.toFixed(0)} transfers a day before ${new Date(written.changeMs!).toISOString().slice(0, 10)}, ${later.toFixed(0)} after`);
    assert.ok(later > before * 1.6, `${later} against ${before}`);
  });

  it('gives the outlook a weekly forecast of the site', async () => {
    const forecast = await forecastDaily(series('all', '').map((d) => d.bytes), 28);
    assert.match(forecast.method, /^MSTL\(7\)/);
    assert.equal(forecast.point.length, 28);
    assert.equal(forecast.historyDays, DAYS);
  });
});

describe('dcache-probe demo --history-days', () => {
  /** No configuration from the environment: the demo's own embedded server and collector. */
  const NO_CONFIGURATION = { DCACHE_PROBE_DB_URL: '', DCACHE_PROBE_COLLECTOR_URL: '', DCACHE_PROBE_SITE_NAME: '' };

  it('writes and counts 30 days of history before the live traffic, the outlook answers from it at once, and every live transfer is delivered once', async (t) => {
    const started = Date.now();
    const demo = spawn(process.execPath, [CLI, 'demo', '--history-days', '30', '--duration', '5', '--rate', '200', '--linger', '60'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...NO_CONFIGURATION } });
    let output = '';
    demo.stdout!.on('data', (d) => (output += d));
    demo.stderr!.on('data', (d) => (output += d));
    const exited = new Promise<number | null>((resolve) => demo.once('exit', (code) => resolve(code)));
    try {
      await waitFor('the summary', () => {
        if (demo.exitCode !== null) throw new Error(`the demo exited: ${output}`);
        return /the dashboard stays up/.test(output);
      }, 60_000);
      const line = /^history: 30 days before now simulated \((\d+) transfers, (\d+) billing rows, [0-9.]+ [kMGTPE]?B; .*\) and counted into the statistics \((\d+) hours\) in [0-9.]+ s$/m.exec(output);
      assert.ok(line, output);
      assert.ok(Number(line[1]) > 30 * 500 && Number(line[3]) >= 30 * 24, line[0]);
      assert.ok(output.indexOf('history:') < output.indexOf('ready in'), 'the history comes before the live phase');
      const summary = /summary: (\d+) reportable transfers committed, (\d+) delivered, 0 missing, 0 duplicates at the collector/.exec(output);
      assert.ok(summary && Number(summary[1]) > 0 && summary[1] === summary[2], output);
      const dashboard = /dashboard: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(output)![1]!;
      const outlook = (await (await fetch(`${dashboard}api/outlook?scope=site&metric=written`)).json()) as { method: string; historyDays: number; forecast: unknown[] };
      assert.match(outlook.method, /^MSTL\(7\)/);
      assert.equal(outlook.historyDays, 30);
      assert.equal(outlook.forecast.length, 365);
      demo.kill('SIGTERM');
      assert.equal(await exited, 0, output);
      t.diagnostic(`the demo took ${((Date.now() - started) / 1000).toFixed(1)} s`);
    } finally {
      if (demo.exitCode === null && demo.signalCode === null) demo.kill('SIGKILL');
    }
  });

  it('refuses a number of days that is not one (exit 2)', async () => {
    for (const days of ['x', '2.5', '4000']) {
      const result = await runCli(['demo', '--history-days', days], NO_CONFIGURATION);
      assert.equal(result.code, 2, result.stdout + result.stderr);
      assert.match(result.stderr, /--history-days: ".*" is not a number of days from 0 to 3650/);
    }
  });
});
