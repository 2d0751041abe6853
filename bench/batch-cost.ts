#!/usr/bin/env node
/**
 * What each statement of a batch costs the database: drains a backlog in-process with the real
 * Delivery and CaptureQueue (one worker, a sender that accepts everything, no statistics
 * recorder), on a pool of one connection, and sums per statement (by its first words) the calls,
 * the time from sending it to its answer, and the CPU its backend used meanwhile (from
 * /proc/<backend pid>/stat, 10 ms ticks: only the sums over many calls mean something). Made
 * for issue 15 (the database's share of a catch-up), to see which statements to make cheaper.
 *
 *   npx tsc -p bench/tsconfig.json && node dist/bench/batch-cost.js [--rows 40000] [--age 0|3600]
 *
 * --age: seconds the queue is restamped into the past (0: every mover within its door grace,
 * so the claim looks its door up, as in live operation; 3600: a backlog after an outage).
 */
import { parseArgs } from 'node:util';
import pg from 'pg';
import { CaptureQueue } from '../src/db/queue';
import { Delivery } from '../src/pipeline/delivery';
import { silentLogger } from '../src/logger';
import { analyzeBilling, createBenchDatabase, fillBacklog, restoreQueue, snapshotQueue } from './lib/db';
import { cpuSeconds } from './lib/proc';
import { fixed, int, table } from './lib/stats';

interface Cost {
  calls: number;
  wallMs: number;
  cpuS: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rows: { type: 'string', default: '40000' }, age: { type: 'string', default: '0' }, runs: { type: 'string', default: '2' } } });
  const rows = Number(values.rows);
  const db = await createBenchDatabase('batchcost');
  try {
    await fillBacklog(db.pool, rows, 'bc');
    await analyzeBilling(db.pool);
    await snapshotQueue(db.pool);
    for (let run = 0; run < Number(values.runs); run++) {
      await restoreQueue(db.url);
      await db.pool.query(`UPDATE dcache_probe.capture_queue SET captured_at = now() - make_interval(secs => $1)`, [Number(values.age)]);
      await db.pool.query('VACUUM ANALYZE dcache_probe.capture_queue');
      await db.pool.query('TRUNCATE dcache_probe.claim');
      const costs = new Map<string, Cost>();
      const pool = new pg.Pool({ connectionString: db.url, max: 1, application_name: 'dcache-probe batch-cost' });
      const pidOf = new WeakMap<pg.ClientBase, number>();
      pool.on('connect', (client) => {
        const original = client.query.bind(client) as (...a: unknown[]) => Promise<unknown>;
        (client as unknown as { query: unknown }).query = async (...args: unknown[]) => {
          const text = typeof args[0] === 'string' ? args[0] : ((args[0] as { text?: string }).text ?? '?');
          const label = text.replace(/\s+/g, ' ').trim().slice(0, 70);
          const pid = pidOf.get(client);
          const cpu0 = pid ? (cpuSeconds(pid) ?? 0) : 0;
          const t0 = performance.now();
          const done = () => {
            const c = costs.get(label) ?? { calls: 0, wallMs: 0, cpuS: 0 };
            c.calls++;
            c.wallMs += performance.now() - t0;
            c.cpuS += pid ? (cpuSeconds(pid) ?? 0) - cpu0 : 0;
            costs.set(label, c);
          };
          // pg.Pool's own query() passes a callback: time to when it is called.
          const last = args.length - 1;
          if (typeof args[last] === 'function') {
            const callback = args[last] as (...r: unknown[]) => void;
            args[last] = (...r: unknown[]) => {
              done();
              callback(...r);
            };
            return original(...args);
          }
          try {
            return await original(...args);
          } finally {
            done();
          }
        };
      });
      const first = await pool.connect();
      const { rows: pidRows } = await first.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      pidOf.set(first, pidRows[0]!.pid);
      first.release();
      costs.clear();
      const queue = new CaptureQueue('public', pg.escapeIdentifier);
      const sender = { send: async () => ({ kind: 'accepted' as const, attempts: 1 }) };
      const delivery = new Delivery(pool, queue, sender, {
        bundleSize: 500,
        maxBundleBytes: 1_800_000,
        doorGraceSeconds: 120,
        leaseSeconds: 60,
        mapping: { probeName: 'dcache-transfer:bench.example.org', siteName: 'BENCH', grid: 'OSG', dcacheServerHost: 'dcache.example.org', reportTape: true },
      }, silentLogger());
      const backend0 = cpuSeconds(pidRows[0]!.pid) ?? 0;
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      let delivered = 0;
      for (;;) {
        const r = await delivery.deliverBatch();
        if (r.claimed === 0) break;
        delivered += r.delivered;
      }
      const wallS = (performance.now() - t0) / 1000;
      const probe = process.cpuUsage(cpu0);
      const backendS = (cpuSeconds(pidRows[0]!.pid) ?? 0) - backend0;
      await pool.end();
      const per100k = (x: number) => (x / rows) * 100_000;
      process.stdout.write(`\nrun ${run + 1}: ${int(delivered)} of ${int(rows)} delivered in ${fixed(wallS, 2)} s; backend ${fixed(per100k(backendS))} CPU-s/100k, this process ${fixed(per100k((probe.user + probe.system) / 1e6))} CPU-s/100k\n`);
      const sorted = [...costs.entries()].sort((a, b) => b[1].wallMs - a[1].wallMs);
      process.stdout.write(table(['statement', 'calls', 'ms total', 'ms/call', 'backend CPU-s/100k'], sorted.map(([label, c]) => [label, int(c.calls), fixed(c.wallMs, 0), fixed(c.wallMs / c.calls, 2), fixed(per100k(c.cpuS))])) + '\n');
    }
  } finally {
    await db.drop();
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
