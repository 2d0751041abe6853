/**
 * The delivery key (src/db/delivery-key.ts): its TypeScript and SQL forms agree, run in the real
 * PostgreSQL, on awkward transaction ids; and every path that uses the SQL form (the backfill's
 * "already delivered" filter, the quarantine's release of a key on retry) finds the key the live
 * delivery reserved, for a transaction with surrounding spaces too.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pg from 'pg';
import { countRangeRows } from '../src/db/backfill';
import { billingTable } from '../src/db/billing';
import { deliveryKey, deliveryKeySql } from '../src/db/delivery-key';
import { retryQuarantine } from '../src/features/quarantine';
import type { BillingDatabase } from './helpers/database';
import { withDatabaseAndPool } from './helpers/fixture';

const TRANSACTIONS = [
  'pool:pool_r01:1710000000000-abc-1',
  '  pool:pool_r01:1710000000000-abc-2  ',
  ' leading',
  'trailing ',
  '\tpool:tabbed\t',
  '\n newline \r\n',
  'ünïcødé:事务:😀',
  '\u00a0nbsp\u2003em-space\u3000',
  '',
  ' ',
  '\t',
];

describe('the delivery key', () => {
  let db: BillingDatabase;
  let pool: pg.Pool;
  withDatabaseAndPool('modern', (d, p) => ((db = d), (pool = p)));

  it('is the same in TypeScript and in SQL, for plain values and for a jsonb field (untrimmed, UTF-8)', async () => {
    for (const source of ['billinginfo', 'storageinfo']) {
      for (const tx of TRANSACTIONS) {
        const { rows } = await pool.query<{ plain: string; field: string }>(
          `SELECT ${deliveryKeySql('$1::text', '$2::text')} AS plain,
                  ${deliveryKeySql('r.source', "r.record ->> 'transaction'")} AS field
             FROM (SELECT $1::text AS source, jsonb_build_object('transaction', $2::text) AS record) r`,
          [source, tx],
        );
        const expected = deliveryKey(source, tx);
        assert.equal(rows[0]!.plain, expected, `${source} ${JSON.stringify(tx)}`);
        assert.equal(rows[0]!.field, expected, `${source} ${JSON.stringify(tx)} from jsonb`);
      }
    }
    // Surrounding spaces are part of the transaction: a different key.
    assert.notEqual(deliveryKey('billinginfo', ' t1 '), deliveryKey('billinginfo', 't1'));
  });

  it('is NULL in SQL for a missing transaction (it matches no delivered key)', async () => {
    const { rows } = await pool.query(`SELECT ${deliveryKeySql("'billinginfo'", "'{}'::jsonb ->> 'transaction'")} AS key`);
    assert.equal(rows[0]!.key, null);
  });

  it("the backfill's filter knows a delivered transaction with surrounding spaces, and skips blank ones", async () => {
    const spaced = '  pool:spaced:1-backfill  ';
    await pool.query('ALTER TABLE billinginfo DISABLE TRIGGER dcache_probe_capture');
    try {
      for (const [tx, i] of [[spaced, 1], ['', 2], ['   ', 3], ['pool:plain:2-backfill', 4]] as const) {
        await pool.query(
          `INSERT INTO billinginfo (datestamp, cellname, action, transaction, pnfsid, fullsize, transfersize, isnew, protocol, initiator, p2p, errorcode, errormessage)
           VALUES (now() - interval '1 hour', 'pool_r01@pool_r01Domain', 'transfer', $1, $2, 1, 1, true, 'Http-1.1', '<undefined>', false, 0, '')`,
          [tx, `0000KEY${i}`],
        );
      }
    } finally {
      await pool.query('ALTER TABLE billinginfo ENABLE TRIGGER dcache_probe_capture');
    }
    await pool.query('INSERT INTO dcache_probe.delivered_key (key) VALUES ($1)', [deliveryKey('billinginfo', spaced)]);
    const client = await pool.connect();
    try {
      const since = new Date(Date.now() - 2 * 3_600_000).toISOString();
      const until = new Date(Date.now() + 60_000).toISOString();
      const row = await countRangeRows(client, billingTable('public', 'billinginfo'), { since, until, source: 'billinginfo' }, null);
      assert.deepEqual(
        { scanned: row.scanned, copied: row.copied, alreadySent: row.already_sent, noTransaction: row.no_transaction },
        { scanned: 4, copied: 1, alreadySent: 1, noTransaction: 2 },
      );
    } finally {
      client.release();
    }
  });

  it("the quarantine's retry releases the key the delivery reserved for a transaction with surrounding spaces", async () => {
    const spaced = ' pool:spaced:3-quarantine\t';
    const key = deliveryKey('billinginfo', spaced);
    await pool.query('INSERT INTO dcache_probe.delivered_key (key) VALUES ($1)', [key]);
    const { rows } = await pool.query<{ id: string }>(
      `INSERT INTO dcache_probe.quarantine (source, captured_at, record, stage, reason)
       VALUES ('billinginfo', now(), jsonb_build_object('transaction', $1::text), 'identity', 'test') RETURNING id`,
      [spaced],
    );
    assert.equal(await retryQuarantine(pool, { ids: [rows[0]!.id] }), 1);
    const left = await pool.query('SELECT 1 FROM dcache_probe.delivered_key WHERE key = $1', [key]);
    assert.equal(left.rowCount, 0, 'the key was released');
    const queued = await pool.query(`SELECT record ->> 'transaction' AS tx FROM dcache_probe.capture_queue`);
    assert.deepEqual(queued.rows, [{ tx: spaced }]);
  });
});
