/**
 * Installing and removing the probe's database objects: `dcache-probe migrate` and
 * `dcache-probe uninstall`. Migrations are the numbered files in sql/migrations/; each runs
 * once, in its own transaction, under an advisory lock so two concurrent installers cannot
 * interleave. Identifiers (billing schema, role) are always quoted, never pasted as text.
 *
 * dCache comes first here too: every transaction of ours that changes objects dCache's inserts
 * touch (its tables' triggers, our queue) waits for a lock at most LOCK_TIMEOUT_MS at a time,
 * so dCache's inserts never queue behind it for longer, and is retried a few times; a
 * migration that would leave the capture unable to work is rolled back (capture_problems());
 * and every run installs the DDL guard when it can (a superuser).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { DatabaseError, connectionConfig, inTransaction } from './pool';
import { queueDepth } from './queue';
import { errorMessage, pause } from '../lib';

export const SQL_DIR = join(__dirname, '..', '..', '..', 'sql');
const MIGRATIONS_DIR = join(SQL_DIR, 'migrations');
/** Serialises concurrent `migrate` / `uninstall` runs (any constant unique to us). */
const MIGRATION_LOCK = 7262627700;
/**
 * How long one of our transactions may wait for a table lock. While it waits, dCache's inserts
 * into that table wait behind it (PostgreSQL queues later lock requests behind a waiting one).
 */
export const LOCK_TIMEOUT_MS = 1000;
/** Attempts of a transaction that ran into LOCK_TIMEOUT_MS, with a pause growing by 1 s. */
export const LOCK_ATTEMPTS = 6;

export type MigrationErrorCode = 'LOCK_TIMEOUT' | 'CAPTURE_PROBLEMS' | 'NOT_INSTALLED' | 'PENDING_ROWS';

export class MigrationError extends Error {
  override name = 'MigrationError';
  constructor(
    readonly code: MigrationErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export function listMigrations(): Migration[] {
  return readdirSync(MIGRATIONS_DIR)
    .filter((f) => /^\d+_.+\.sql$/.test(f))
    .sort()
    .map((file) => ({
      version: Number(file.split('_')[0]),
      name: file.replace(/^\d+_|\.sql$/g, ''),
      sql: readFileSync(join(MIGRATIONS_DIR, file), 'utf8'),
    }));
}

export const LATEST_VERSION = Math.max(...listMigrations().map((m) => m.version));

export interface MigrateResult {
  applied: Migration[];
  version: number;
  /** What became of doorinfo's planner statistics (see analyzeDoorinfo). */
  doorinfo: DoorinfoStatistics;
  /** Whether the DDL guard (event triggers, migration 007) is installed and enabled. */
  guard: boolean;
  /** What an operator should know, one sentence each (the CLI prints them as warnings). */
  warnings: string[];
}

/** Said when the guard is missing (by migrate, and by status and run through captureHealth). */
export const GUARD_MISSING =
  'the guard that refuses DDL breaking the capture (event triggers dcache_probe_guard_*) is not installed or disabled: run "dcache-probe migrate" once as a PostgreSQL superuser (event triggers need one)';

/**
 * 'analyzed': doorinfo had rows but no planner statistics, and migrate analyzed it;
 * 'present': it has statistics (or no rows, or no doorinfo table); otherwise why it could not.
 */
export type DoorinfoStatistics = 'analyzed' | 'present' | { failed: string };

/**
 * The claim looks each waiting mover's door row up in doorinfo by transaction and pnfsid.
 * Without planner statistics on doorinfo (a database where autovacuum is off, or has not got to
 * the table yet) those lookups are planned poorly: a BitmapAnd of two indexes instead of one
 * index, and on a large table cost estimates high enough to JIT-compile every claim (about
 * 3x the CPU with 1M door rows). So migrate runs ANALYZE once on a doorinfo that has rows and
 * no statistics: it reads a sample of at most 300 x default_statistics_target rows, and its
 * lock (SHARE UPDATE EXCLUSIVE) does not block dCache's inserts; it gives up after a short
 * lock_timeout (a VACUUM running on the table), and a failure never fails the migration.
 */
async function analyzeDoorinfo(client: pg.Client, billingSchema: string): Promise<DoorinfoStatistics> {
  const table = `${client.escapeIdentifier(billingSchema)}.doorinfo`;
  try {
    const { rows } = await client.query<{ present: boolean }>('SELECT to_regclass($1) IS NOT NULL AS present', [table]);
    if (!rows[0]?.present) return 'present';
    const stats = await client.query(
      "SELECT 1 FROM pg_catalog.pg_stats WHERE schemaname = $1 AND tablename = 'doorinfo' AND attname = 'transaction'",
      [billingSchema],
    );
    if (stats.rowCount !== 0) return 'present';
    const any = await client.query(`SELECT 1 FROM ${table} LIMIT 1`);
    if (any.rowCount === 0) return 'present';
    await client.query("SET lock_timeout = '5s'");
    try {
      await client.query(`ANALYZE ${table}`);
    } finally {
      await client.query('RESET lock_timeout');
    }
    const after = await client.query(
      "SELECT 1 FROM pg_catalog.pg_stats WHERE schemaname = $1 AND tablename = 'doorinfo' AND attname = 'transaction'",
      [billingSchema],
    );
    // ANALYZE of a table we do not own only warns, and analyzes nothing.
    return after.rowCount !== 0 ? 'analyzed' : { failed: 'ANALYZE left no statistics (is doorinfo owned by another role?)' };
  } catch (err) {
    return { failed: errorMessage(err) };
  }
}

/** migrate's and uninstall's own connection (not a pool's: one session holds the migration lock). */
async function onOwnConnection<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(connectionConfig({ url, applicationName: 'dcache-probe migrate' }));
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

const LOCK_NOT_AVAILABLE = '55P03';

/**
 * Runs `fn` in one transaction under the migration lock, flagged as ours for the guard
 * (dcache_probe.migrating), with LOCK_TIMEOUT_MS for every lock after the migration lock; a
 * lock timeout rolls back and tries again, LOCK_ATTEMPTS times in all.
 */
async function inMigrationTransaction<T>(client: pg.Client, what: string, fn: () => Promise<T>, attempts = LOCK_ATTEMPTS): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await inTransaction(client, async () => {
        await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
        await client.query("SELECT set_config('lock_timeout', $1, true), set_config('dcache_probe.migrating', 'on', true)", [`${LOCK_TIMEOUT_MS}ms`]);
        return fn();
      });
    } catch (err) {
      if ((err as { code?: string }).code !== LOCK_NOT_AVAILABLE) throw err;
      if (attempt >= attempts) {
        throw new MigrationError(
          'LOCK_TIMEOUT',
          `${what}: could not get a lock within ${LOCK_TIMEOUT_MS} ms, ${attempts} times (${errorMessage(err)}); a long transaction holds it (dCache's billing writers, a probe, a backup). Nothing was changed; run it again`,
        );
      }
      await pause(attempt * 1000);
    }
  }
}

/** Problems of an installed capture (sql: dcache_probe.capture_problems), [] before 007 or without enabled triggers. */
async function captureProblemsWhileEnabled(client: pg.ClientBase): Promise<string[]> {
  const present = await client.query<{ present: boolean }>("SELECT to_regprocedure('dcache_probe.capture_problems()') IS NOT NULL AS present");
  if (!present.rows[0]?.present) return [];
  const { rows } = await client.query<{ problems: string[] }>(
    'SELECT CASE WHEN dcache_probe.capture_enabled() THEN dcache_probe.capture_problems() ELSE ARRAY[]::text[] END AS problems',
  );
  return rows[0]?.problems ?? [];
}

function captureProblemsError(problems: string[], context: string): MigrationError {
  return new MigrationError(
    'CAPTURE_PROBLEMS',
    `${context}: the capture trigger could not work, and would fail dCache's inserts: ${problems.join('; ')}`,
  );
}

/** The installed migration version, or 0 when the probe is not installed. */
export async function installedVersion(client: pg.ClientBase): Promise<number> {
  // Two queries: PostgreSQL resolves every table of a statement before running it, so one
  // query that mentions schema_migration fails where it does not exist.
  const exists = await client.query<{ present: boolean }>("SELECT to_regclass('dcache_probe.schema_migration') IS NOT NULL AS present");
  if (!exists.rows[0]?.present) return 0;
  const { rows } = await client.query<{ version: number | null }>('SELECT coalesce(max(version), 0) AS version FROM dcache_probe.schema_migration');
  return Number(rows[0]?.version ?? 0);
}

/** The billing schema the triggers were installed on (from the migration record). */
export async function installedBillingSchema(client: pg.ClientBase): Promise<string | null> {
  if ((await installedVersion(client)) === 0) return null;
  const { rows } = await client.query<{ billing_schema: string }>(
    'SELECT billing_schema FROM dcache_probe.schema_migration ORDER BY version DESC LIMIT 1',
  );
  return rows[0]?.billing_schema ?? null;
}

/** Throws NOT_INSTALLED or SCHEMA_OUTDATED unless the probe's schema is at this build's version. */
export async function requireInstalled(client: pg.ClientBase, who = 'this probe'): Promise<void> {
  const version = await installedVersion(client);
  if (version === 0) throw new DatabaseError('NOT_INSTALLED', 'the probe is not installed in this database: run "dcache-probe migrate" first');
  if (version < LATEST_VERSION) throw new DatabaseError('SCHEMA_OUTDATED', `the installed schema is version ${version}, ${who} needs ${LATEST_VERSION}: run "dcache-probe migrate"`);
}

/**
 * Applies the migrations not installed yet (up to `upTo`, default all), each in its own
 * transaction; one that would leave enabled capture triggers unable to work is rolled back
 * (MigrationError CAPTURE_PROBLEMS). Then installs the guard if it can, and checks the capture
 * once more.
 */
export async function migrate(url: string, billingSchema: string, options: { triggers?: boolean; upTo?: number } = {}): Promise<MigrateResult> {
  return onOwnConnection(url, async (client) => {
    const applied: Migration[] = [];
    for (const migration of listMigrations().filter((m) => m.version <= (options.upTo ?? Infinity))) {
      const done = await inMigrationTransaction(client, `migration ${migration.version} (${migration.name})`, async () => {
        await client.query(readFileSync(join(SQL_DIR, 'bootstrap.sql'), 'utf8'));
        const installed = await client.query('SELECT 1 FROM dcache_probe.schema_migration WHERE version = $1', [migration.version]);
        if (installed.rowCount !== 0) return false;
        await client.query("SELECT set_config('dcache_probe.billing_schema', $1, true)", [billingSchema]);
        await client.query("SELECT set_config('dcache_probe.no_triggers', $1, true)", [options.triggers === false ? 'on' : 'off']);
        await client.query(migration.sql);
        const problems = await captureProblemsWhileEnabled(client);
        if (problems.length) throw captureProblemsError(problems, `migration ${migration.version} (${migration.name}) was not applied`);
        await client.query('INSERT INTO dcache_probe.schema_migration (version, name, billing_schema) VALUES ($1, $2, $3)', [
          migration.version,
          migration.name,
          billingSchema,
        ]);
        return true;
      });
      if (done) applied.push(migration);
    }
    const guard = await inMigrationTransaction(client, 'installing the guard', async () => {
      const present = await client.query<{ present: boolean }>("SELECT to_regprocedure('dcache_probe.install_guard()') IS NOT NULL AS present");
      if (!present.rows[0]?.present) return false;
      const { rows } = await client.query<{ guard: boolean }>('SELECT dcache_probe.install_guard() AS guard');
      return rows[0]?.guard === true;
    });
    const problems = await captureProblemsWhileEnabled(client);
    if (problems.length) throw captureProblemsError(problems, `schema version ${await installedVersion(client)} is installed`);
    const version = await installedVersion(client);
    const warnings = version >= 7 && !guard ? [GUARD_MISSING] : [];
    return { applied, version, doorinfo: await analyzeDoorinfo(client, billingSchema), guard, warnings };
  });
}

/** Grants a role the least privileges the running probe needs (sql/grant.sql). */
export async function grantRuntimeRole(url: string, role: string): Promise<void> {
  await onOwnConnection(url, async (client) => {
    const billing = await installedBillingSchema(client);
    if (billing === null) throw new MigrationError('NOT_INSTALLED', 'the probe is not installed: run "dcache-probe migrate" first');
    const quote = (name: string) => client.escapeIdentifier(name);
    let sql = readFileSync(join(SQL_DIR, 'grant.sql'), 'utf8').replaceAll(':"role"', quote(role)).replaceAll(':"billing"', quote(billing));
    const storage = await client.query('SELECT to_regclass($1) AS t', [`${quote(billing)}.storageinfo`]);
    if (storage.rows[0]?.t) sql += `\nGRANT SELECT ON ${quote(billing)}.storageinfo TO ${quote(role)};`;
    await inMigrationTransaction(client, `granting ${role}`, () => client.query(sql));
  });
}

export interface UninstallResult {
  removed: boolean;
  /** Captured rows that were still waiting for delivery and are now gone. */
  discardedRows: number;
}

/**
 * Removes our triggers and schema. Refuses while captured rows still wait for delivery, unless
 * `force`: those rows would be lost.
 */
export async function uninstall(url: string, force: boolean): Promise<UninstallResult> {
  return onOwnConnection(url, (client) =>
    inMigrationTransaction(client, 'uninstall', async () => {
      const exists = await client.query("SELECT to_regclass('dcache_probe.capture_queue') IS NOT NULL AS present");
      let pending = 0;
      if (exists.rows[0]?.present) {
        pending = await queueDepth(client);
      }
      if (pending > 0 && !force) {
        throw new MigrationError(
          'PENDING_ROWS',
          `${pending} captured rows are not delivered yet; run the probe until the queue is empty, or uninstall --force to discard them`,
        );
      }
      await client.query(readFileSync(join(SQL_DIR, 'uninstall.sql'), 'utf8'));
      return { removed: true, discardedRows: pending };
    }),
  );
}
