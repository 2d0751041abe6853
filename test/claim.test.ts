/**
 * The claim (`CaptureQueue.claim`): which rows are ready, which door row comes with a mover,
 * and that FOR UPDATE SKIP LOCKED with LIMIT locks exactly the rows it returns.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { CaptureQueue, claimQuery } from '../src/queue';
import { createBillingDatabase, type BillingDatabase } from './helpers/database';

const GRACE = 120;

for (const form of ['modern', 'legacy'] as const) {
  describe(`the claim on the ${form} billing schema`, () => {
    let db: BillingDatabase;
    const queue = new CaptureQueue('public', (name) => pg.escapeIdentifier(name));
    const clients: pg.Client[] = [];
    const connect = async (): Promise<pg.Client> => {
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      clients.push(client);
      return client;
    };
    before(async () => {
      db = await createBillingDatabase(form);
    });
    after(async () => {
      await Promise.all(clients.map((c) => c.end()));
      await db.drop();
    });

    const mover = (transaction: string, initiator: string | null, pnfsid = 'AB01') =>
      db.query(`INSERT INTO billinginfo (datestamp, cellname, action, transaction, pnfsid, initiator) VALUES (now(), 'pool1@d', 'transfer', $1, $2, $3)`, [
        transaction,
        pnfsid,
        initiator,
      ]);
    const door = (transaction: string, pnfsid: string, datestamp: string, cellname: string) =>
      db.query(`INSERT INTO doorinfo (datestamp, cellname, action, transaction, pnfsid) VALUES ($1, $2, 'request', $3, $4)`, [datestamp, cellname, transaction, pnfsid]);
    /** Claims in a transaction of its own and rolls back: [transaction, door cellname or null][] */
    const claimed = async (limit = 100, grace = GRACE): Promise<[string, string | null][]> => {
      const client = await connect();
      await client.query('BEGIN');
      try {
        const rows = await queue.claim(client, limit, grace);
        return rows.map((r) => [r.record.transaction as string, r.door === null ? null : (r.door.cellname as string)]);
      } finally {
        await client.query('ROLLBACK');
      }
    };

    it('a mover waits for its door row until the grace period ends; other rows are ready at once', async () => {
      await db.query('DELETE FROM dcache_probe.capture_queue');
      await mover('m-waits', 'door:GFTP@d:1');
      await mover('m-door', 'door:GFTP@d:2');
      await door('door:GFTP@d:2', 'AB01', '2024-05-01 10:00:01', 'GFTP-b@d');
      await door('door:GFTP@d:2', 'AB01', '2024-05-01 10:00:00', 'GFTP-c@d');
      await door('door:GFTP@d:2', 'AB01', '2024-05-01 10:00:00', 'GFTP-a@d');
      await door('door:GFTP@d:2', 'OTHER', '2024-05-01 09:00:00', 'wrong-pnfsid@d');
      await mover('m-p2p', 'pool:pool2@d:42');
      await mover('m-undefined', '<undefined>');
      await mover('m-empty', '');
      await mover('m-null', null);
      await db.query(`INSERT INTO storageinfo (datestamp, cellname, transaction, pnfsid) VALUES (now(), 'pool1@d', 'tape-1', 'AB01')`);

      // The earliest door row by (datestamp, cellname), with the same pnfsid.
      assert.deepEqual(await claimed(), [
        ['m-door', 'GFTP-a@d'],
        ['m-p2p', null],
        ['m-undefined', null],
        ['m-empty', null],
        ['m-null', null],
        ['tape-1', null],
      ]);
      // Past the grace period every row is ready, and a mover that did not wait still gets its door.
      await db.query(`UPDATE dcache_probe.capture_queue SET captured_at = now() - interval '121 seconds' WHERE record ->> 'transaction' IN ('m-waits', 'm-door')`);
      assert.deepEqual((await claimed()).slice(0, 2), [
        ['m-waits', null],
        ['m-door', 'GFTP-a@d'],
      ]);
      assert.equal((await claimed(100, 0)).length, 7);
      // The door row arrives: the mover is ready within the grace period too.
      await db.query(`UPDATE dcache_probe.capture_queue SET captured_at = now()`);
      await door('door:GFTP@d:1', 'AB01', '2024-05-01 10:00:00', 'GFTP-d@d');
      assert.deepEqual((await claimed()).slice(0, 2), [
        ['m-waits', 'GFTP-d@d'],
        ['m-door', 'GFTP-a@d'],
      ]);
    });

    it('locks exactly the rows it returns: LIMIT counts ready rows only, and rows another claim holds are skipped', async () => {
      await db.query('DELETE FROM dcache_probe.capture_queue');
      for (let i = 1; i <= 6; i++) {
        await mover(`r${i}`, `door:x:${i}`, `P${i}`);
        if (i % 2 === 0) await door(`door:x:${i}`, `P${i}`, '2024-05-01 10:00:00', `door-${i}`);
      }
      const first = await connect();
      const second = await connect();
      const third = await connect();
      await first.query('BEGIN');
      await second.query('BEGIN');
      await third.query('BEGIN');
      try {
        const a = (await queue.claim(first, 1, GRACE)).map((r) => r.record.transaction);
        const b = (await queue.claim(second, 1, GRACE)).map((r) => r.record.transaction);
        assert.deepEqual([a, b], [['r2'], ['r4']]);
        // Everything else is unlocked: the waiting movers and the ready row past the LIMIT.
        const free = await third.query(`SELECT record ->> 'transaction' AS t FROM dcache_probe.capture_queue ORDER BY id FOR UPDATE SKIP LOCKED`);
        assert.deepEqual(
          free.rows.map((r) => r.t),
          ['r1', 'r3', 'r5', 'r6'],
        );
      } finally {
        await Promise.all([first, second, third].map((c) => c.query('ROLLBACK')));
      }
    });

    it('returns NULL as the datestamp of an unreadable value instead of failing', async () => {
      await db.query('DELETE FROM dcache_probe.capture_queue');
      await db.query(`INSERT INTO dcache_probe.capture_queue (source, record) VALUES ('storageinfo', '{"transaction": "bad", "datestamp": "2023-02-30 10:00:00"}')`);
      const client = await connect();
      await client.query('BEGIN');
      try {
        const [row] = await queue.claim(client, 10, GRACE);
        assert.equal(row?.datestampMs, null);
      } finally {
        await client.query('ROLLBACK');
      }
    });

    it('finds door rows in tables that inherit from doorinfo (a partitioned or archived billing database)', async () => {
      await db.query('DELETE FROM dcache_probe.capture_queue');
      await db.query('CREATE TABLE doorinfo_archive () INHERITS (doorinfo)');
      try {
        // The child's first row has the ctid (0,1), as has the parent's first row (this one, or
        // an earlier test's): a ctid does not identify a door row across the two.
        await door('door:GFTP@d:other', 'AB08', '2024-05-01 09:00:00', 'GFTP-other@d');
        await db.query(`INSERT INTO doorinfo_archive (datestamp, cellname, action, transaction, pnfsid) VALUES ('2024-05-01 10:00:00', 'GFTP-archived@d', 'request', 'door:GFTP@d:arch', 'AB09')`);
        await mover('m-archived', 'door:GFTP@d:arch', 'AB09');
        assert.deepEqual(await claimed(), [['m-archived', 'GFTP-archived@d']]);
      } finally {
        await db.query('DROP TABLE doorinfo_archive');
      }
    });

    if (form === 'modern') {
      it('never scans all of doorinfo, even when doorinfo has no statistics', async () => {
        await db.query('DELETE FROM dcache_probe.capture_queue');
        await db.query('ALTER TABLE doorinfo SET (autovacuum_enabled = false)');
        await db.query(`INSERT INTO doorinfo (datestamp, cellname, action, transaction, pnfsid)
                        SELECT now(), 'door@d', 'request', 'door:h:' || i, 'H' || i FROM generate_series(1, 20000) AS i`);
        await db.query(`INSERT INTO billinginfo (datestamp, cellname, action, transaction, pnfsid, initiator)
                        SELECT now(), 'pool1@d', 'transfer', 'm' || i, 'H' || i, 'door:h:' || i FROM generate_series(1, 600) AS i`);
        const { rows: stats } = await db.query(`SELECT count(*)::int AS n FROM pg_stats WHERE tablename = 'doorinfo'`);
        assert.equal(stats[0]!.n, 0, 'doorinfo has no statistics');
        const client = await connect();
        await client.query('BEGIN');
        try {
          const { rows } = await client.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${claimQuery('"public".doorinfo')}`, [500, GRACE]);
          const plan = rows[0]['QUERY PLAN'][0].Plan;
          assert.equal(plan['Actual Rows'], 500);
          const scans: string[] = [];
          const walk = (n: { 'Node Type': string; 'Relation Name'?: string; 'Actual Loops': number; Plans?: unknown[] }): void => {
            if (n['Relation Name'] === 'doorinfo' && n['Actual Loops'] > 0) scans.push(n['Node Type']);
            for (const p of n.Plans ?? []) walk(p as typeof n);
          };
          walk(plan);
          assert.ok(scans.length > 0 && !scans.includes('Seq Scan'), `doorinfo read by: ${scans.join(', ')}`);
        } finally {
          await client.query('ROLLBACK');
        }
      });
    }
  });
}
