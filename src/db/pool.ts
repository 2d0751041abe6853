/**
 * Database connections. Every connection of the probe reads legacy `timestamp without time
 * zone` values in the configured zone (the session TimeZone), names itself in
 * pg_stat_activity, and uses TCP keep-alive so a dead server is noticed.
 *
 * And what goes wrong there, typed: a database restart, a crash restart or an administrator's
 * pg_terminate_backend is a *connection fault*, which the running probe waits out (it must
 * never end the process: a connection that breaks emits an 'error' event, and an 'error'
 * event nobody listens to kills node). Errors only an operator can fix (wrong password, no
 * such database, not installed, permission denied) are said clearly and end a command.
 */
import pg from 'pg';
import type { Logger } from '../logger';

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
  // Nor may a checked-out one's: pg-pool listens for errors on idle clients only, and a
  // delivery holds its client while it waits for the collector. The error is not lost: the
  // holder's next query fails with it ("not queryable"), and the holder releases the client
  // as broken.
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

/** Socket errors that mean the server or the path to it went away (try again later). */
const CONNECTION_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ENETDOWN', 'EAI_AGAIN', 'ENOTCONN']);

/**
 * SQLSTATEs of a session the server ended or cannot start yet: class 08 (connection
 * exception), 57P01 admin shutdown (fast restart, pg_terminate_backend), 57P02 crash shutdown
 * (another backend crashed), 57P03 cannot connect now (starting up, recovering), 57P05 idle
 * session timeout, 25P03 idle-in-transaction timeout, 53300 too many connections.
 */
const CONNECTION_SQLSTATES = new Set(['57P01', '57P02', '57P03', '57P05', '25P03', '53300']);

/** node-postgres says these without a code. */
const CONNECTION_MESSAGES = /^Connection terminated|^Connection ended|timeout expired|Query read timeout|is not queryable|connection timeout/i;

/** True when the error means "the connection or the server is gone for now": wait and retry. */
export function isConnectionFault(err: unknown): boolean {
  for (let e = err as { code?: unknown; message?: unknown; cause?: unknown; errors?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (e instanceof DatabaseError) return e.code === 'UNAVAILABLE';
    const code = typeof e.code === 'string' ? e.code : '';
    if (CONNECTION_ERRNOS.has(code) || CONNECTION_SQLSTATES.has(code) || code.startsWith('08')) return true;
    if (typeof e.message === 'string' && CONNECTION_MESSAGES.test(e.message)) return true;
    // Node tries every address of a host name and reports them together.
    if (Array.isArray(e.errors) && e.errors.length > 0 && e.errors.every(isConnectionFault)) return true;
  }
  return false;
}

/**
 * UNAVAILABLE is the only one worth waiting for; the others need an operator: the login is
 * refused (AUTHENTICATION), the database or host does not exist (NO_SUCH_DATABASE,
 * UNKNOWN_HOST), a grant is missing (PERMISSION), the probe is not installed or is older than
 * this build (NOT_INSTALLED, SCHEMA_OUTDATED), or anything else (FAILED).
 */
export type DatabaseErrorCode = 'UNAVAILABLE' | 'AUTHENTICATION' | 'NO_SUCH_DATABASE' | 'UNKNOWN_HOST' | 'PERMISSION' | 'NOT_INSTALLED' | 'SCHEMA_OUTDATED' | 'FAILED';

export class DatabaseError extends Error {
  constructor(
    readonly code: DatabaseErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DatabaseError';
  }

  /** Waiting may cure it (the server restarts, the network comes back). */
  get retryable(): boolean {
    return this.code === 'UNAVAILABLE';
  }
}

/** The database cannot be reached right now (refused, terminated, starting up, timed out). */
export class DatabaseUnavailable extends DatabaseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('UNAVAILABLE', message, options);
    this.name = 'DatabaseUnavailable';
  }
}

function codeOf(err: unknown): DatabaseErrorCode {
  if (err instanceof DatabaseError) return err.code;
  if (isConnectionFault(err)) return 'UNAVAILABLE';
  switch ((err as { code?: string }).code) {
    case '28P01':
    case '28000':
      return 'AUTHENTICATION';
    case '3D000':
      return 'NO_SUCH_DATABASE';
    case 'ENOTFOUND':
      return 'UNKNOWN_HOST';
    case '42501':
      return 'PERMISSION';
    default:
      return 'FAILED';
  }
}

/** Any error met at the database as a DatabaseError with its code and a message a person can act on. */
export function databaseError(err: unknown, where?: string): DatabaseError {
  const code = codeOf(err);
  const message = where ? `${where}: ${describeDatabaseError(err)}` : describeDatabaseError(err);
  return code === 'UNAVAILABLE' ? new DatabaseUnavailable(message, { cause: err }) : new DatabaseError(code, message, { cause: err });
}

/**
 * Says once when the database becomes unreachable and once when it is back, however many
 * retries lie between; what it says meanwhile is `problem` (for /readyz).
 */
export class DatabaseOutage {
  private since: number | null = null;
  private attempts = 0;
  private reason = '';

  constructor(
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  get down(): boolean {
    return this.since !== null;
  }

  /** Null while the database answers. */
  get problem(): string | null {
    if (this.since === null) return null;
    const seconds = Math.round((this.now() - this.since) / 1000);
    return `database unavailable for ${seconds} s (${this.attempts} failed attempts; retrying): ${this.reason}`;
  }

  /** A connection fault met during `during` (start-up, delivery, …). */
  fault(err: unknown, during: string): void {
    this.attempts++;
    this.reason = describeDatabaseError(err);
    if (this.since !== null) return;
    this.since = this.now();
    this.log.error('database unavailable; retrying until it is back (captured rows wait in the database)', { error: this.reason, during });
  }

  /** The database answered. */
  ok(): void {
    if (this.since === null) return;
    this.log.info('database available again', { downSeconds: Math.round((this.now() - this.since) / 100) / 10, failedAttempts: this.attempts });
    this.since = null;
    this.attempts = 0;
    this.reason = '';
  }
}

/** A PostgreSQL error as one line a person can act on. */
export function describeDatabaseError(err: unknown): string {
  const e = err as { code?: string; message?: string; errno?: string };
  if (err instanceof DatabaseError) return err.message;
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
    case '57P03':
      return `the database is not accepting connections: ${e.message}`;
    default:
      return e.message || (e.code ? `${e.code}` : String(err));
  }
}

/**
 * Runs `work` in a transaction: COMMIT when it resolves, ROLLBACK when it throws. Given the
 * pool, on a client of the pool; a client that failed inside the transaction is destroyed, not
 * returned to the pool (its connection may be broken, or in an unknown state). Given a client
 * (one the caller holds, e.g. migrate's own connection), on that client, which stays the
 * caller's to end.
 */
export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T>;
export async function inTransaction<T>(client: pg.ClientBase, work: (client: pg.ClientBase) => Promise<T>): Promise<T>;
export async function inTransaction<T>(db: pg.Pool | pg.ClientBase, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  // (Given a client, `work` was declared for a ClientBase: the second signature.)
  if (!(db instanceof pg.Pool)) return transaction(db, work as (client: pg.ClientBase) => Promise<T>);
  return withClient(db, (client) => transaction(client, work));
}

/**
 * Runs `work` on one client of the pool (statements that must share a session), and gives it
 * back: released, or destroyed if `work` failed (its connection may be broken, or in an
 * unknown state).
 */
export async function withClient<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let failed = false;
  try {
    return await work(client);
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    client.release(failed);
  }
}

async function transaction<T, C extends pg.ClientBase>(client: C, work: (client: C) => Promise<T>): Promise<T> {
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
