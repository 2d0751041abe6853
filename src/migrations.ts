/**
 * Installing and removing the probe's database objects: `dcache-probe migrate` and
 * `dcache-probe uninstall`. Migrations are the numbered files in sql/migrations/; each runs
 * once, in its own transaction, under an advisory lock so two concurrent installers cannot
 * interleave. Identifiers (billing schema, role) are always quoted, never pasted as text.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';

export const SQL_DIR = join(__dirname, '..', '..', 'sql');
const MIGRATIONS_DIR = join(SQL_DIR, 'migrations');
/** Serialises concurrent `migrate` / `uninstall` runs (any constant unique to us). */
const MIGRATION_LOCK = 7262627700;

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
}

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
    return { failed: (err as Error).message };
  }
}

async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, application_name: 'dcache-probe migrate' });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
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

export async function migrate(url: string, billingSchema: string, options: { triggers?: boolean } = {}): Promise<MigrateResult> {
  return withClient(url, async (client) => {
    const applied: Migration[] = [];
    for (const migration of listMigrations()) {
      await client.query('BEGIN');
      try {
        await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
        await client.query(readFileSync(join(SQL_DIR, 'bootstrap.sql'), 'utf8'));
        const done = await client.query('SELECT 1 FROM dcache_probe.schema_migration WHERE version = $1', [migration.version]);
        if (done.rowCount === 0) {
          await client.query("SELECT set_config('dcache_probe.billing_schema', $1, true)", [billingSchema]);
          await client.query("SELECT set_config('dcache_probe.no_triggers', $1, true)", [options.triggers === false ? 'on' : 'off']);
          await client.query(migration.sql);
          await client.query('INSERT INTO dcache_probe.schema_migration (version, name, billing_schema) VALUES ($1, $2, $3)', [
            migration.version,
            migration.name,
            billingSchema,
          ]);
          applied.push(migration);
        }
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    }
    return { applied, version: await installedVersion(client), doorinfo: await analyzeDoorinfo(client, billingSchema) };
  });
}

/** Grants a role the least privileges the running probe needs (sql/grant.sql). */
export async function grantRuntimeRole(url: string, role: string): Promise<void> {
  await withClient(url, async (client) => {
    const billing = await installedBillingSchema(client);
    if (billing === null) throw new Error('the probe is not installed: run "dcache-probe migrate" first');
    const quote = (name: string) => client.escapeIdentifier(name);
    let sql = readFileSync(join(SQL_DIR, 'grant.sql'), 'utf8').replaceAll(':"role"', quote(role)).replaceAll(':"billing"', quote(billing));
    const storage = await client.query('SELECT to_regclass($1) AS t', [`${quote(billing)}.storageinfo`]);
    if (storage.rows[0]?.t) sql += `\nGRANT SELECT ON ${quote(billing)}.storageinfo TO ${quote(role)};`;
    await client.query('BEGIN');
    try {
      await client.query(sql);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
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
  return withClient(url, async (client) => {
    await client.query('BEGIN');
    try {
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      const exists = await client.query("SELECT to_regclass('dcache_probe.capture_queue') IS NOT NULL AS present");
      let pending = 0;
      if (exists.rows[0]?.present) {
        const { rows } = await client.query<{ n: string }>('SELECT count(*) AS n FROM dcache_probe.capture_queue');
        pending = Number(rows[0]?.n ?? 0);
      }
      if (pending > 0 && !force) {
        throw new Error(`${pending} captured rows are not delivered yet; run the probe until the queue is empty, or uninstall --force to discard them`);
      }
      await client.query(readFileSync(join(SQL_DIR, 'uninstall.sql'), 'utf8'));
      await client.query('COMMIT');
      return { removed: true, discardedRows: pending };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  });
}
