/**
 * The database side of `dcache-probe verify`: per hour, the transactions the billing tables
 * say should have been reported, what the ledger says was delivered or skipped, and what waits
 * in the queue or the quarantine. src/features/verify.ts puts them side by side.
 */
import pg from 'pg';
import type { BillingSource } from '../record/types';

async function columnType(db: pg.Pool, schema: string, table: string, column: string): Promise<string | null> {
  const { rows } = await db.query<{ data_type: string }>(
    'SELECT data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 AND column_name = $3',
    [schema, table, column],
  );
  return rows[0]?.data_type ?? null;
}

/** Expected records (distinct transactions) per hour (epoch ms) from one billing table. */
export async function expectedPerHour(db: pg.Pool, schema: string, source: BillingSource, since: Date, until: Date): Promise<Map<number, number>> {
  const datestampType = await columnType(db, schema, source, 'datestamp');
  if (datestampType === null) return new Map();
  // Compare in the column's own type so its index can be used (legacy: in the session zone).
  const bound = datestampType === 'timestamp without time zone' ? '($X::timestamptz)::timestamp' : '$X::timestamptz';
  const filters: string[] = [];
  if (source === 'billinginfo' && (await columnType(db, schema, source, 'p2p')) !== null) filters.push('p2p IS NOT TRUE');
  if (source === 'storageinfo') filters.push("action IN ('store', 'restore')");
  const table = `${pg.escapeIdentifier(schema)}.${source}`;
  const { rows } = await db.query<{ hour_ms: string; n: string }>(
    `SELECT floor(extract(epoch FROM datestamp::timestamptz) / 3600)::bigint * 3600000 AS hour_ms, count(DISTINCT transaction) AS n
       FROM ${table}
      WHERE datestamp >= ${bound.replace('$X', '$1')} AND datestamp < ${bound.replace('$X', '$2')}
        ${filters.map((f) => `AND ${f}`).join(' ')}
      GROUP BY 1`,
    [since.toISOString(), until.toISOString()],
  );
  return new Map(rows.map((r) => [Number(r.hour_ms), Number(r.n)]));
}

/** Rows of ours per "hourMs:source" of their datestamp (queue or quarantine). */
export async function oursPerHour(db: pg.Pool, table: 'capture_queue' | 'quarantine', since: Date, until: Date): Promise<Map<string, number>> {
  const { rows } = await db.query<{ hour_ms: string; source: string; n: string }>(
    `SELECT floor(ms / 3600000.0)::bigint * 3600000 AS hour_ms, source, count(DISTINCT transaction) AS n
       FROM (SELECT source, record ->> 'transaction' AS transaction, dcache_probe.epoch_ms(record ->> 'datestamp') AS ms
               FROM dcache_probe.${pg.escapeIdentifier(table)}) t
      WHERE ms >= $1 AND ms < $2
      GROUP BY 1, 2`,
    [since.getTime(), until.getTime()],
  );
  return new Map(rows.map((r) => [`${r.hour_ms}:${r.source}`, Number(r.n)]));
}

export interface LedgerHour {
  hourMs: number;
  source: BillingSource;
  delivered: number;
  skipped: number;
}

/** The ledger's hours (dcache_probe.delivered_hour) in the range. */
export async function ledgerHours(db: pg.Pool, since: Date, until: Date): Promise<LedgerHour[]> {
  const { rows } = await db.query<{ hour_ms: string; source: string; delivered: string; skipped: string }>(
    `SELECT (extract(epoch FROM hour) * 1000)::bigint AS hour_ms, source, delivered, skipped
       FROM dcache_probe.delivered_hour WHERE hour >= $1 AND hour < $2`,
    [since.toISOString(), until.toISOString()],
  );
  return rows.map((r) => ({ hourMs: Number(r.hour_ms), source: r.source as BillingSource, delivered: Number(r.delivered), skipped: Number(r.skipped) }));
}
