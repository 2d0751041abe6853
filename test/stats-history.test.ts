/**
 * Statistics from history (issue 14): the builder counts the billing rows from before the
 * installation as the delivery's statistics count them; reruns and an interrupted run resumed
 * count every hour once; live deliveries (poll --once, HTTP server off) plus history give
 * the totals over all rows, also after a backfill sent the historic rows through the pipeline.
 * Both forms of the billing schema.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { migrate } from '../src/db/migrations';
import { createPool } from '../src/db/pool';
import { buildHistory, hoursNewestFirst, type HistoryOptions } from '../src/features/statistics/history';
import { HOUR_MS } from '../src/lib';
import { meaningful } from '../src/record/mapping';
import { startCollector, type CollectorProcess } from './helpers/collector';
import { createBillingDatabase, type BillingDatabase } from './helpers/database';
import { runCli, pollOnce } from './helpers/probe';
import { installedAtMs, reportable, simulate, write } from './helpers/scenario';
import type { SimTransfer } from '../src/tools/demo/simulator';

type Sums = Record<string, number>;

async function sums(db: BillingDatabase, sql: string, values: unknown[] = []): Promise<Sums> {
  const { rows } = await db.query<{ k: string; n: string }>(sql, values);
  return Object.fromEntries(rows.map((r) => [r.k, Number(r.n)]));
}

/** Per (dimension, key): transfers|bytes|errors|duration of the table's rows (before `beforeMs`, if given). */
function perKey(db: BillingDatabase, table: 'stats_minute' | 'stats_hour' | 'stats_day', dimensions: readonly string[], beforeMs?: number): Promise<Sums> {
  const time = table === 'stats_day' ? 'day' : 'bucket';
  return sums(
    db,
    `SELECT dimension || '/' || key AS k, sum(transfers) AS n
       FROM dcache_probe.${table} WHERE dimension = ANY($1) ${beforeMs === undefined ? '' : `AND ${time} < to_timestamp($2 / 1000.0)`} GROUP BY 1`,
    beforeMs === undefined ? [dimensions] : [dimensions, beforeMs],
  );
}

async function full(db: BillingDatabase, table: string, dimensions: readonly string[], beforeMs?: number): Promise<Record<string, string>> {
  const time = table === 'stats_day' ? 'day' : 'bucket';
  const { rows } = await db.query<{ k: string; v: string }>(
    `SELECT dimension || '/' || key AS k, sum(transfers) || '|' || sum(bytes) || '|' || sum(errors) || '|' || sum(denied) || '|' || sum(duration_ms) AS v
       FROM dcache_probe.${table} WHERE dimension = ANY($1) ${beforeMs === undefined ? '' : `AND ${time} < to_timestamp($2 / 1000.0)`} GROUP BY 1`,
    beforeMs === undefined ? [dimensions] : [dimensions, beforeMs],
  );
  return Object.fromEntries(rows.map((r) => [r.k, r.v]));
}

function tally(items: readonly SimTransfer[], key: (t: SimTransfer) => string): Sums {
  const out: Sums = {};
  for (const t of items) out[key(t)] = (out[key(t)] ?? 0) + 1;
  return out;
}

const HOUR_DIMENSIONS = ['all', 'direction', 'protocol', 'vo', 'pool', 'door', 'error', 'door_pool', 'duration_bin', 'rate_bin'];

for (const form of ['modern', 'legacy'] as const) {
  describe(`statistics from history (${form} schema)`, () => {
    let db: BillingDatabase;
    let pool: pg.Pool;
    let collector: CollectorProcess;
    let installedMs: number;
    let old: SimTransfer[];
    let live: SimTransfer[];
    const options = (o: Partial<HistoryOptions> = {}): HistoryOptions => ({
      sinceMs: installedMs - 3 * 24 * HOUR_MS,
      pauseMs: 0,
      settleMs: 0,
      hourRetentionDays: 60,
      reportTape: true,
      onlyInterSiteTransfers: false,
      ...o,
    });

    before(async () => {
      // Rows written before the probe was installed (20 h and 30 h ago, within the minute
      // table's retention, so that the live path's minute rows can be compared), then installed.
      db = await createBillingDatabase(form, { migrate: false });
      const t0 = Date.now();
      old = [...simulate(150, 91, form, () => t0 - 30 * HOUR_MS), ...simulate(150, 92, form, () => t0 - 20 * HOUR_MS)];
      await write(db, old);
      await migrate(db.url, 'public');
      installedMs = await installedAtMs(db);
      pool = createPool({ url: db.url, max: 2 });
      collector = await startCollector();
      // (Stamped after the installation: dCache's clock skew could put rows written now before it.)
      live = simulate(120, 93, form, () => installedMs + 2 * 60_000);
      await write(db, live);
    });
    after(async () => {
      await pool?.end();
      await collector?.stop();
      await db?.drop();
    });

    it('poll --once (HTTP server off) keeps the statistics of what it delivers', async () => {
      const result = await pollOnce({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: ['--door-grace', '0'] });
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(await sums(db, `SELECT dimension AS k, sum(transfers) AS n FROM dcache_probe.stats_day WHERE dimension = 'all' GROUP BY 1`), { all: reportable(live) });
      assert.deepEqual(await sums(db, `SELECT dimension AS k, sum(transfers) AS n FROM dcache_probe.stats_hour WHERE dimension = 'all' GROUP BY 1`), { all: reportable(live) });
    });

    it('interrupted, resumed and rerun, it counts every hour once', async () => {
      const first = await buildHistory(pool, options({ maxHours: 5 }));
      assert.equal(first.complete, false);
      assert.equal(first.hoursCounted, 5);
      const second = await buildHistory(pool, options());
      assert.equal(second.complete, true);
      assert.equal(second.hoursSkipped, 5);
      const hours = hoursNewestFirst(first.sinceMs, first.untilMs).length;
      const marked = Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM dcache_probe.stats_history')).rows[0]!.n);
      assert.equal(first.hoursCounted + second.hoursCounted, marked);
      assert.ok(marked === hours || marked === 2 * hours, 'every hour of billinginfo (and storageinfo) marked once');
      const before = await full(db, 'stats_day', ['all', 'vo', 'pool', 'storage_class_direction']);
      const third = await buildHistory(pool, options());
      assert.equal(third.hoursCounted, 0);
      assert.deepEqual(await full(db, 'stats_day', ['all', 'vo', 'pool', 'storage_class_direction']), before);
      assert.equal(first.rowsCounted + second.rowsCounted, reportable(old), 'each historic transfer counted once (p2p and copies left out)');
    });

    it('history plus live deliveries give the totals over all rows, also after a backfill of the historic rows', async () => {
      const all = [...old, ...live].filter((t) => t.reportable);
      const check = async () => {
        assert.deepEqual(await sums(db, `SELECT dimension AS k, sum(transfers) AS n FROM dcache_probe.stats_day WHERE dimension = 'all' GROUP BY 1`), { all: all.length });
        assert.deepEqual(await sums(db, `SELECT dimension AS k, sum(transfers) AS n FROM dcache_probe.stats_hour WHERE dimension = 'all' GROUP BY 1`), { all: all.length });
        const day = await perKey(db, 'stats_day', ['storage_class', 'direction', 'pool']);
        const expected: Sums = {
          ...Object.fromEntries(Object.entries(tally(all, (t) => meaningful(t.mover.storageclass as string | null) ?? '(none)')).map(([k, n]) => [`storage_class/${k}`, n])),
          ...Object.fromEntries(Object.entries(tally(all, (t) => (t.mover.isnew ? 'write' : 'read'))).map(([k, n]) => [`direction/${k}`, n])),
          ...Object.fromEntries(Object.entries(tally(all, (t) => String(t.mover.cellname))).map(([k, n]) => [`pool/${k}`, n])),
        };
        assert.deepEqual(day, expected);
      };
      await check();
      // The historic rows through the pipeline: counted in the minute table, not again in the hour and day tables.
      const backfill = await runCli(['backfill', '--db-url', db.url, '--since', new Date(installedMs - 2 * 24 * HOUR_MS).toISOString(), '--rate', '100000']);
      assert.equal(backfill.code, 0, backfill.stderr);
      const result = await pollOnce({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: ['--door-grace', '0'] });
      assert.equal(result.code, 0, result.stderr);
      await check();
      const minuteOld = await sums(db, `SELECT 'all' AS k, sum(transfers) AS n FROM dcache_probe.stats_minute WHERE dimension = 'all' AND bucket < to_timestamp($1 / 1000.0)`, [installedMs]);
      assert.deepEqual(minuteOld, { all: reportable(old) }, 'the backfill was delivered');
    });

    it('counts the historic rows as the delivery counts them, key by key', async () => {
      // The minute rows before the installation are the live path's count of the backfilled
      // historic rows; the hour rows before it are the builder's, of the same rows.
      const hourBefore = Math.floor(installedMs / HOUR_MS) * HOUR_MS;
      const live = await full(db, 'stats_minute', HOUR_DIMENSIONS, hourBefore);
      const built = await full(db, 'stats_hour', HOUR_DIMENSIONS, hourBefore);
      assert.deepEqual(built, live);
      const liveDay = await full(db, 'stats_minute', ['all', 'direction', 'protocol', 'vo', 'pool', 'door']);
      const day = await full(db, 'stats_day', ['all', 'direction', 'protocol', 'vo', 'pool', 'door']);
      assert.deepEqual(day, liveDay, 'per-day totals over all rows = the minute rows over all rows');
    });
  });
}
