import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { LATEST_VERSION, listMigrations, migrate } from '../src/db/migrations';
import { pruneOldState } from '../src/db/housekeeping';
import { CAPTURE_LOCK, WAKE_CHANNEL, armWakeUp, captureBarrier } from '../src/db/wake-up';
import { createBillingDatabase, adminQuery, type BillingDatabase } from './helpers/database';
import { databaseUrl, waitFor } from './helpers/env';
import { startCollector } from './helpers/collector';
import { pollOnce, runCli } from './helpers/probe';

const MOVER = `INSERT INTO billinginfo (datestamp, cellname, action, transaction, pnfsid, fullsize, transfersize, isnew, client, connectiontime, errorcode, errormessage, protocol, initiator)
               VALUES (now(), 'pool1@dCacheDomain', 'transfer', $1, '0000AB', 10, 10, false, '192.0.2.1', 5, 0, '', 'GFtp-2.0', 'door:GFTP@d:1')`;

for (const form of ['modern', 'legacy'] as const) {
  describe(`capture triggers on the ${form} billing schema`, () => {
    let db: BillingDatabase;
    before(async () => {
      db = await createBillingDatabase(form);
    });
    after(async () => db.drop());

    it('migrate is idempotent: a second run applies nothing', async () => {
      const again = await migrate(db.url, 'public');
      assert.deepEqual(again.applied, []);
      assert.equal(again.version, LATEST_VERSION);
      const { rows } = await db.query('SELECT count(*)::int AS n FROM dcache_probe.schema_migration');
      assert.equal(rows[0]!.n, listMigrations().length, 'one row per migration file');
    });

    it('queues every row of a multi-row insert with all its columns, in the inserting transaction', async () => {
      await db.query('DELETE FROM dcache_probe.capture_queue');
      await db.query(`INSERT INTO billinginfo (datestamp, transaction, transfersize, protocol) VALUES (now(), 'tx-a', 1, 'Http-1.1'), (now(), 'tx-b', 2, 'Http-1.1')`);
      const { rows } = await db.query(`SELECT source, record FROM dcache_probe.capture_queue ORDER BY id`);
      assert.deepEqual(rows.map((r) => [r.source, r.record.transaction, Number(r.record.transfersize)]), [['billinginfo', 'tx-a', 1], ['billinginfo', 'tx-b', 2]]);
      assert.ok('datestamp' in rows[0]!.record && 'initiator' in rows[0]!.record);
    });

    it('captures nothing from a rolled-back insert', async () => {
      await db.query('DELETE FROM dcache_probe.capture_queue');
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      await client.query('BEGIN');
      await client.query(MOVER, ['tx-rolled-back']);
      await client.query('ROLLBACK');
      await client.end();
      const { rows } = await db.query('SELECT count(*)::int AS n FROM dcache_probe.capture_queue');
      assert.equal(rows[0]!.n, 0);
    });

    it('captures storageinfo rows (tape)', async () => {
      await db.query('DELETE FROM dcache_probe.capture_queue');
      await db.query(`INSERT INTO storageinfo (datestamp, cellname, action, transaction, pnfsid, fullsize, storageclass, connectiontime, queuedtime, errorcode, errormessage)
                      VALUES (now(), 'pool1@d', 'store', 'tape-1', 'AB', 100, 'cms:raw@osm', 10, 20, 0, '')`);
      const { rows } = await db.query(`SELECT source FROM dcache_probe.capture_queue`);
      assert.deepEqual(rows.map((r) => r.source), ['storageinfo']);
    });

    if (form === 'modern') {
      it('does not capture pool-to-pool copies', async () => {
        await db.query('DELETE FROM dcache_probe.capture_queue');
        await db.query(`INSERT INTO billinginfo (datestamp, transaction, p2p) VALUES (now(), 'p2p-1', true), (now(), 'user-1', false), (now(), 'old-1', NULL)`);
        // Only the p2p column decides, not a value that reads like it.
        await db.query(`INSERT INTO billinginfo (datestamp, transaction, errormessage, p2p) VALUES (now(), 'user-2', '"p2p":true', false), (now(), '"p2p":"true"', 'x\\', NULL)`);
        const { rows } = await db.query(`SELECT record->>'transaction' AS t FROM dcache_probe.capture_queue ORDER BY id`);
        assert.deepEqual(rows.map((r) => r.t), ['user-1', 'old-1', 'user-2', '"p2p":"true"']);
      });
    }

    it("never fails dCache's insert: renaming our queue is refused while capture is on; with the guard disabled the capture is skipped and counted, and status says so", async () => {
      await assert.rejects(db.query('ALTER TABLE dcache_probe.capture_queue RENAME TO capture_queue_broken'), /dcache-transfer-probe: refused/);
      await db.query('ALTER EVENT TRIGGER dcache_probe_guard_end DISABLE');
      try {
        await db.query('ALTER TABLE dcache_probe.capture_queue RENAME TO capture_queue_broken');
        const during = await runCli(['status', '--db-url', db.url]);
        assert.match(during.stdout, /capture cannot work: table dcache_probe\.capture_queue is missing/);
        assert.match(during.stdout, /WARNINGS:\n {2}- the guard that refuses DDL breaking the capture/);
        await db.query(MOVER, ['tx-while-broken']);
        await db.query(`INSERT INTO doorinfo (datestamp, transaction, pnfsid) VALUES (now(), 'door:x', 'AB')`);
        const { rows } = await db.query(`SELECT count(*)::int AS n FROM billinginfo WHERE transaction = 'tx-while-broken'`);
        assert.equal(rows[0]!.n, 1, "dCache's row is stored");
        const failures = await db.query('SELECT last_value::int AS n FROM dcache_probe.capture_failure');
        assert.equal(failures.rows[0]!.n, 1);
      } finally {
        await db.query('ALTER TABLE dcache_probe.capture_queue_broken RENAME TO capture_queue').catch(() => undefined);
        await db.query('ALTER EVENT TRIGGER dcache_probe_guard_end ENABLE');
      }
      const status = await runCli(['status', '--db-url', db.url]);
      assert.equal(status.code, 1);
      assert.match(status.stdout, /1 captures were skipped because the queue could not be written/);
    });

    it('status says loudly when a trigger is missing', async () => {
      await db.query('ALTER TABLE billinginfo DISABLE TRIGGER dcache_probe_capture');
      try {
        const status = await runCli(['status', '--db-url', db.url]);
        assert.equal(status.code, 1);
        assert.match(status.stdout, /trigger billinginfo\.dcache_probe_capture is missing or disabled/);
      } finally {
        await db.query('ALTER TABLE billinginfo ENABLE TRIGGER dcache_probe_capture');
      }
    });
  });
}

describe('the wake-up protocol', () => {
  let db: BillingDatabase;
  let listener: pg.Client;
  const notifications: string[] = [];
  before(async () => {
    db = await createBillingDatabase('modern');
    listener = new pg.Client({ connectionString: db.url });
    await listener.connect();
    listener.on('notification', (n) => notifications.push(n.payload ?? ''));
    await listener.query(`LISTEN ${WAKE_CHANNEL}`);
  });
  after(async () => {
    await listener.end();
    await db.drop();
  });

  it('notifies once after the listener arms, then stays quiet until it arms again', async () => {
    await armWakeUp(listener);
    notifications.length = 0;
    await db.query(MOVER, ['w-1']);
    await waitFor('the first notification', () => notifications.length === 1);
    await db.query(MOVER, ['w-2']);
    // Round-trip on the listening connection: notifications sent before it are delivered first.
    await listener.query('SELECT 1');
    assert.equal(notifications.length, 1, 'unarmed inserts do not notify');
    await armWakeUp(listener);
    await db.query(`INSERT INTO doorinfo (datestamp, transaction, pnfsid) VALUES (now(), 'door:w', 'AB')`);
    await listener.query('SELECT 1');
    assert.equal(notifications.length, 1, 'door rows never notify (the probe looks again by itself while a mover waits)');
    await db.query(MOVER, ['w-3']);
    await waitFor('the notification after re-arming', () => notifications.length === 2);
  });

  it('checks the wake-up once per transaction: later statements of it only copy their rows', async () => {
    const fired = async () => Number((await db.query<{ v: string }>('SELECT last_value AS v FROM dcache_probe.wake_fired')).rows[0]!.v);
    const writer = new pg.Client({ connectionString: db.url });
    await writer.connect();
    await armWakeUp(listener);
    await writer.query('BEGIN');
    await writer.query(MOVER, ['once-1']); // sees the armed listener: owes it the notification
    const afterFirst = await fired();
    await armWakeUp(listener); // armed again while the transaction is open
    await writer.query(MOVER, ['once-2']);
    assert.equal(await fired(), afterFirst, 'the second statement did not look at the wake-up again');
    // It did not need to: the first statement's shared capture lock lasts to the end of the
    // transaction, so the listener's barrier waits for the whole of it.
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    assert.equal(await captureBarrier(client, 100), false, 'the barrier waits for the open transaction');
    await writer.query('COMMIT');
    assert.equal(await captureBarrier(client, 100), true);
    const queued = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM dcache_probe.capture_queue WHERE record ->> 'transaction' LIKE 'once-%'");
    assert.equal(queued.rows[0]!.n, 2, 'both statements were captured');
    await client.end();
    await writer.end();
  });

  it('the barrier waits for an open capturing transaction, and gives up after its timeout without blocking writers for long', async () => {
    const writer = new pg.Client({ connectionString: db.url });
    await writer.connect();
    await writer.query('BEGIN');
    await writer.query(MOVER, ['w-open']);
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    assert.equal(await captureBarrier(client, 100), false, 'the barrier cannot pass an open capture');
    await writer.query('COMMIT');
    assert.equal(await captureBarrier(client, 100), true, 'and passes once it committed');
    // Advisory locks are per database; other databases on the server may hold the same key.
    const held = await db.query(
      `SELECT count(*)::int AS n FROM pg_locks
        WHERE locktype = 'advisory' AND objid = $1::bigint % 4294967296
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      [CAPTURE_LOCK],
    );
    assert.equal(held.rows[0]!.n, 0, 'no advisory lock is left behind');
    await client.end();
    await writer.end();
  });
});

describe('housekeeping', () => {
  it('forgets delivery keys past the dedup window and sent summaries past a week, nothing else', async () => {
    const db = await createBillingDatabase('modern');
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    try {
      await db.query(`INSERT INTO dcache_probe.delivered_key (key, delivered_at) VALUES
        ('00000000-0000-0000-0000-000000000001', now() - interval '49 hours'),
        ('00000000-0000-0000-0000-000000000002', now() - interval '47 hours')`);
      await db.query(`INSERT INTO dcache_probe.summary_state (hour, parts_closed, parts_sent) VALUES
        (date_trunc('hour', now()) - interval '8 days', 2, 1), (date_trunc('hour', now()) - interval '2 days', 1, 1)`);
      await db.query(`INSERT INTO dcache_probe.summary_group (hour, part, group_key, dimensions, njobs, bytes, duration_ms)
        SELECT hour, p, gen_random_uuid(), '{}', 1, 1, 1 FROM dcache_probe.summary_state, generate_series(1, 2) p`);
      assert.equal(await pruneOldState(pool, 48), 2, 'one key, one sent part older than a week');
      const keys = await db.query<{ key: string }>('SELECT key FROM dcache_probe.delivered_key');
      assert.deepEqual(keys.rows.map((r) => r.key), ['00000000-0000-0000-0000-000000000002']);
      const groups = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM dcache_probe.summary_group');
      assert.equal(groups.rows[0]!.n, 3, 'the unsent part and the recent hour are kept');
    } finally {
      await pool.end();
      await db.drop();
    }
  });
});

describe('installation and removal', () => {
  it('upgrading an installation from before migration 006 removes the doorinfo trigger and keeps capturing', async () => {
    const db = await createBillingDatabase('modern');
    try {
      // The state 005 left: 006 not applied, the doorinfo wake-up trigger and its functions there.
      await db.query('DELETE FROM dcache_probe.schema_migration WHERE version = 6');
      await db.query(`CREATE FUNCTION dcache_probe.wake_listener() RETURNS void LANGUAGE sql AS 'SELECT'`);
      await db.query(`CREATE FUNCTION dcache_probe.wake_on_door() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END'`);
      await db.query('CREATE TRIGGER dcache_probe_wake AFTER INSERT ON doorinfo FOR EACH STATEMENT EXECUTE FUNCTION dcache_probe.wake_on_door()');
      const upgraded = await migrate(db.url, 'public');
      assert.deepEqual(upgraded.applied.map((m) => m.version), [6]);
      const left = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE c.relname = 'doorinfo' AND NOT t.tgisinternal`);
      assert.equal(left.rows[0]!.n, 0, 'no trigger of ours on doorinfo');
      const functions = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_proc WHERE proname IN ('wake_on_door', 'wake_listener')`);
      assert.equal(functions.rows[0]!.n, 0);
      await db.query(MOVER, ['after-upgrade']);
      const queued = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM dcache_probe.capture_queue WHERE record ->> 'transaction' = 'after-upgrade'`);
      assert.equal(queued.rows[0]!.n, 1);
    } finally {
      await db.drop();
    }
  });

  it("uninstall removes all of ours and leaves dCache's tables, views and rows", async () => {
    const db = await createBillingDatabase('modern');
    try {
      await db.query(MOVER, ['kept-row']);
      const refused = await runCli(['uninstall', '--db-url', db.url]);
      assert.equal(refused.code, 1, 'refuses while a captured row is undelivered');
      assert.match(refused.stderr, /1 captured rows are not delivered yet/);
      const done = await runCli(['uninstall', '--db-url', db.url, '--force']);
      assert.equal(done.code, 0, done.stderr);
      const ours = await db.query(`SELECT (SELECT count(*)::int FROM pg_namespace WHERE nspname = 'dcache_probe') AS schemas,
                                          (SELECT count(*)::int FROM pg_trigger WHERE tgname LIKE 'dcache_probe%') AS triggers`);
      assert.deepEqual(ours.rows[0]!, { schemas: 0, triggers: 0 });
      const rows = await db.query(`SELECT count(*)::int AS n FROM billinginfo WHERE transaction = 'kept-row'`);
      assert.equal(rows.rows[0]!.n, 1);
      await db.query('SELECT * FROM transfer_record LIMIT 1');
      await db.query(MOVER, ['after-uninstall']);
    } finally {
      await db.drop();
    }
  });

  it('analyzes a doorinfo that has rows but no planner statistics, once', async () => {
    const db = await createBillingDatabase('modern', { migrate: false });
    try {
      await db.query('ALTER TABLE doorinfo SET (autovacuum_enabled = false)');
      await db.query(`INSERT INTO doorinfo (datestamp, transaction, pnfsid) SELECT now(), 'door:' || i, 'P' || i FROM generate_series(1, 1000) AS i`);
      const statistics = async () => (await db.query(`SELECT count(*)::int AS n FROM pg_stats WHERE tablename = 'doorinfo'`)).rows[0]!.n as number;
      assert.equal(await statistics(), 0);
      const first = await runCli(['migrate', '--db-url', db.url]);
      assert.equal(first.code, 0, first.stderr);
      assert.match(first.stdout, /analyzed public\.doorinfo: it had no planner statistics/);
      assert.ok((await statistics()) > 0);
      const again = await migrate(db.url, 'public');
      assert.equal(again.doorinfo, 'present');
    } finally {
      await db.drop();
    }
  });

  it('refuses to install on a database without billinginfo, naming the table', async () => {
    const db = await createBillingDatabase('modern', { migrate: false });
    try {
      await db.query('ALTER TABLE billinginfo RENAME TO not_billing');
      const result = await runCli(['migrate', '--db-url', db.url]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /no table public\.billinginfo/);
      const schema = await db.query(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'dcache_probe'`);
      assert.equal(schema.rows[0]!.n, 0, 'nothing is left half-installed');
    } finally {
      await db.drop();
    }
  });

  it('grants a runtime role only what the probe needs', async () => {
    const db = await createBillingDatabase('modern');
    const role = `probe_rt_${process.pid}`;
    try {
      await adminQuery(`DROP ROLE IF EXISTS ${role}`);
      await adminQuery(`CREATE ROLE ${role} LOGIN`);
      const granted = await runCli(['migrate', '--db-url', db.url, '--grant-to', role]);
      assert.equal(granted.code, 0, granted.stderr);
      const roleUrl = databaseUrl(db.name, role);
      // The role can do the probe's whole job: deliver, report status, handle the quarantine.
      await db.query(MOVER, ['delivered-as-role']);
      await db.query(`INSERT INTO doorinfo (datestamp, transaction, pnfsid, client, owner) VALUES (now(), 'door:GFTP@d:1', '0000AB', '192.0.2.9', '/CN=someone')`);
      const collector = await startCollector();
      try {
        const poll = await pollOnce({ dbUrl: roleUrl, collectorUrl: collector.url });
        assert.equal(poll.code, 0, poll.stderr);
        assert.deepEqual((await collector.records()).map((r) => r.localJobId), ['delivered-as-role']);
      } finally {
        await collector.stop();
      }
      const status = await runCli(['status', '--db-url', roleUrl]);
      assert.equal(status.code, 0, status.stdout + status.stderr);
      assert.equal((await runCli(['quarantine', 'list', '--db-url', roleUrl])).code, 0);
      // And nothing more.
      const client = new pg.Client({ connectionString: roleUrl });
      await client.connect();
      try {
        await assert.rejects(client.query(MOVER, ['not-allowed']), /permission denied/);
        await assert.rejects(client.query('DELETE FROM billinginfo'), /permission denied/);
        await assert.rejects(client.query('DROP TABLE dcache_probe.quarantine'), /must be owner/);
      } finally {
        await client.end();
      }
    } finally {
      await db.drop();
      await adminQuery(`DROP ROLE IF EXISTS ${role}`);
    }
  });
});
