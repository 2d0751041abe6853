/**
 * What the probe reads of dCache's billing schema itself, one definition for every part that
 * queries the billing tables (the backfill, poll mode, the statistics' history, the removal
 * count): a table's quoted name, which tables and columns this form of the schema has, the
 * sources a copy or count covers, and the SQL forms of the mapping's rules that such queries
 * share.
 */
import pg from 'pg';
import type { BillingSource } from '../record/types';

/** The quoted name of a billing table in the billing schema. */
export function billingTable(billingSchema: string, source: BillingSource): string {
  return `${pg.escapeIdentifier(billingSchema)}.${pg.escapeIdentifier(source)}`;
}

/** The legacy billing schema may lack storageinfo. */
export async function hasStorageTable(client: pg.ClientBase, billingSchema: string): Promise<boolean> {
  const { rows } = await client.query<{ present: boolean }>('SELECT to_regclass($1) IS NOT NULL AS present', [billingTable(billingSchema, 'storageinfo')]);
  return Boolean(rows[0]?.present);
}

/** The sources to read: billinginfo, and storageinfo when it exists and tape is reported. */
export async function billingSources(client: pg.ClientBase, billingSchema: string, reportTape: boolean): Promise<BillingSource[]> {
  const sources: BillingSource[] = ['billinginfo'];
  if (reportTape && (await hasStorageTable(client, billingSchema))) sources.push('storageinfo');
  return sources;
}

/** The columns of the billing tables that exist in this billing schema (older forms lack some). */
export type BillingColumns = Record<'billinginfo' | 'doorinfo' | 'storageinfo', Set<string>>;

/** Which columns the billing tables have (a table that is missing has none). */
export async function billingColumns(db: pg.Pool | pg.ClientBase, billingSchema: string): Promise<BillingColumns> {
  const { rows } = await db.query<{ t: string; c: string }>(
    `SELECT table_name AS t, column_name AS c FROM information_schema.columns
      WHERE table_schema = $1 AND table_name IN ('billinginfo', 'doorinfo', 'storageinfo')`,
    [billingSchema],
  );
  const out: BillingColumns = { billinginfo: new Set(), doorinfo: new Set(), storageinfo: new Set() };
  for (const r of rows) out[r.t as keyof BillingColumns].add(r.c);
  return out;
}

/** What the mapping calls meaningful (meaningful() in src/record/mapping.ts): NULL for blank, "unknown", "<undefined>". */
export function meaningful(expr: string): string {
  return `nullif(regexp_replace(btrim((${expr})::text, E' \\t\\n\\r'), '^<?(unknown|undefined)>?$', '', 'i'), '')`;
}

/** The column, or NULL when this form of the schema lacks it. */
export function column(columns: Set<string>, alias: string, name: string, type = 'text'): string {
  return columns.has(name) ? `${alias}.${pg.escapeIdentifier(name)}` : `NULL::${type}`;
}
