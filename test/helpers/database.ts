/** Scratch billing databases on the real PostgreSQL, in the modern or the legacy form. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { migrate } from '../../src/db/migrations';
import type { SchemaForm } from '../../src/tools/demo/simulator';
import { FIXTURES, PG_ADMIN_URL, databaseUrl } from './env';

export interface BillingDatabase {
  name: string;
  url: string;
  form: SchemaForm;
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
  drop(): Promise<void>;
}

let counter = 0;

export async function adminQuery(sql: string, values?: unknown[], adminUrl = PG_ADMIN_URL): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await client.query(sql, values);
  } finally {
    await client.end();
  }
}

/**
 * Creates a database holding dCache's billing schema (and, unless told not to, our migration),
 * on the shared test server or on the server of `adminUrl`.
 */
export async function createBillingDatabase(form: SchemaForm, options: { migrate?: boolean; adminUrl?: string } = {}): Promise<BillingDatabase> {
  const name = `probe_test_${process.pid}_${++counter}_${form}`;
  const adminUrl = options.adminUrl ?? PG_ADMIN_URL;
  await adminQuery(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`, [], adminUrl);
  await adminQuery(`CREATE DATABASE ${pg.escapeIdentifier(name)}`, [], adminUrl);
  const url = databaseUrl(name, undefined, undefined, adminUrl);
  const pool = new pg.Pool({ connectionString: url, max: 3 });
  pool.on('error', () => undefined);
  await pool.query(readFileSync(join(FIXTURES, `billing-${form}.sql`), 'utf8'));
  if (options.migrate !== false) await migrate(url, 'public');
  return {
    name,
    url,
    form,
    query: (sql, values) => pool.query(sql, values),
    async drop() {
      await pool.end();
      await adminQuery(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`, [], adminUrl);
    },
  };
}
