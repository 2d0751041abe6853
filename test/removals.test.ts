/**
 * The daily removal step and measured growth (issue 14, docs/OUTLOOK.md "Growth"), on the real
 * PostgreSQL with dCache's billing schema (both forms): write movers and later doorinfo remove
 * rows (some without a write mover, a failed one, a copy, a write after the removal, an older
 * and a newer write of one file, a failed write), counted per UTC day and storage class; a rerun
 * and an interrupted run count every day once; days after the installation are counted too;
 * the plan probes billinginfo's pnfsid index per removal; and the outlook's growth is the bytes
 * written minus those removed, for the site and a storage class, not for a VO; the runtime role
 * of migrate --grant-to can count and prune.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { grantRuntimeRole, installedBillingSchema } from '../src/db/migrations';
import { createPool, withClient } from '../src/db/pool';
import { explainRemovalDay, removalDaySql } from '../src/db/removals';
import { pruneStatistics } from '../src/db/statistics';
import { billingColumns } from '../src/db/billing';
import { Outlook, VO_GROWTH_BASIS } from '../src/features/outlook/outlook';
import { countRemovals, nextRunDelayMs, settledDaysNewestFirst, type RemovalOptions } from '../src/features/statistics/removals';
import { adminQuery, createBillingDatabase, type BillingDatabase } from './helpers/database';
import { databaseUrl } from './helpers/env';

const DAY_MS = 86_400_000;
/** Today 12:00 UTC; day(n) is n days from today (n < 0: before). */
const TODAY_MS = Math.floor(Date.now() / DAY_MS) * DAY_MS;
const NOW = TODAY_MS + 12 * 3_600_000;
const day = (n: number) => new Date(TODAY_MS + n * DAY_MS).toISOString().slice(0, 10);
const at = (n: number, hour: number) => new Date(TODAY_MS + n * DAY_MS + hour * 3_600_000).toISOString();
/** The installation: day(-3) 12:00 (set back in schema_migration). */
const INSTALLED_MS = TODAY_MS - 3 * DAY_MS + 12 * 3_600_000;
const ATLAS = 'atlas:disk@osm';
const CMS = 'cms:tape@osm';

interface Mover {
  t: string;
  pnfsid: string;
  fullsize: number | null;
  transfersize: number;
  sc: string;
  isnew: boolean;
  errorcode?: number;
  p2p?: boolean;
}

describe('removal counts and measured growth', () => {
  for (const form of ['modern', 'legacy'] as const) {
    describe(`${form} schema`, () => {
      let db: BillingDatabase;
      let pool: pg.Pool;
      let n = 0;
      const options = (o: Partial<RemovalOptions> = {}): RemovalOptions => ({ sinceMs: INSTALLED_MS - 2 * DAY_MS, pauseMs: 0, settleMs: 0, now: () => NOW, ...o });

      const mover = (m: Mover) =>
        db.query(
          form === 'modern'
            ? `INSERT INTO billinginfo (datestamp, action, transaction, pnfsid, fullsize, transfersize, storageclass, isnew, errorcode, p2p, cellname, protocol)
               VALUES ($1, 'transfer', $2, $3, $4, $5, $6, $7, $8, $9, 'pool1@poolDomain', 'Http-1.1')`
            : `INSERT INTO billinginfo (datestamp, action, transaction, pnfsid, fullsize, transfersize, storageclass, isnew, errorcode, cellname, protocol)
               VALUES ($1, 'transfer', $2, $3, $4, $5, $6, $7, $8, 'pool1@poolDomain', 'Http-1.1')`,
          [
            form === 'modern' ? m.t : m.t.replace('T', ' ').replace('Z', ''),
            `pool:pool1@poolDomain:${++n}`,
            m.pnfsid,
            m.fullsize,
            m.transfersize,
            m.sc,
            m.isnew,
            m.errorcode ?? 0,
            ...(form === 'modern' ? [m.p2p ?? false] : []),
          ],
        );
      const remove = (t: string, pnfsid: string, errorcode = 0) =>
        db.query(`INSERT INTO doorinfo (datestamp, action, transaction, pnfsid, errorcode, cellname, path) VALUES ($1, 'remove', $2, $3, $4, 'WebDAV-door@doorDomain', '/data/f')`, [
          form === 'modern' ? t : t.replace('T', ' ').replace('Z', ''),
          `door:WebDAV-door@doorDomain:${++n}`,
          pnfsid,
          errorcode,
        ]);
      const dayRows = async () =>
        (
          await db.query<{ day: string; sc: string; removals: string; sized: string; bytes: string }>(
            `SELECT to_char(day, 'YYYY-MM-DD') AS day, storage_class AS sc, removals, sized, bytes FROM dcache_probe.stats_removal_day ORDER BY day, storage_class`,
          )
        ).rows.map((r) => [r.day, r.sc, Number(r.removals), Number(r.sized), Number(r.bytes)]);

      before(async () => {
        db = await createBillingDatabase(form);
        pool = createPool({ url: db.url, timeZone: 'UTC' });
        await db.query(`UPDATE dcache_probe.schema_migration SET applied_at = to_timestamp($1 / 1000.0)`, [INSTALLED_MS]);
        // Filler: enough write movers of other files that a scan of billinginfo would cost.
        await db.query(
          `INSERT INTO billinginfo (datestamp, action, transaction, pnfsid, fullsize, transfersize, storageclass, isnew, errorcode, cellname)
           SELECT $1::timestamptz - make_interval(secs => g), 'transfer', 'pool:filler:' || g, lpad(to_hex(g), 36, 'F'), 1, 1, '${ATLAS}', g % 2 = 0, 0, 'pool1@poolDomain'
             FROM generate_series(1, 30000) g`,
          [form === 'modern' ? at(-3, 0) : at(-3, 0).replace('T', ' ').replace('Z', '')],
        );
        // A: written long before the window, removed on day -4 (before the installation).
        await mover({ t: at(-40, 9), pnfsid: 'A', fullsize: 1000, transfersize: 1000, sc: ATLAS, isnew: true });
        await mover({ t: at(-20, 9), pnfsid: 'A', fullsize: 1000, transfersize: 1000, sc: ATLAS, isnew: false });
        await remove(at(-4, 10), 'A');
        // B: written on day -5 (plus a read and a p2p copy), removed on day -1 (after the installation).
        await mover({ t: at(-5, 8), pnfsid: 'B', fullsize: 2000, transfersize: 2000, sc: CMS, isnew: true });
        await mover({ t: at(-3, 8), pnfsid: 'B', fullsize: 7777, transfersize: 7777, sc: ATLAS, isnew: false });
        if (form === 'modern') await mover({ t: at(-2, 8), pnfsid: 'B', fullsize: 8888, transfersize: 8888, sc: ATLAS, isnew: true, p2p: true });
        await remove(at(-1, 3), 'B');
        // C: written twice (the later write counts), a failed write before the removal, removed on day -2.
        await mover({ t: at(-6, 8), pnfsid: 'C', fullsize: 100, transfersize: 100, sc: CMS, isnew: true });
        await mover({ t: at(-3, 20), pnfsid: 'C', fullsize: 300, transfersize: 300, sc: ATLAS, isnew: true });
        await mover({ t: at(-2, 1), pnfsid: 'C', fullsize: 999, transfersize: 999, sc: CMS, isnew: true, errorcode: 666 });
        await remove(at(-2, 2), 'C');
        // E: no write mover; its remove row written twice (two billing cells): one removal, unsized.
        await remove(at(-2, 5), 'E');
        await remove(at(-2, 5), 'E');
        // F: a write mover without fullsize: transfersize.
        await mover({ t: at(-2, 6), pnfsid: 'F', fullsize: null, transfersize: 500, sc: ATLAS, isnew: true });
        await remove(at(-2, 7), 'F');
        // G: a failed removal (permission denied) frees nothing: not counted.
        await mover({ t: at(-2, 6), pnfsid: 'G', fullsize: 50, transfersize: 50, sc: ATLAS, isnew: true });
        await remove(at(-2, 9), 'G', 10018);
        // H: written after its removal (a new file of the same id cannot be what was removed).
        await remove(at(-1, 10), 'H');
        await mover({ t: at(-1, 11), pnfsid: 'H', fullsize: 40, transfersize: 40, sc: ATLAS, isnew: true });
        // Today's removal: the day is not over, not counted.
        await remove(at(0, 1), 'A');
        await db.query('ANALYZE billinginfo');
        await db.query('ANALYZE doorinfo');
      });

      after(async () => {
        await pool.end();
        await db.drop();
      });

      if (form === 'legacy') {
        it('counts nothing without an index on billinginfo(pnfsid) (dCache before 2.6), then counts once it is made', async () => {
          const r = await countRemovals(pool, options());
          assert.equal(r.daysCounted, 0);
          assert.match(r.unavailable ?? '', /no index on pnfsid/);
          assert.equal((await db.query('SELECT count(*)::int AS n FROM dcache_probe.stats_removal_counted')).rows[0]!.n, 0);
          await db.query('CREATE INDEX billinginfo_pnfsid_idx ON billinginfo (pnfsid)');
          await db.query('ANALYZE billinginfo');
        });
      }

      it('counts each complete day, per storage class, from the window start to yesterday, also after the installation', async () => {
        const first = await countRemovals(pool, options({ maxDays: 2 }));
        assert.deepEqual([first.daysCounted, first.complete], [2, false]);
        assert.deepEqual([first.sinceDay, first.untilDay], [day(-5), day(0)]);
        const rest = await countRemovals(pool, options());
        assert.deepEqual([rest.daysCounted, rest.daysSkipped, rest.complete, rest.unavailable], [3, 2, true, null]);
        assert.equal(first.removalsCounted + rest.removalsCounted, 6);
        const expected = [
          [day(-4), ATLAS, 1, 1, 1000],
          [day(-2), '(unknown)', 1, 0, 0],
          [day(-2), ATLAS, 2, 2, 800],
          [day(-1), '(unknown)', 1, 0, 0],
          [day(-1), CMS, 1, 1, 2000],
        ];
        assert.deepEqual(await dayRows(), expected);
        const marks = await db.query<{ day: string; removals: string }>(`SELECT to_char(day, 'YYYY-MM-DD') AS day, removals FROM dcache_probe.stats_removal_counted ORDER BY day`);
        assert.deepEqual(
          marks.rows.map((r) => [r.day, Number(r.removals)]),
          [[day(-5), 0], [day(-4), 1], [day(-3), 0], [day(-2), 3], [day(-1), 2]],
        );

        // A rerun counts nothing again; so does a run the next day but for the new day.
        const again = await countRemovals(pool, options());
        assert.deepEqual([again.daysCounted, again.daysSkipped], [0, 5]);
        assert.deepEqual(await dayRows(), expected);
      });

      it('probes billinginfo by its pnfsid index per removal, not by a scan', async () => {
        const { billing, cols } = await withClient(pool, async (c) => {
          const billing = (await installedBillingSchema(c))!;
          return { billing, cols: await billingColumns(c, billing) };
        });
        const plan = await explainRemovalDay(pool, removalDaySql(billing, cols), day(-2));
        assert.match(plan, /Index Scan using billinginfo_pnfsid_idx on billinginfo|Bitmap Index Scan on billinginfo_pnfsid_idx/, plan);
        assert.doesNotMatch(plan, /Seq Scan on billinginfo/, plan);
      });

      if (form === 'modern') {
        it("answers growth as written minus removed for the site and a storage class, and a VO's as its bytes written", async () => {
          const written: Record<string, number> = {};
          const rows: [string, string, string, number][] = [];
          for (let i = -8; i <= -1; i++) {
            const w = 10_000 + 100 * i;
            written[day(i)] = w;
            rows.push([day(i), 'all', '', w], [day(i), 'direction', 'write', w]);
            rows.push([day(i), 'storage_class', ATLAS, w / 2], [day(i), 'storage_class_direction', `${ATLAS} write`, w / 2]);
            rows.push([day(i), 'vo', 'atlas', w], [day(i), 'vo_direction', 'atlas write', w]);
          }
          await db.query(
            `INSERT INTO dcache_probe.stats_day (day, dimension, key, transfers, bytes)
             SELECT d::date, k1, k2, 1, b::bigint FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[]) AS u(d, k1, k2, b)`,
            [rows.map((r) => r[0]), rows.map((r) => r[1]), rows.map((r) => r[2]), rows.map((r) => r[3])],
          );
          const outlook = new Outlook(pool, { siteBytes: 1e9, storageClasses: { [ATLAS]: 1e9 } }, () => NOW);
          const removedSite: Record<string, number> = { [day(-4)]: 1000, [day(-2)]: 800, [day(-1)]: 2000 };
          const removedAtlas: Record<string, number> = { [day(-4)]: 1000, [day(-2)]: 800 };
          const counted = (d: string) => d >= day(-5);

          const site = await outlook.answer({ scope: 'site', key: null, metric: 'growth' });
          assert.equal(site.growthMeasured, true);
          assert.deepEqual(site.removals, { countedDays: 5, removals: 6, sized: 4, coverage: 4 / 6 });
          assert.match(site.basis, /^bytes written minus the bytes of removed files whose write is in the billing history \(coverage 66\.6 %/);
          assert.deepEqual(
            site.history,
            Object.keys(written).map((d) => ({ day: d, value: counted(d) ? written[d]! - (removedSite[d] ?? 0) : null })),
          );
          assert.equal(site.forecast.length, 365);
          assert.equal(site.capacity!.basis, 'growth');
          const csv = (await outlook.csv({ scope: 'site', key: null, metric: 'growth' })).body;
          assert.match(csv, new RegExp(`^${day(-6)},history,,`, 'm'), 'a day not counted is empty, not "null"');
          assert.match(csv, new RegExp(`^${day(-1)},history,${written[day(-1)]! - 2000},`, 'm'));

          const sc = await outlook.answer({ scope: 'storage_class', key: ATLAS, metric: 'growth' });
          assert.equal(sc.growthMeasured, true);
          assert.deepEqual(
            sc.history,
            Object.keys(written).map((d) => ({ day: d, value: counted(d) ? written[d]! / 2 - (removedAtlas[d] ?? 0) : null })),
          );
          assert.equal(sc.capacity!.basis, 'growth');

          const vo = await outlook.answer({ scope: 'vo', key: 'atlas', metric: 'growth' });
          const voWritten = await outlook.answer({ scope: 'vo', key: 'atlas', metric: 'written' });
          assert.equal(vo.growthMeasured, false);
          assert.equal(vo.basis, VO_GROWTH_BASIS);
          assert.deepEqual(vo.history, voWritten.history);

          // Written stays written; its capacity date is growth's.
          const w = await outlook.answer({ scope: 'site', key: null, metric: 'written' });
          assert.deepEqual(w.history, Object.keys(written).map((d) => ({ day: d, value: written[d] })));
          assert.deepEqual(w.capacity, site.capacity);
        });

        it('runs as the runtime role of migrate --grant-to', async () => {
          const role = `probe_removals_${process.pid}`;
          await adminQuery(`DROP ROLE IF EXISTS ${role}`);
          await adminQuery(`CREATE ROLE ${role} LOGIN`);
          const rolePool = createPool({ url: databaseUrl(db.name, role), timeZone: 'UTC' });
          try {
            await grantRuntimeRole(db.url, role);
            const r = await countRemovals(rolePool, options({ sinceMs: TODAY_MS - 7 * DAY_MS }));
            assert.deepEqual([r.daysCounted, r.daysSkipped, r.complete], [2, 5, true]);
            await pruneStatistics(rolePool, { minuteHours: 1, hourDays: 1, dayDays: 3650, alertDays: 1 });
            // Not granted the removal tables (an upgrade without --grant-to): growth is the bytes written, the outlook still answers.
            await db.query(`REVOKE ALL ON dcache_probe.stats_removal_day, dcache_probe.stats_removal_counted FROM ${role}`);
            const a = await new Outlook(rolePool, { siteBytes: 0, storageClasses: {} }, () => NOW).answer({ scope: 'site', key: null, metric: 'growth' });
            assert.deepEqual([a.growthMeasured, a.removals.countedDays, a.history.at(-1)!.value], [false, 0, 10_000 - 100]);
          } finally {
            await rolePool.end();
            await db.query(`REASSIGN OWNED BY ${role} TO CURRENT_USER`);
            await db.query(`DROP OWNED BY ${role}`);
            await adminQuery(`DROP ROLE IF EXISTS ${role}`);
          }
        });
      }
    });
  }

  it('schedules: settled days newest first, the next run after UTC midnight', () => {
    const noon = Date.parse('2026-03-10T12:00:00Z');
    assert.deepEqual(settledDaysNewestFirst(Date.parse('2026-03-07T15:00:00Z'), noon, 300_000), ['2026-03-09', '2026-03-08', '2026-03-07']);
    assert.deepEqual(settledDaysNewestFirst(Date.parse('2026-03-07T15:00:00Z'), Date.parse('2026-03-10T00:02:00Z'), 300_000), ['2026-03-08', '2026-03-07']);
    assert.equal(noon + nextRunDelayMs(noon, 300_000), Date.parse('2026-03-11T00:06:00Z'));
  });
});
