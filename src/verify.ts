/**
 * `dcache-probe verify`: proof of completeness. For each hour of a range, what the billing
 * tables say should have been reported (distinct transactions; no pool-to-pool copies; tape
 * store/restore rows) against what the ledger says was delivered or deliberately skipped,
 * plus what still waits in the queue or the quarantine. Hours where these differ are listed:
 * "missing" (e.g. rows a failing trigger did not capture: backfill them) or "extra" (e.g.
 * billing rows dCache has since deleted).
 *
 * This reads the billing tables for the range (an operator's command, not the hot path).
 * The ledger starts when migration 003 was installed: earlier hours show as missing.
 */
import pg from 'pg';

export interface HourCheck {
  hour: string;
  source: 'billinginfo' | 'storageinfo';
  expected: number;
  delivered: number;
  skipped: number;
  quarantined: number;
  queued: number;
  /** expected minus everything accounted for: > 0 missing, < 0 extra. */
  difference: number;
}

async function columnType(db: pg.Pool, schema: string, table: string, column: string): Promise<string | null> {
  const { rows } = await db.query<{ data_type: string }>(
    'SELECT data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 AND column_name = $3',
    [schema, table, column],
  );
  return rows[0]?.data_type ?? null;
}

/** Expected records per hour from one billing table. */
async function expectedPerHour(db: pg.Pool, schema: string, source: HourCheck['source'], since: Date, until: Date): Promise<Map<number, number>> {
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

/** Rows of ours per hour of their datestamp (queue or quarantine). */
async function oursPerHour(db: pg.Pool, table: 'capture_queue' | 'quarantine', since: Date, until: Date): Promise<Map<string, number>> {
  const { rows } = await db.query<{ hour_ms: string; source: string; n: string }>(
    `SELECT floor(ms / 3600000.0)::bigint * 3600000 AS hour_ms, source, count(DISTINCT transaction) AS n
       FROM (SELECT source, record ->> 'transaction' AS transaction, dcache_probe.epoch_ms(record ->> 'datestamp') AS ms
               FROM dcache_probe.${table}) t
      WHERE ms >= $1 AND ms < $2
      GROUP BY 1, 2`,
    [since.getTime(), until.getTime()],
  );
  return new Map(rows.map((r) => [`${r.hour_ms}:${r.source}`, Number(r.n)]));
}

export async function verifyDeliveries(db: pg.Pool, billingSchema: string, since: Date, until: Date): Promise<HourCheck[]> {
  const ledger = await db.query<{ hour_ms: string; source: string; delivered: string; skipped: string }>(
    `SELECT (extract(epoch FROM hour) * 1000)::bigint AS hour_ms, source, delivered, skipped
       FROM dcache_probe.delivered_hour WHERE hour >= $1 AND hour < $2`,
    [since.toISOString(), until.toISOString()],
  );
  const queued = await oursPerHour(db, 'capture_queue', since, until);
  const quarantined = await oursPerHour(db, 'quarantine', since, until);
  const checks = new Map<string, HourCheck>();
  const at = (hourMs: number, source: HourCheck['source']): HourCheck => {
    const id = `${hourMs}:${source}`;
    let c = checks.get(id);
    if (!c) {
      c = { hour: new Date(hourMs).toISOString(), source, expected: 0, delivered: 0, skipped: 0, quarantined: quarantined.get(id) ?? 0, queued: queued.get(id) ?? 0, difference: 0 };
      checks.set(id, c);
    }
    return c;
  };
  for (const source of ['billinginfo', 'storageinfo'] as const) {
    for (const [hourMs, n] of await expectedPerHour(db, billingSchema, source, since, until)) at(hourMs, source).expected = n;
  }
  for (const r of ledger.rows) {
    const c = at(Number(r.hour_ms), r.source as HourCheck['source']);
    c.delivered = Number(r.delivered);
    c.skipped = Number(r.skipped);
  }
  for (const id of [...queued.keys(), ...quarantined.keys()]) {
    const [hourMs, source] = id.split(':');
    at(Number(hourMs), source as HourCheck['source']);
  }
  for (const c of checks.values()) c.difference = c.expected - c.delivered - c.skipped - c.quarantined - c.queued;
  return [...checks.values()].sort((a, b) => a.hour.localeCompare(b.hour) || a.source.localeCompare(b.source));
}

export function formatChecks(checks: readonly HourCheck[], all: boolean): string {
  const shown = all ? checks : checks.filter((c) => c.difference !== 0);
  const head = 'hour (UTC)                 source       expected  delivered  skipped  quarantined  queued  difference';
  const lines = shown.map(
    (c) =>
      `${c.hour.padEnd(26)} ${c.source.padEnd(12)} ${String(c.expected).padStart(8)} ${String(c.delivered).padStart(10)} ${String(c.skipped).padStart(8)} ${String(c.quarantined).padStart(12)} ${String(c.queued).padStart(7)} ${(c.difference > 0 ? `${c.difference} missing` : c.difference < 0 ? `${-c.difference} extra` : 'ok').padStart(11)}`,
  );
  const bad = checks.filter((c) => c.difference !== 0).length;
  const total = checks.reduce((n, c) => n + c.expected, 0);
  return `${shown.length ? [head, ...lines].join('\n') + '\n' : ''}${checks.length} hours checked, ${total} records expected: ${bad === 0 ? 'every record accounted for' : `${bad} hours with missing or extra records`}\n`;
}

