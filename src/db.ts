/**
 * Database connections. Every connection of the probe reads legacy `timestamp without time
 * zone` values in the configured zone (the session TimeZone), names itself in
 * pg_stat_activity, and uses TCP keep-alive so a dead server is noticed.
 */
import pg from 'pg';

export interface DatabaseOptions {
  url: string;
  timeZone?: string;
  /** Connections in the pool (workers + listener housekeeping). */
  max?: number;
  /** Client-side timeout of each query (a half-open connection must not hang delivery). */
  queryTimeoutMs?: number;
  /** Server-side end of a session left idle inside a transaction this long. */
  idleInTransactionMs?: number;
  applicationName?: string;
}

/** Session settings passed at connect time (so they hold from the first query on). */
export function sessionOptions(options: DatabaseOptions): string {
  const settings: string[] = [];
  // Legacy timestamps are read in this zone; no query can run in another.
  if (options.timeZone) settings.push(`-c TimeZone=${options.timeZone.replace(/[^A-Za-z0-9_+\-/:]/g, '')}`);
  if (options.idleInTransactionMs) settings.push(`-c idle_in_transaction_session_timeout=${Math.trunc(options.idleInTransactionMs)}`);
  // The server notices a vanished probe in about two minutes instead of TCP's two hours.
  settings.push('-c tcp_keepalives_idle=60', '-c tcp_keepalives_interval=10', '-c tcp_keepalives_count=6');
  return settings.join(' ');
}

export function connectionConfig(options: DatabaseOptions): pg.ClientConfig {
  return {
    connectionString: options.url,
    application_name: options.applicationName ?? 'dcache-probe',
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    connectionTimeoutMillis: 10_000,
    options: sessionOptions(options),
  };
}

export function createPool(options: DatabaseOptions): pg.Pool {
  const pool = new pg.Pool({ ...connectionConfig(options), max: options.max ?? 4, idleTimeoutMillis: 30_000, query_timeout: options.queryTimeoutMs });
  // An idle client's error (server restart) must not crash the process; the next checkout
  // gets a fresh connection.
  pool.on('error', () => undefined);
  // A checked-out client's error (its session ended by the server) must not crash it either:
  // the query in progress fails, and the caller handles that.
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

/** A PostgreSQL error as one line a person can act on. */
export function describeDatabaseError(err: unknown): string {
  const e = err as { code?: string; message?: string; errno?: string };
  switch (e.code) {
    case 'ECONNREFUSED':
      return `cannot reach the database (connection refused): is PostgreSQL running and the URL's host/port right?`;
    case 'ENOTFOUND':
      return `cannot resolve the database host: ${e.message}`;
    case '28P01':
      return 'the database refused the password (wrong password for this user)';
    case '28000':
      return `the database refused the login: ${e.message}`;
    case '3D000':
      return `no such database: ${e.message}`;
    case '42501':
      return `permission denied: ${e.message} (grant the probe's role with "dcache-probe migrate --grant-to ROLE")`;
    default:
      return e.message ?? String(err);
  }
}

/**
 * Runs `work` in a transaction on a client of the pool: COMMIT when it resolves, ROLLBACK when
 * it throws. A client that failed inside the transaction is destroyed, not returned to the pool
 * (its connection may be broken, or in an unknown state).
 */
export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let failed = false;
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    failed = true;
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release(failed);
  }
}
