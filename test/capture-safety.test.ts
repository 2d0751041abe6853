/**
 * The capture on dCache's insert path (sql/migrations/007_capture_without_subtransactions.sql):
 * it opens no subtransaction, and each way it could still fail is either refused by the guard,
 * harmless to dCache's insert, or one where dCache's own insert fails too (each test's name
 * says which). docs/ARCHITECTURE.md, "How capture could fail, and what protects dCache", lists
 * them with these tests.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { GUARD_MISSING, LOCK_TIMEOUT_MS, MigrationError, installedVersion, migrate, uninstall } from '../src/db/migrations';
import { CAPTURE_LOCK, WAKE_CHANNEL, armWakeUp } from '../src/db/wake-up';
import { adminQuery, createBillingDatabase, type BillingDatabase } from './helpers/database';
import { FIXTURES, PG_ADMIN_URL, databaseUrl, waitFor } from './helpers/env';
import { startPrivatePostgres, type PrivatePostgres } from './helpers/private-postgres';
import { runCli } from './helpers/probe';

const MOVER = `INSERT INTO billinginfo (datestamp, cellname, action, transaction, pnfsid, fullsize, transfersize, isnew, client, connectiontime, errorcode, errormessage, protocol, initiator)
               VALUES (now(), 'pool1@dCacheDomain', 'transfer', $1, '0000AB', 10, 10, false, '192.0.2.1', 5, 0, '', 'GFtp-2.0', $2)`;
const DOOR = `INSERT INTO doorinfo (datestamp, cellname, action, transaction, pnfsid, client, owner)
              VALUES (now(), 'GFTP-door@gridftpDomain', 'request', $1, '0000AB', '192.0.2.1', '/CN=someone')`;

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connect(url);
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * What dCache's billing writer sends: in the open transaction, `statements` single-row INSERTs
 * as prepared statements, a mover and its door row in turn.
 */
async function insertLikeDcache(client: pg.ClientBase, statements: number, tag: string): Promise<void> {
  for (let i = 0; i < statements; i++) {
    const n = Math.floor(i / 2);
    if (i % 2 === 0) await client.query({ name: 'dcache-mover', text: MOVER, values: [`${tag}-${n}`, `door:${tag}-${n}`] });
    else await client.query({ name: 'dcache-door', text: DOOR, values: [`door:${tag}-${n}`] });
  }
}

/** One mover row, in its own transaction, as dCache's writer at low load. */
async function insertMover(url: string, transaction: string): Promise<void> {
  await withClient(url, (c) => c.query(MOVER, [transaction, `door:${transaction}`]));
}

/**
 * Runs a dCache-shaped transaction of `statements` INSERTs and, before it commits, reads its
 * subtransactions from another session (pg_stat_get_backend_subxact: PostgreSQL >= 16).
 */
async function subtransactionsOf(url: string, statements: number, tag: string): Promise<{ count: number; overflowed: boolean }> {
  const writer = await connect(url);
  const observer = await connect(url);
  try {
    const pid = (await writer.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    await writer.query('BEGIN');
    await insertLikeDcache(writer, statements, tag);
    const { rows } = await observer.query<{ count: number; overflowed: boolean }>(
      `SELECT s.subxact_count AS count, s.subxact_overflowed AS overflowed
         FROM pg_stat_get_backend_idset() AS b, LATERAL pg_stat_get_backend_subxact(b) AS s
        WHERE pg_stat_get_backend_pid(b) = $1`,
      [pid],
    );
    await writer.query('COMMIT');
    return rows[0]!;
  } finally {
    await writer.end();
    await observer.end();
  }
}

async function queued(db: BillingDatabase, like: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM dcache_probe.capture_queue WHERE record ->> 'transaction' LIKE $1", [like]);
  return rows[0]!.n;
}

async function stored(url: string, transaction: string): Promise<number> {
  return withClient(url, async (c) => (await c.query<{ n: number }>('SELECT count(*)::int AS n FROM billinginfo WHERE transaction = $1', [transaction])).rows[0]!.n);
}

async function failures(db: BillingDatabase): Promise<number> {
  const { rows } = await db.query<{ n: string }>('SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS n FROM dcache_probe.capture_failure');
  return Number(rows[0]!.n);
}

async function captureProblems(url: string): Promise<string[]> {
  return withClient(url, async (c) => (await c.query<{ p: string[] }>('SELECT dcache_probe.capture_problems() AS p')).rows[0]!.p);
}

/** Two billing databases side by side: the capture of migration 007 (all migrations), and of 006. */
async function with006And007(adminUrl?: string): Promise<{ with007: BillingDatabase; with006: BillingDatabase; drop(): Promise<void> }> {
  const with007 = await createBillingDatabase('modern', { adminUrl });
  const with006 = await createBillingDatabase('modern', { adminUrl, migrate: false });
  await migrate(with006.url, 'public', { upTo: 6 });
  return { with007, with006, drop: async () => void (await Promise.all([with007.drop(), with006.drop()])) };
}

const STATEMENTS = 1000; // dCache's writers insert up to ~1,000 rows per transaction under load

describe('on PostgreSQL 18 (embedded: it reports subtransactions; a 512 kB NOTIFY queue)', () => {
  let server: PrivatePostgres;
  let with007: BillingDatabase;
  let with006: BillingDatabase;
  let dropAll: () => Promise<void>;
  before(async () => {
    server = await startPrivatePostgres({ settings: { max_notify_queue_pages: '64' } });
    ({ with007, with006, drop: dropAll } = await with006And007(server.url('postgres')));
  });
  after(async () => {
    await dropAll?.();
    await server?.stop();
  });

  it('a dCache transaction of 1,000 single-row INSERTs holds 0 subtransactions and is not overflowed with migration 007; with the 006 capture it holds 64 and is overflowed', async () => {
    assert.deepEqual(await subtransactionsOf(with007.url, STATEMENTS, 'pg18-007'), { count: 0, overflowed: false });
    assert.deepEqual(await subtransactionsOf(with006.url, STATEMENTS, 'pg18-006'), { count: 64, overflowed: true }, 'the 006 capture: a subtransaction in every capturing statement');
    assert.equal(await queued(with007, 'pg18-007-%'), STATEMENTS / 2, 'every mover captured');
    assert.equal(await queued(with006, 'pg18-006-%'), STATEMENTS / 2);
  });

  it("NOTIFY queue full: dCache's commit succeeds (the capture does not notify; the 006 capture failed the commit), and status warns", async () => {
    // A listener left in an open transaction does not read its notifications: the queue fills.
    const stuck = await connect(with007.url);
    try {
      await stuck.query('LISTEN filler');
      await stuck.query('BEGIN');
      await stuck.query('SELECT 1');
      await withClient(with007.url, async (filler) => {
        for (let batch = 0; ; batch++) {
          assert.ok(batch < 1000, 'the NOTIFY queue never filled');
          try {
            await filler.query(`SELECT pg_notify('filler', $1 || i || repeat('x', 7000)) FROM generate_series(1, 8) AS i`, [`${batch}:`]);
          } catch (err) {
            assert.match((err as Error).message, /too many notifications in the NOTIFY queue/);
            break;
          }
        }
      });
      for (const db of [with007, with006]) await withClient(db.url, (c) => armWakeUp(c)); // both would notify now
      await insertMover(with007.url, 'queue-full');
      assert.equal(await queued(with007, 'queue-full'), 1);
      await assert.rejects(insertMover(with006.url, 'queue-full-006'), /too many notifications in the NOTIFY queue/);
      assert.equal(await stored(with006.url, 'queue-full-006'), 0, 'with 006, dCache lost the row');
      const status = await runCli(['status', '--db-url', with007.url]);
      assert.match(status.stdout, /PostgreSQL's NOTIFY queue is \d+% full/);
    } finally {
      await stuck.end();
    }
  });

  it('status warns when the queue is not in the tablespace of billinginfo (a full disk would fail our capture first)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dcache-probe-ts-'));
    // The embedded server runs as "postgres" when the tests run as root.
    if (process.getuid?.() === 0) chownSync(dir, Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })), Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })));
    const tablespace = `probe_ts_${process.pid}`;
    try {
      await adminQuery(`CREATE TABLESPACE ${tablespace} LOCATION '${dir}'`, [], server.url('postgres'));
      await with007.query(`ALTER TABLE billinginfo SET TABLESPACE ${tablespace}`);
      const status = await runCli(['status', '--db-url', with007.url]);
      assert.match(status.stdout, /dcache_probe\.capture_queue is not in the tablespace of billinginfo/);
    } finally {
      await with007.query('ALTER TABLE billinginfo SET TABLESPACE pg_default').catch(() => undefined);
      await adminQuery(`DROP TABLESPACE IF EXISTS ${tablespace}`, [], server.url('postgres')).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a dCache transaction of 1,000 single-row INSERTs, on PostgreSQL 15 (127.0.0.1:5432)', () => {
  let with007: BillingDatabase;
  let with006: BillingDatabase;
  let dropAll: () => Promise<void>;
  before(async () => {
    ({ with007, with006, drop: dropAll } = await with006And007());
  });
  after(async () => dropAll?.());

  it('captures every mover of the transaction, with a capture function that has no EXCEPTION block (PostgreSQL 15 does not count subtransactions)', async () => {
    await withClient(with007.url, async (writer) => {
      await writer.query('BEGIN');
      await insertLikeDcache(writer, STATEMENTS, 'pg15-007');
      await writer.query('COMMIT');
    });
    assert.equal(await queued(with007, 'pg15-007-%'), STATEMENTS / 2);
    const source = async (db: BillingDatabase) => (await db.query<{ src: string }>("SELECT prosrc AS src FROM pg_proc WHERE oid = 'dcache_probe.capture_rows()'::regprocedure")).rows[0]!.src;
    assert.doesNotMatch(await source(with007), /\bEXCEPTION\b/i, 'no block that opens a subtransaction');
    assert.match(await source(with006), /\bEXCEPTION\b/i, 'the 006 capture had one');
  });

  it('checks once per transaction: a transaction that saw an armed listener notifies once; later ones stay quiet', async () => {
    const listener = await connect(with007.url);
    const notifications: string[] = [];
    listener.on('notification', (n) => notifications.push(n.channel));
    try {
      await listener.query(`LISTEN ${WAKE_CHANNEL}`);
      await armWakeUp(listener);
      await withClient(with007.url, async (writer) => {
        await writer.query('BEGIN');
        await insertLikeDcache(writer, 20, 'once');
        await writer.query('COMMIT');
        await writer.query('BEGIN');
        await insertLikeDcache(writer, 20, 'twice');
        await writer.query('COMMIT');
      });
      await waitFor('the notification', () => notifications.length >= 1);
      await listener.query('SELECT 1'); // anything sent before this round trip has been delivered
      assert.deepEqual(notifications, [WAKE_CHANNEL]);
      assert.equal(await queued(with007, 'once-%'), 10);
      assert.equal(await queued(with007, 'twice-%'), 10);
    } finally {
      await listener.end();
    }
  });
});

describe('with the guard (migrate run by a superuser): DDL that would leave the capture unable to work is refused', () => {
  let db: BillingDatabase;
  const nobody = `probe_nobody_${process.pid}`;
  let counter = 0;
  before(async () => {
    db = await createBillingDatabase('modern');
    await adminQuery(`DROP ROLE IF EXISTS ${nobody}`);
    await adminQuery(`CREATE ROLE ${nobody}`);
    await db.query(`CREATE FUNCTION public.refuse_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no'; END $$`);
  });
  after(async () => {
    await db?.drop();
    await adminQuery(`DROP ROLE IF EXISTS ${nobody}`);
  });

  /** dCache's insert still goes into billinginfo and the queue (the refused DDL changed nothing). */
  async function stillCaptures(): Promise<void> {
    const t = `after-refusal-${++counter}`;
    await insertMover(db.url, t);
    assert.equal(await queued(db, t), 1);
  }

  const refused: [string, string, RegExp][] = [
    ['queue table dropped', 'DROP TABLE dcache_probe.capture_queue', /table dcache_probe\.capture_queue is missing/],
    ['queue table renamed', 'ALTER TABLE dcache_probe.capture_queue RENAME TO capture_queue_old', /table dcache_probe\.capture_queue is missing/],
    ['queue table moved to another schema', 'ALTER TABLE dcache_probe.capture_queue SET SCHEMA public', /table dcache_probe\.capture_queue is missing/],
    ['schema renamed', 'ALTER SCHEMA dcache_probe RENAME TO dcache_probe_old', /schema dcache_probe is missing/],
    ['column record dropped', 'ALTER TABLE dcache_probe.capture_queue DROP COLUMN record', /lost its columns/],
    ['column record retyped', 'ALTER TABLE dcache_probe.capture_queue ALTER COLUMN record TYPE text', /lost its columns/],
    ['column added NOT NULL without a default', 'ALTER TABLE dcache_probe.capture_queue ADD COLUMN site text NOT NULL', /column site .* NOT NULL without a default/],
    ['default of captured_at dropped', 'ALTER TABLE dcache_probe.capture_queue ALTER COLUMN captured_at DROP DEFAULT', /column captured_at .* NOT NULL without a default/],
    ['identity of id dropped', 'ALTER TABLE dcache_probe.capture_queue ALTER COLUMN id DROP IDENTITY', /column id .* NOT NULL without a default/],
    ['CHECK constraint added', "ALTER TABLE dcache_probe.capture_queue ADD CONSTRAINT short_source CHECK (length(source) < 5)", /constraint short_source/],
    ['unique index added', 'CREATE UNIQUE INDEX one_per_source ON dcache_probe.capture_queue (source)', /index one_per_source/],
    ['expression index added', "CREATE INDEX by_code ON dcache_probe.capture_queue (((record ->> 'errorcode')::int))", /index by_code/],
    ['partial index added (its predicate could raise)', "CREATE INDEX waiting ON dcache_probe.capture_queue (id) WHERE (record ->> 'errorcode')::int <> 0", /index waiting/],
    ['index on record added (a large row exceeds a btree entry)', 'CREATE INDEX by_record ON dcache_probe.capture_queue (record)', /index by_record/],
    ['trigger on the queue', 'CREATE TRIGGER no_rows BEFORE INSERT ON dcache_probe.capture_queue FOR EACH ROW EXECUTE FUNCTION public.refuse_row()', /trigger no_rows/],
    ['rule on the queue', 'CREATE RULE nothing AS ON INSERT TO dcache_probe.capture_queue DO INSTEAD NOTHING', /rule nothing/],
    ['FORCE ROW LEVEL SECURITY', 'ALTER TABLE dcache_probe.capture_queue FORCE ROW LEVEL SECURITY', /FORCE ROW LEVEL SECURITY/],
    ['wake-up sequence dropped', 'DROP SEQUENCE dcache_probe.wake_fired', /sequence dcache_probe\.wake_fired is missing/],
    ['wake-up sequence given a low MAXVALUE', 'ALTER SEQUENCE dcache_probe.wake_fired MAXVALUE 1000', /wake_fired was given a low MAXVALUE/],
    ['capture function made SECURITY INVOKER', 'ALTER FUNCTION dcache_probe.capture_rows() SECURITY INVOKER', /no longer SECURITY DEFINER/],
    ['capture function lost its search_path', 'ALTER FUNCTION dcache_probe.capture_rows() RESET search_path', /lost its fixed search_path/],
    ['capture function replaced', "CREATE OR REPLACE FUNCTION dcache_probe.capture_rows() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS 'BEGIN RETURN NULL; END'", /changed only by "dcache-probe migrate"/],
    ['capture function given to a role without privileges', `ALTER FUNCTION dcache_probe.capture_rows() OWNER TO ${nobody}`, /may not INSERT into dcache_probe\.capture_queue/],
    ['capture function used by a row-level trigger', 'CREATE TRIGGER dcache_probe_capture_rows AFTER INSERT ON public.hitinfo FOR EACH ROW EXECUTE FUNCTION dcache_probe.capture_rows()', /not AFTER … REFERENCING NEW TABLE/],
  ];
  for (const [what, ddl, problem] of refused) {
    it(`${what}: the DDL is refused, and dCache's insert goes on being captured`, async () => {
      await db.query('DELETE FROM dcache_probe.capture_queue'); // PostgreSQL would refuse some of these over existing rows itself
      await assert.rejects(db.query(ddl), (err: Error) => {
        assert.match(err.message, /dcache-transfer-probe: refused/);
        assert.match(err.message, problem);
        return true;
      });
      await stillCaptures();
    });
  }

  it("harmless changes to the queue are let through (columns with a default or nullable, an index, a partial index on IS NULL, a comment), and capture goes on", async () => {
    await db.query("ALTER TABLE dcache_probe.capture_queue ADD COLUMN note text NOT NULL DEFAULT ''");
    await db.query('ALTER TABLE dcache_probe.capture_queue ADD COLUMN claimed_until timestamptz');
    await db.query('CREATE INDEX capture_queue_captured_at ON dcache_probe.capture_queue (captured_at)');
    await db.query('CREATE INDEX capture_queue_unclaimed ON dcache_probe.capture_queue (id) WHERE claimed_until IS NULL');
    await db.query("COMMENT ON TABLE dcache_probe.capture_queue IS 'the probe''s queue'");
    await stillCaptures();
    await db.query('DROP INDEX dcache_probe.capture_queue_captured_at, dcache_probe.capture_queue_unclaimed');
    await db.query('ALTER TABLE dcache_probe.capture_queue DROP COLUMN note, DROP COLUMN claimed_until');
  });

  it('with the capture triggers disabled anything is let through; enabling them over a broken queue is refused', async () => {
    await db.query('ALTER TABLE billinginfo DISABLE TRIGGER dcache_probe_capture');
    await db.query('ALTER TABLE storageinfo DISABLE TRIGGER dcache_probe_capture');
    try {
      await db.query('ALTER TABLE dcache_probe.capture_queue RENAME TO capture_queue_away');
      await assert.rejects(db.query('ALTER TABLE billinginfo ENABLE TRIGGER dcache_probe_capture'), /refused: .*table dcache_probe\.capture_queue is missing/);
      await db.query('ALTER TABLE dcache_probe.capture_queue_away RENAME TO capture_queue');
    } finally {
      await db.query('ALTER TABLE billinginfo ENABLE TRIGGER dcache_probe_capture');
      await db.query('ALTER TABLE storageinfo ENABLE TRIGGER dcache_probe_capture');
    }
    await stillCaptures();
  });

  it("a capture already broken in a way the guard cannot see never blocks dCache's own schema changes; status reports it", async () => {
    // ALTER DATABASE is not seen by event triggers; a default for our per-transaction setting is a problem.
    await db.query(`ALTER DATABASE ${pg.escapeIdentifier(db.name)} SET dcache_probe.capture = 'on'`);
    try {
      assert.match((await captureProblems(db.url)).join('\n'), /a database or role default sets a dcache_probe\.\* setting/);
      await db.query('ALTER TABLE billinginfo ADD COLUMN dcache_future_column text'); // as dCache's Liquibase would
      await db.query('ALTER TABLE billinginfo DROP COLUMN dcache_future_column');
      const status = await runCli(['status', '--db-url', db.url]);
      assert.equal(status.code, 1);
      assert.match(status.stdout, /capture cannot work: a database or role default sets a dcache_probe\.\* setting/);
    } finally {
      await db.query(`ALTER DATABASE ${pg.escapeIdentifier(db.name)} RESET dcache_probe.capture`);
    }
  });
});

describe('with the guard: removing our schema', () => {
  it("DROP SCHEMA dcache_probe CASCADE takes the capture triggers with it: dCache's insert succeeds", async () => {
    const db = await createBillingDatabase('modern');
    try {
      await db.query('DROP SCHEMA dcache_probe CASCADE');
      await insertMover(db.url, 'after-drop-schema');
      assert.equal(await stored(db.url, 'after-drop-schema'), 1);
      const left = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_trigger WHERE tgname LIKE 'dcache_probe%'");
      assert.equal(left.rows[0]!.n, 0);
    } finally {
      await db.drop();
    }
  });
});

describe("without the guard (installed by the billing tables' owner, not a superuser)", () => {
  const owner = `probe_owner_${process.pid}`;
  const databases: BillingDatabase[] = [];
  before(async () => {
    await adminQuery(`DROP ROLE IF EXISTS ${owner}`);
    await adminQuery(`CREATE ROLE ${owner} LOGIN NOSUPERUSER`);
  });
  after(async () => {
    for (const db of databases) await db.drop();
    await adminQuery(`DROP ROLE IF EXISTS ${owner}`);
  });

  /** A billing database whose tables `owner` owns (as dCache's srmdcache), the probe installed by it. */
  async function ownerInstall(): Promise<{ db: BillingDatabase; url: string; result: Awaited<ReturnType<typeof migrate>> }> {
    const db = await createBillingDatabase('modern', { migrate: false });
    databases.push(db);
    for (const table of ['billinginfo', 'doorinfo', 'storageinfo', 'hitinfo']) await db.query(`ALTER TABLE public.${table} OWNER TO ${owner}`);
    await db.query(`GRANT CREATE ON DATABASE ${pg.escapeIdentifier(db.name)} TO ${owner}`);
    const url = databaseUrl(db.name, owner);
    return { db, url, result: await migrate(url, 'public') };
  }

  it('migrate warns that the guard is missing, status shows it as a warning (exit 0); a superuser running migrate installs it', async () => {
    const { db, url, result } = await ownerInstall();
    assert.equal(result.guard, false);
    assert.deepEqual(result.warnings, [GUARD_MISSING]);
    const status = await runCli(['status', '--db-url', url]);
    assert.equal(status.code, 0, status.stdout + status.stderr);
    assert.match(status.stdout, /WARNINGS:\n {2}- the guard that refuses DDL breaking the capture .* is not installed/);
    const again = await migrate(db.url, 'public');
    assert.deepEqual([again.guard, again.warnings], [true, []]);
    const after = await runCli(['status', '--db-url', url]);
    assert.doesNotMatch(after.stdout, /WARNINGS/);
    // The owner's own DDL is now guarded too, and uninstall (run by the owner) still removes everything.
    await assert.rejects(withClient(url, (c) => c.query('DROP TABLE dcache_probe.capture_queue')), /refused/);
    await uninstall(url, true);
    const left = await db.query<{ n: number }>("SELECT (SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'dcache_probe%') + (SELECT count(*) FROM pg_namespace WHERE nspname = 'dcache_probe') AS n");
    assert.equal(Number(left.rows[0]!.n), 0);
  });

  for (const [what, ddl] of [
    ['queue table dropped', 'DROP TABLE dcache_probe.capture_queue'],
    ['queue table renamed', 'ALTER TABLE dcache_probe.capture_queue RENAME TO capture_queue_old'],
    ['INSERT on the queue revoked from its owner', `REVOKE INSERT ON dcache_probe.capture_queue FROM ${owner}`],
  ] as const) {
    it(`${what}: dCache's insert succeeds; the capture is skipped and counted, and status says so`, async () => {
      const { db, url } = await ownerInstall();
      await withClient(url, (c) => c.query(ddl));
      await insertMover(url, 'skipped-1');
      await withClient(url, async (c) => {
        await c.query('BEGIN');
        await insertLikeDcache(c, 4, 'skipped-tx'); // two movers: two captures skipped
        await c.query('COMMIT');
      });
      assert.equal(await stored(url, 'skipped-1'), 1, "dCache's row is stored");
      assert.equal(await stored(url, 'skipped-tx-1'), 1);
      assert.equal(await failures(db), 3);
      const status = await runCli(['status', '--db-url', db.url]);
      assert.equal(status.code, 1);
      assert.match(status.stdout, /3 captures were skipped because the queue could not be written/);
      assert.match(status.stdout, /capture cannot work: (table dcache_probe\.capture_queue is missing|role \S+ \(owner of the capture function\) may not INSERT)/);
    });
  }

  it("USAGE on our schema revoked from its owner, or the schema renamed: dCache's insert succeeds (uncounted: the counter is out of reach)", async () => {
    for (const ddl of [`REVOKE USAGE ON SCHEMA dcache_probe FROM ${owner}`, 'ALTER SCHEMA dcache_probe RENAME TO dcache_probe_old']) {
      const { url } = await ownerInstall();
      await withClient(url, (c) => c.query(ddl));
      await insertMover(url, 'unreachable');
      assert.equal(await stored(url, 'unreachable'), 1, ddl);
    }
  });

  it("a wake-up sequence dropped: dCache's insert succeeds and is still captured (the probe's poll finds it)", async () => {
    const { db, url } = await ownerInstall();
    await withClient(url, (c) => c.query('DROP SEQUENCE dcache_probe.wake_fired'));
    await insertMover(url, 'no-wake');
    assert.equal(await queued(db, 'no-wake'), 1);
    assert.equal(await failures(db), 0);
  });

  it("EXECUTE on pg_notify, pg_notification_queue_usage and the advisory-lock functions revoked from PUBLIC: dCache's insert succeeds and is captured (the wake-up is skipped)", async () => {
    const { db, url } = await ownerInstall();
    await db.query('REVOKE EXECUTE ON FUNCTION pg_catalog.pg_notify(text, text), pg_catalog.pg_notification_queue_usage() FROM PUBLIC');
    await withClient(db.url, (c) => armWakeUp(c));
    await insertMover(url, 'no-notify');
    await db.query('REVOKE EXECUTE ON FUNCTION pg_catalog.pg_try_advisory_xact_lock_shared(bigint) FROM PUBLIC');
    await insertMover(url, 'no-lock');
    assert.equal(await queued(db, 'no-%'), 2);
    assert.match((await captureProblems(db.url)).join('\n'), /may not EXECUTE pg_catalog\.pg_try_advisory_xact_lock_shared\(bigint\)/, 'status and start-up name it');
  });
});

describe('conditions on the database server', () => {
  let db: BillingDatabase;
  before(async () => {
    db = await createBillingDatabase('modern');
  });
  after(async () => db?.drop());

  it("a read-only transaction (as every transaction on a hot standby): dCache's own insert fails, with the error it gets without our trigger", async () => {
    const attempt = () =>
      withClient(db.url, async (c) => {
        await c.query('BEGIN READ ONLY');
        try {
          await c.query(MOVER, ['read-only', 'door:read-only']);
          return null;
        } catch (err) {
          return { code: (err as { code?: string }).code, message: (err as Error).message };
        } finally {
          await c.query('ROLLBACK');
        }
      });
    const withTrigger = await attempt();
    await db.query('ALTER TABLE billinginfo DISABLE TRIGGER dcache_probe_capture');
    const without = await attempt();
    await db.query('ALTER TABLE billinginfo ENABLE TRIGGER dcache_probe_capture');
    assert.deepEqual(withTrigger, { code: '25006', message: 'cannot execute INSERT in a read-only transaction' });
    assert.deepEqual(withTrigger, without);
  });

  it("statement_timeout: dCache's insert never waits for the wake-up lock, and notifies instead (the 006 capture waited, and timed out)", async () => {
    const with006 = await createBillingDatabase('modern', { migrate: false });
    try {
      await migrate(with006.url, 'public', { upTo: 6 });
      for (const target of [db, with006]) {
        const barrier = await connect(target.url); // holds the capture lock exclusively, as the listener's barrier does
        const listener = await connect(target.url);
        const notified: string[] = [];
        listener.on('notification', (n) => notified.push(n.channel));
        try {
          await listener.query(`LISTEN ${WAKE_CHANNEL}`);
          await barrier.query('BEGIN');
          await barrier.query('SELECT pg_advisory_xact_lock($1)', [CAPTURE_LOCK]);
          if (target === db) {
            // It completes while the lock is still held: it did not wait for it.
            await insertMover(db.url, 'lock-held');
            assert.equal(await queued(db, 'lock-held'), 1);
            await waitFor('the notification of a capture that could not take the shared lock', () => notified.length === 1);
          } else {
            await assert.rejects(
              withClient(with006.url, async (c) => {
                await c.query("SET statement_timeout = '300ms'");
                await c.query(MOVER, ['lock-held-006', 'door:lock-held-006']);
              }),
              /canceling statement due to statement timeout/,
            );
          }
        } finally {
          await barrier.query('ROLLBACK').catch(() => undefined);
          await barrier.end();
          await listener.end();
        }
      }
    } finally {
      await with006.drop();
    }
  });

  it("PL/pgSQL's extra checks and a hostile search_path in dCache's session: the insert succeeds and is captured", async () => {
    await db.query(`CREATE SCHEMA IF NOT EXISTS hostile`);
    await db.query(`CREATE OR REPLACE FUNCTION hostile.to_jsonb(anyelement) RETURNS jsonb LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hostile'; END $$`);
    await db.query(`CREATE OR REPLACE FUNCTION hostile.current_setting(text, boolean) RETURNS text LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hostile'; END $$`);
    await withClient(db.url, async (c) => {
      await c.query("SET plpgsql.extra_errors = 'all'");
      await c.query("SET plpgsql.extra_warnings = 'all'");
      await c.query('SET search_path = hostile, public, pg_catalog');
      await c.query('BEGIN');
      await insertLikeDcache(c, 6, 'hostile');
      await c.query('COMMIT');
    });
    assert.equal(await queued(db, 'hostile-%'), 3);
  });

  it('out of disk: the queue keeps its pages when vacuumed (vacuum_truncate off), so a delivered backlog is written over before the file grows', async () => {
    const fill = () =>
      db.query(`INSERT INTO billinginfo (datestamp, transaction, initiator, errormessage)
                SELECT now(), 'disk-' || i, 'door:disk-' || i, repeat('x', 200) FROM generate_series(1, 3000) AS i`);
    const size = async () => Number((await db.query<{ n: string }>("SELECT pg_relation_size('dcache_probe.capture_queue') AS n")).rows[0]!.n);
    await db.query('DELETE FROM dcache_probe.capture_queue');
    await fill();
    const filled = await size();
    await db.query('DELETE FROM dcache_probe.capture_queue');
    await db.query('VACUUM dcache_probe.capture_queue');
    assert.equal(await size(), filled, 'the empty pages are kept');
    await fill();
    assert.ok((await size()) <= filled, 'and written again');
    // What the setting prevents: with vacuum's default, the same VACUUM gives the pages back.
    await db.query('DELETE FROM dcache_probe.capture_queue');
    await db.query('ALTER TABLE dcache_probe.capture_queue RESET (vacuum_truncate)');
    try {
      await db.query('VACUUM dcache_probe.capture_queue');
      assert.ok((await size()) < filled);
    } finally {
      await db.query('ALTER TABLE dcache_probe.capture_queue SET (vacuum_truncate = false)');
    }
  });
});

describe('unusual values', () => {
  it("unusual values in the legacy schema (numeric NaN and Infinity, timestamp infinity, non-UTF-8 bytes in a SQL_ASCII database): dCache's insert succeeds and is captured", async () => {
    const name = `probe_test_${process.pid}_sql_ascii`;
    await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await adminQuery(`CREATE DATABASE ${name} ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`);
    const url = databaseUrl(name);
    try {
      await withClient(url, (c) => c.query(readFileSync(join(FIXTURES, 'billing-legacy.sql'), 'utf8')));
      await migrate(url, 'public');
      await withClient(url, (c) =>
        c.query(`INSERT INTO billinginfo (datestamp, transaction, initiator, fullsize, transfersize, connectiontime, errormessage)
                 VALUES ('infinity', 'odd-values', 'door:odd', 'NaN', 'Infinity', '-Infinity', convert_from('\\x636166e9'::bytea, 'SQL_ASCII'))`),
      );
      // Read field by field: a UTF-8 client cannot receive the SQL_ASCII bytes as text.
      const { rows } = await withClient(url, (c) =>
        c.query(`SELECT record ->> 'datestamp' AS d, record ->> 'fullsize' AS f, record ->> 'transfersize' AS t, record ->> 'connectiontime' AS c,
                        encode(convert_to(record ->> 'errormessage', 'SQL_ASCII'), 'hex') AS m
                   FROM dcache_probe.capture_queue WHERE record ->> 'transaction' = 'odd-values'`),
      );
      assert.deepEqual(rows, [{ d: 'infinity', f: 'NaN', t: 'Infinity', c: '-Infinity', m: '636166e9' }]);
    } finally {
      await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`, [], PG_ADMIN_URL);
    }
  });
});

describe("our own DDL: it never holds dCache's inserts for long", () => {
  it(`uninstall waits for a lock at most ${LOCK_TIMEOUT_MS} ms at a time behind an open dCache transaction: dCache's other inserts go on, and it completes once that transaction ends`, async () => {
    const db = await createBillingDatabase('modern');
    const open = await connect(db.url);
    try {
      await open.query('BEGIN');
      await open.query(MOVER, ['open-tx', 'door:open-tx']); // holds a lock on billinginfo until it commits
      const removal = uninstall(db.url, true);
      removal.catch(() => undefined);
      await waitFor('uninstall waiting for its lock on billinginfo', async () => {
        const { rows } = await db.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'dcache-probe migrate' AND wait_event_type = 'Lock'",
        );
        return rows[0]!.n === 1;
      });
      // Queued behind uninstall's lock request, this insert goes through when that request times out.
      await insertMover(db.url, 'meanwhile');
      assert.equal(await stored(db.url, 'meanwhile'), 1, "dCache's insert went on while its first transaction is still open");
      await open.query('COMMIT');
      assert.equal((await removal).removed, true);
      const left = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_trigger WHERE tgname LIKE 'dcache_probe%'");
      assert.equal(left.rows[0]!.n, 0);
    } finally {
      await open.end();
      await db.drop();
    }
  });

  it("migrate does not install a capture that would fail dCache's inserts: it rolls that migration back and says why", async () => {
    const db = await createBillingDatabase('modern', { migrate: false });
    try {
      await migrate(db.url, 'public', { upTo: 6 });
      await db.query("ALTER TABLE dcache_probe.capture_queue ADD CONSTRAINT no_tape CHECK (source <> 'storageinfo')");
      await assert.rejects(migrate(db.url, 'public'), (err: Error) => {
        assert.ok(err instanceof MigrationError && err.code === 'CAPTURE_PROBLEMS');
        assert.match(err.message, /migration 7 \(capture_without_subtransactions\) was not applied: .*constraint no_tape/);
        return true;
      });
      assert.equal(await withClient(db.url, (c) => installedVersion(c)), 6);
      const events = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_event_trigger WHERE evtname LIKE 'dcache_probe%'");
      assert.equal(events.rows[0]!.n, 0, 'nothing of 007 is left');
    } finally {
      await db.drop();
    }
  });
});
