/**
 * The claim (`CaptureQueue.claim`): which rows are ready, which door row comes with a mover,
 * and the leases (migration 008): what a live lease holds is left out, an expired one is given
 * back with its keys, and a lost lease's acknowledgement is fenced off.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { deliveryKey } from '../src/db/delivery-key';
import { CaptureQueue, pickQuery } from '../src/db/queue';
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
        const batch = await queue.pickAndLease(client, limit, grace, 'test', 60);
        const rows = batch === null ? [] : await queue.leasedRows(client, batch);
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

    /** One claim as the delivery makes it: under the claim lock, leasing what it returns. */
    const claimAndLease = async (limit: number, owner: string, leaseSeconds = 60): Promise<{ batch: string; transactions: string[] }> => {
      const client = await connect();
      await client.query('BEGIN');
      try {
        await queue.claimLock(client);
        await queue.expireLeases(client);
        const batch = (await queue.pickAndLease(client, limit, GRACE, owner, leaseSeconds))!;
        await client.query('COMMIT');
        const rows = await queue.leasedRows(client, batch);
        const keys = rows.map((r) => deliveryKey(r.source, String(r.record.transaction)));
        await queue.renewAndReserve(client, batch, leaseSeconds, keys);
        return { batch, transactions: rows.map((r) => r.record.transaction as string) };
      } catch (err) {
        await client.query('ROLLBACK');
        throw err;
      }
    };

    it('LIMIT counts ready rows only, and rows a live lease holds are left out without any row lock', async () => {
      await db.query('DELETE FROM dcache_probe.claim');
      await db.query('DELETE FROM dcache_probe.capture_queue');
      for (let i = 1; i <= 6; i++) {
        await mover(`r${i}`, `door:x:${i}`, `P${i}`);
        if (i % 2 === 0) await door(`door:x:${i}`, `P${i}`, '2024-05-01 10:00:00', `door-${i}`);
      }
      const a = await claimAndLease(1, 'probe-a');
      const b = await claimAndLease(1, 'probe-b');
      assert.deepEqual([a.transactions, b.transactions], [['r2'], ['r4']]);
      // Nothing of the queue is locked: the leases are committed rows, not open transactions.
      const free = await db.query(`SELECT record ->> 'transaction' AS t FROM dcache_probe.capture_queue ORDER BY id FOR UPDATE SKIP LOCKED`);
      assert.equal(free.rows.length, 6);
      assert.deepEqual(await claimed(), [['r6', 'door-6']]);
    });

    it('gives an expired lease back: its rows are claimable again and the keys it reserved are free', async () => {
      await db.query('DELETE FROM dcache_probe.claim');
      await db.query('DELETE FROM dcache_probe.delivered_key');
      await db.query('DELETE FROM dcache_probe.capture_queue');
      await mover('e1', '<undefined>');
      await mover('e2', '<undefined>');
      const dead = await claimAndLease(1, 'killed-probe');
      assert.deepEqual(dead.transactions, ['e1']);
      const key = deliveryKey('billinginfo', 'e1');
      const client = await connect();
      assert.equal((await queue.keyStates(client, [key])).get(key), 'in-flight');
      // The killed probe renews no more; its lease runs out.
      await db.query(`UPDATE dcache_probe.claim SET leased_until = now() - interval '1 second' WHERE batch = $1`, [dead.batch]);
      await client.query('BEGIN');
      const expired = await queue.expireLeases(client);
      await client.query('COMMIT');
      assert.deepEqual(expired, [{ owner: 'killed-probe', rows: 1 }]);
      assert.equal((await queue.keyStates(client, [key])).has(key), false, 'the key is free again');
      assert.deepEqual((await claimAndLease(10, 'survivor')).transactions, ['e1', 'e2']);
      // The killed probe's acknowledgement, had it come back, is refused by the fence.
      assert.equal(await queue.renewLease(client, dead.batch, 30), false);
      await client.query('BEGIN');
      assert.equal(await queue.endLease(client, dead.batch), false);
      await client.query('ROLLBACK');
    });

    it('a key is in flight while its lease lives, delivered once the lease ends, free once it is given back', async () => {
      await db.query('DELETE FROM dcache_probe.claim');
      await db.query('DELETE FROM dcache_probe.delivered_key');
      await db.query('DELETE FROM dcache_probe.capture_queue');
      await mover('k1', '<undefined>');
      await mover('k2', '<undefined>');
      const k1 = deliveryKey('billinginfo', 'k1');
      const k2 = deliveryKey('billinginfo', 'k2');
      const one = await claimAndLease(1, 'p');
      const two = await claimAndLease(1, 'p');
      const client = await connect();
      assert.deepEqual([...(await queue.keyStates(client, [k1, k2])).values()], ['in-flight', 'in-flight']);
      await client.query('BEGIN');
      assert.equal(await queue.endLease(client, one.batch), true);
      await client.query('COMMIT');
      await queue.releaseLease(client, two.batch);
      const states = await queue.keyStates(client, [k1, k2]);
      assert.equal(states.get(k1), 'delivered');
      assert.equal(states.has(k2), false);
      // A released lease's rows are claimable again; an ended one's rows were the acknowledger's to delete.
      assert.deepEqual((await claimed()).map(([t]) => t), ['k1', 'k2']);
    });

    it('leaves leased rows out with a hashed lookup however many dead lease versions the table holds', async () => {
      await db.query('DELETE FROM dcache_probe.claim');
      await db.query('DELETE FROM dcache_probe.capture_queue');
      await mover('h1', '<undefined>');
      // What a catch-up leaves before vacuum comes (autovacuum is off here): 4,000 versions of
      // lease rows (about 1,300 batches), each 500 ids, inserted and deleted. Past about 650
      // batches the planner, sizing a subquery on the table by its pages, stopped hashing it
      // (bench/claim-ab.ts --pick-growth).
      // (Consecutive queue ids, as a lease holds: compressed, each version stays in the table's
      // own pages, about 1.5 kB, which is what the planner sizes the table by.)
      await db.query(`INSERT INTO dcache_probe.claim (owner, ids, keys, leased_until)
                      SELECT 'bench', ARRAY(SELECT (1e9 + b * 500 + i)::bigint FROM generate_series(1, 500) AS i), '{}', now()
                        FROM generate_series(1, 4000) AS b`);
      await db.query('DELETE FROM dcache_probe.claim');
      const { rows } = await db.query(`EXPLAIN ${pickQuery('"public".doorinfo')}`, [500, GRACE]);
      const plan = rows.map((r) => r['QUERY PLAN'] as string).join('\n');
      assert.match(plan, /NOT \(hashed SubPlan/, plan);
      assert.deepEqual(await claimed(), [['h1', null]]);
    });

    it('returns NULL as the datestamp of an unreadable value instead of failing', async () => {
      await db.query('DELETE FROM dcache_probe.capture_queue');
      await db.query(`INSERT INTO dcache_probe.capture_queue (source, record) VALUES ('storageinfo', '{"transaction": "bad", "datestamp": "2023-02-30 10:00:00"}')`);
      const client = await connect();
      await client.query('BEGIN');
      try {
        const [row] = await queue.leasedRows(client, (await queue.pickAndLease(client, 10, GRACE, 'test', 60))!);
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
          const { rows } = await client.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${pickQuery('"public".doorinfo')}`, [500, GRACE]);
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
