#!/usr/bin/env node
/**
 * Claim and acknowledgement of a batch, this build against an older one, paired in one run
 * (issue 11): the machine's speed drifts up to 3x between runs and is shared, so only figures
 * taken side by side compare. Made for the lease (migration 008: a short claim transaction
 * under an advisory lock records one lease row per batch; keys reserved in another; the POST
 * with nothing open; a fenced settling transaction deletes the rows) against adfba80 (rows
 * locked FOR UPDATE SKIP LOCKED in a transaction held open through the POST, deleted at commit).
 *
 *   npx tsc -p bench/tsconfig.json && node dist/bench/claim-ab.js [--baseline-commit adfba80]
 *        [--rows 100000[,300000]] [--rounds 3] [--workers 2] [--bundle 500] [--within-grace]
 *        [--keep-claim-table]
 *   node dist/bench/claim-ab.js --pick-growth [--rows 100000]
 *
 * The baseline's src/ and sql/ are built into a temporary directory (bench/lib/build.ts). Each
 * build gets its own database (dCache's modern billing fixture), migrated by its own CLI and
 * sql/ (006 for adfba80, 008 now). N transfers are written through the triggers into the
 * current build's database; its doorinfo, billinginfo and queue snapshot are copied to the
 * other one (pg_dump --data-only | psql) and checked to be the same (fingerprints). Then each
 * round drains the same restored queue with `dcache-probe poll --once` of each build, the order
 * alternating every round, against one test collector (`--keep none`): bench/catchup.ts
 * measures rows/s, the probe's CPU and its PostgreSQL backends' CPU; bench/lib/wal.ts the WAL
 * the run wrote to that database (pg_walinspect, record by record: the server is shared). A
 * sampler (every 100 ms) counts the probe's backends that hold an XID (an open writing
 * transaction), the oldest such transaction, and lock waits (the claim lock is "advisory").
 *
 * The queue is restamped an hour into the past (a backlog after an outage: no mover waits for
 * its door); --within-grace restamps it to "just captured" before every run, so each mover's
 * door is looked up in the claim as in live operation. Every run must deliver every row and
 * leave the queue (and, for the lease, dcache_probe.claim) empty. Raw results go to
 * bench/results/claim-ab-<time>.json.
 *
 * dcache_probe.claim is truncated before each run of the lease, so that every run starts as
 * on a fresh install: every batch leaves dead versions of its lease row behind (≈ 6 kB), and
 * with autovacuum off (this server) the planner estimates the table from its size, until the
 * pick's NOT IN is no longer hashed (--pick-growth). --keep-claim-table leaves it as it is.
 *
 * --pick-growth measures only that: one pick of 500 (pickQuery, EXPLAIN ANALYZE, median of 5)
 * on a queue of --rows, beside another worker's live lease, as batches' lease rows are
 * written and deleted as src/db/queue.ts writes them (insert, renew, keys, delete), and then after
 * a VACUUM of the table; next to it the same pick without JIT and parallel workers, and two
 * whose plan does not depend on the table's size: the leased ids gathered once into an array
 * (an InitPlan), and the NOT IN over a function that declares ROWS 1000.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type pg from 'pg';
import { pickQuery } from '../src/db/queue';
import { catchupRun, type CatchupRun } from './catchup';
import { buildCommit } from './lib/build';
import { analyzeBilling, createBenchDatabase, fillBacklog, snapshotQueue, truncateAll, type BenchDatabase } from './lib/db';
import { CLI, RESULTS_DIR, ROOT, note } from './lib/env';
import { startCollector } from './lib/proc';
import { fixed, int, median, spread, summary, table } from './lib/stats';
import { WalWindow, installWalInspect, walBytes, type WalPart, type WalUse } from './lib/wal';

type Design = 'old' | 'new';
const DESIGNS: readonly Design[] = ['old', 'new'];

interface Build {
  design: Design;
  commit: string;
  cli: string;
  db: BenchDatabase;
}

/** What the sampler saw of the probe's backends during one run. */
interface Activity {
  samples: number;
  /** Mean number of the probe's backends holding an XID (a writing transaction open). */
  meanWithXid: number;
  /** The oldest such transaction seen, seconds. */
  oldestXidS: number;
  /** Backend-seconds spent waiting on locks, by wait event (≈ samples × 0.1 s). */
  lockWaitS: Record<string, number>;
}

interface Run {
  design: Design;
  round: number;
  catchup: CatchupRun;
  wal: WalUse;
  activity: Activity;
}

const SAMPLE_MS = 100;

/** Samples pg_stat_activity for the probe's backends of one database until stopped. */
function sampleActivity(pool: pg.Pool): { stop(): Promise<Activity> } {
  let running = true;
  const a = { samples: 0, withXid: 0, oldestXidS: 0, lockWaitS: {} as Record<string, number> };
  const loop = (async () => {
    while (running) {
      const t = Date.now();
      try {
        const { rows } = await pool.query<{ xid: boolean; wait: string | null; age: number | null }>(
          `SELECT backend_xid IS NOT NULL AS xid,
                  CASE WHEN wait_event_type = 'Lock' THEN wait_event END AS wait,
                  extract(epoch FROM clock_timestamp() - xact_start)::float8 AS age
             FROM pg_stat_activity WHERE application_name = 'dcache-probe' AND datname = current_database()`,
        );
        a.samples++;
        for (const r of rows) {
          if (r.xid) {
            a.withXid++;
            a.oldestXidS = Math.max(a.oldestXidS, r.age ?? 0);
          }
          if (r.wait) a.lockWaitS[r.wait] = (a.lockWaitS[r.wait] ?? 0) + SAMPLE_MS / 1000;
        }
      } catch {
        /* sampling is best effort */
      }
      await new Promise((r) => setTimeout(r, Math.max(0, SAMPLE_MS - (Date.now() - t))));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { samples: a.samples, meanWithXid: a.samples ? a.withXid / a.samples : 0, oldestXidS: a.oldestXidS, lockWaitS: a.lockWaitS };
    },
  };
}

/** A build's own `migrate` (its own sql/: its own schema version). */
function migrateWith(cli: string, url: string): string {
  return execFileSync(process.execPath, [cli, 'migrate', '--db-url', url, '--log-level', 'warn'], { encoding: 'utf8' }).trim();
}

/** Order-independent fingerprint of a table's rows (count and a sum of 64-bit hashes). */
async function fingerprint(pool: pg.Pool, table: string): Promise<string> {
  const { rows } = await pool.query<{ f: string }>(`SELECT count(*) || ':' || coalesce(sum(hashtextextended(t::text, 0)), 0) AS f FROM ${table} t`);
  return rows[0]!.f;
}

const COPIED = ['public.doorinfo', 'public.billinginfo', 'public.bench_queue_snapshot'];

/** The same billing rows and queue snapshot in `to` as in `from` (capture triggers off meanwhile). */
async function copyBacklog(from: BenchDatabase, to: BenchDatabase): Promise<void> {
  await truncateAll(to.pool);
  await to.pool.query('DROP TABLE IF EXISTS public.bench_queue_snapshot');
  await to.pool.query('CREATE TABLE public.bench_queue_snapshot AS SELECT id, source, captured_at, record FROM dcache_probe.capture_queue WITH NO DATA');
  const tables = COPIED.flatMap((t) => ['-t', t]);
  execFileSync('bash', ['-o', 'pipefail', '-c', 'pg_dump --data-only --disable-triggers "${@:3}" "$1" | psql -q -v ON_ERROR_STOP=1 "$2"', 'copy', from.url, to.url, ...tables], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  await analyzeBilling(to.pool);
  for (const t of COPIED) {
    const [a, b] = [await fingerprint(from.pool, t), await fingerprint(to.pool, t)];
    if (a !== b) throw new Error(`${t} differs after the copy: ${a} against ${b}`);
  }
}

/** Moves the snapshot's capture times so that the newest is `ageSeconds` old (spacing kept). */
async function restamp(pool: pg.Pool, ageSeconds: number): Promise<void> {
  await pool.query(
    `UPDATE public.bench_queue_snapshot
        SET captured_at = captured_at + (now() - make_interval(secs => $1) - (SELECT max(captured_at) FROM public.bench_queue_snapshot))`,
    [ageSeconds],
  );
  await pool.query('VACUUM public.bench_queue_snapshot');
}

async function leasesLeft(build: Build): Promise<number> {
  if (build.design !== 'new') return 0;
  const { rows } = await build.db.pool.query<{ n: string }>('SELECT count(*) AS n FROM dcache_probe.claim');
  return Number(rows[0]!.n);
}

/** The figures compared, each from one run. */
const FIGURES: { name: string; unit: string; of: (r: Run, bundle: number) => number; format?: (n: number) => string }[] = [
  { name: 'catch-up', unit: 'rows/s', of: (r) => r.catchup.rowsPerS },
  { name: '… steady (first to last bundle)', unit: 'rows/s', of: (r) => r.catchup.steadyRowsPerS },
  { name: 'PostgreSQL CPU (probe backends)', unit: 's/100k rows', of: (r) => r.catchup.pgBackendCpuPer100k, format: (n) => fixed(n) },
  { name: 'probe CPU', unit: 's/100k rows', of: (r) => r.catchup.probeCpuPer100k, format: (n) => fixed(n) },
  { name: 'WAL', unit: 'bytes/row', of: (r) => r.wal.bytes / r.catchup.rows },
  { name: '… without full-page images', unit: 'bytes/row', of: (r) => (r.wal.bytes - r.wal.fpiBytes) / r.catchup.rows },
  { name: '… of it row locks (Heap/LOCK)', unit: 'bytes/row', of: (r) => walBytes(r.wal, (p) => p.kind === 'Heap/LOCK', false) / r.catchup.rows, format: (n) => fixed(n, 1) },
  { name: '… of it lease rows (dcache_probe.claim)', unit: 'bytes/row', of: (r) => walBytes(r.wal, (p) => p.relation === 'dcache_probe.claim', false) / r.catchup.rows, format: (n) => fixed(n, 1) },
  { name: 'WAL records', unit: 'per row', of: (r) => r.wal.records / r.catchup.rows, format: (n) => fixed(n) },
  { name: 'transactions with an XID (commits)', unit: 'per batch', of: (r, b) => r.wal.commits / (r.catchup.rows / b), format: (n) => fixed(n) },
  { name: 'shared-buffer hits', unit: 'per row', of: (r) => r.catchup.blocksHitPerRow, format: (n) => fixed(n, 1) },
  { name: 'backends holding an XID (sampled mean)', unit: 'of workers', of: (r) => r.activity.meanWithXid, format: (n) => fixed(n) },
  { name: 'oldest XID-holding transaction seen', unit: 's', of: (r) => r.activity.oldestXidS, format: (n) => fixed(n, 2) },
  { name: 'lock waits (sampled)', unit: 'backend-s/100k', of: (r) => (Object.values(r.activity.lockWaitS).reduce((x, y) => x + y, 0) / r.catchup.rows) * 100_000, format: (n) => fixed(n, 2) },
];

/** Medians per row of the WAL (without FPIs) grouped by `key`, old against new; groups ≥ 0.5 byte/row. */
function breakdown(title: string, old: Run[], now: Run[], size: number, key: (p: WalPart) => string): string {
  const keys = [...new Set([...old, ...now].flatMap((r) => r.wal.parts.map(key)))];
  const perRow = (list: Run[], k: string) => median(list.map((r) => walBytes(r.wal, (p) => key(p) === k, false) / size));
  const rows = keys
    .map((k) => [k, perRow(old, k), perRow(now, k)] as const)
    .filter(([, a, b]) => a >= 0.5 || b >= 0.5)
    .sort((x, y) => Math.max(y[1], y[2]) - Math.max(x[1], x[2]))
    .map(([k, a, b]) => [k, fixed(a, 1), fixed(b, 1)]);
  return `${title}:\n${table(['', 'old', 'new'], rows)}`;
}

function report(runs: Run[], sizes: number[], bundle: number, commits: Record<Design, string>): string {
  const out: string[] = [];
  for (const size of sizes) {
    const of = (d: Design) => runs.filter((r) => r.catchup.rows === size && r.design === d).sort((a, b) => a.round - b.round);
    const [old, now] = [of('old'), of('new')];
    const rows = FIGURES.map((f) => {
      const fmt = f.format ?? int;
      const [a, b] = [summary(old.map((r) => f.of(r, bundle))), summary(now.map((r) => f.of(r, bundle)))];
      // Same-round ratios: each round's new run against its old one.
      const ratios = summary(now.map((r, i) => f.of(r, bundle) / f.of(old[i]!, bundle)).filter(Number.isFinite));
      return [`${f.name} (${f.unit})`, spread(a, fmt), spread(b, fmt), a.median === 0 ? '–' : `${fixed(b.median / a.median)}× (${fixed(ratios.min)}–${fixed(ratios.max)})`];
    });
    const loads = summary([...old, ...now].map((r) => r.catchup.loadAvg1));
    out.push(`${int(size)} queued rows, ${old.length} rounds; old = ${commits.old}, new = ${commits.new}; 1-minute load ${spread(loads, (n) => fixed(n, 1))}`);
    out.push(table(['figure', 'old: median (min–max)', 'new: median (min–max)', 'new/old (same-round min–max)'], rows));
    out.push(breakdown('WAL by table (with its indexes and TOAST), bytes per row without full-page images', old, now, size, (p) => p.relation));
    out.push(breakdown('WAL by record kind, bytes per row without full-page images', old, now, size, (p) => p.kind));
    const waits = (list: Run[]) => {
      const sum: Record<string, number> = {};
      for (const r of list) for (const [k, v] of Object.entries(r.activity.lockWaitS)) sum[k] = (sum[k] ?? 0) + v;
      return Object.entries(sum).map(([k, v]) => `${k} ${fixed(v / list.length, 1)} s`).join(', ') || 'none';
    };
    out.push(`lock waits per run (sampled, backend-seconds): old ${waits(old)}; new ${waits(now)}`);
    out.push('');
  }
  return out.join('\n');
}

const LEASED_FILTER = 'AND q.id NOT IN (SELECT unnest(l.ids) FROM dcache_probe.claim l)';
/** The pick with the leased ids gathered once (an InitPlan): its plan ignores the table's size. */
const LEASED_ARRAY = 'AND q.id <> ALL (ARRAY(SELECT unnest(l.ids) FROM dcache_probe.claim l))';
/**
 * The same NOT IN over a function that declares its row count (created in the bench database
 * only): called in the select list it is not inlined, so the planner takes ROWS 1000 and
 * always hashes it.
 */
const LEASED_FUNCTION_SQL = `CREATE FUNCTION public.bench_leased_ids() RETURNS SETOF bigint LANGUAGE sql STABLE ROWS 1000
                               AS 'SELECT unnest(ids) FROM dcache_probe.claim'`;
const LEASED_FUNCTION = 'AND q.id NOT IN (SELECT public.bench_leased_ids())';

/** "hashed" / "plain" SubPlan or "initplan", "+parallel", "+JIT": what EXPLAIN's JSON shows. */
function planShape(plan: Record<string, unknown>): string {
  const text = JSON.stringify(plan);
  const filter = /hashed SubPlan/.test(text) ? 'hashed' : /SubPlan/.test(text) ? 'plain SubPlan' : 'initplan';
  return [filter, text.includes('"Gather') ? 'parallel' : '', plan.JIT ? 'JIT' : ''].filter(Boolean).join('+');
}

/** See the module comment (--pick-growth). */
async function pickGrowth(rows: number): Promise<void> {
  const shipped = pickQuery('"public".doorinfo');
  if (!shipped.includes(LEASED_FILTER)) throw new Error('the pick no longer has the NOT IN filter this mode compares');
  // [the pick, settings for its session]: the shipped pick also without JIT and parallel workers.
  const variants: Record<string, [string, string]> = {
    shipped: [shipped, ''],
    'shipped, jit off, no parallel': [shipped, 'SET jit = off; SET max_parallel_workers_per_gather = 0'],
    'leased ids as an array': [shipped.replace(LEASED_FILTER, LEASED_ARRAY), ''],
    'NOT IN a ROWS 1000 function': [shipped.replace(LEASED_FILTER, LEASED_FUNCTION), ''],
  };
  const db = await createBenchDatabase('claimgrowth');
  const client = await db.pool.connect();
  try {
    await fillBacklog(db.pool, rows, 'growth');
    await analyzeBilling(db.pool);
    await db.pool.query('VACUUM ANALYZE dcache_probe.capture_queue');
    await db.pool.query(LEASED_FUNCTION_SQL);
    const leaseOf = (owner: string, offset: number, seconds: number) =>
      client.query<{ batch: string }>(
        `INSERT INTO dcache_probe.claim (owner, ids, keys, leased_until)
         SELECT $1, array_agg(id ORDER BY id), '{}', now() + make_interval(secs => $3)
           FROM (SELECT id FROM dcache_probe.capture_queue ORDER BY id OFFSET $2 LIMIT 500) s RETURNING batch`,
        [owner, offset, seconds],
      );
    await leaseOf('other worker', 0, 3600);
    process.stdout.write(`one pick of 500 on ${int(rows)} queued rows beside a live lease; load ${fixed(loadavg()[0]!, 1)}
`);
    const header = ['lease rows written', 'claim heap', ...Object.keys(variants).map((v) => `${v}: ms (plan)`)];
    const lines: string[][] = [];
    let written = 0;
    for (const step of [0, 200, 400, 600, 700, 800, 1000, 1200, 1600, -1]) {
      for (; step >= 0 && written < step; written++) {
        const batch = (await leaseOf('me', 500, 30)).rows[0]!.batch;
        await client.query('BEGIN');
        await client.query(`UPDATE dcache_probe.claim SET leased_until = now() + interval '30 s' WHERE batch = $1`, [batch]);
        await client.query(`UPDATE dcache_probe.claim SET keys = (SELECT array_agg(gen_random_uuid()) FROM generate_series(1, 500)) WHERE batch = $1`, [batch]);
        await client.query('COMMIT');
        await client.query('DELETE FROM dcache_probe.claim WHERE batch = $1', [batch]);
      }
      if (step < 0) await client.query('VACUUM dcache_probe.claim');
      const { rows: size } = await client.query<{ kb: string }>(`SELECT pg_relation_size('dcache_probe.claim') / 1024 AS kb`);
      const cells = [step < 0 ? `${written}, then VACUUM` : String(written), `${int(Number(size[0]!.kb))} kB`];
      for (const [sql, settings] of Object.values(variants)) {
        if (settings) await client.query(settings);
        const times: number[] = [];
        let plan: Record<string, unknown> = {};
        for (let i = 0; i < 5; i++) {
          const { rows: r } = await client.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${sql}`, [500, 120]);
          plan = r[0]['QUERY PLAN'][0];
          times.push(Number(plan['Execution Time']) + Number(plan['Planning Time']));
        }
        cells.push(`${fixed(median(times), 1)} (${planShape(plan)})`);
        await client.query('RESET jit; RESET max_parallel_workers_per_gather');
      }
      lines.push(cells);
      note(cells.join('  '));
    }
    process.stdout.write(table(header, lines) + '\n');
  } finally {
    client.release();
    await db.drop();
  }
}

function positiveInts(text: string, what: string): number[] {
  const values = text.split(',').map((s) => Number(s.trim()));
  if (values.length === 0 || values.some((n) => !Number.isInteger(n) || n <= 0)) throw new Error(`--${what}: "${text}" is not a positive whole number (or a comma-separated list of them)`);
  return values;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'baseline-commit': { type: 'string', default: 'adfba80' },
      rows: { type: 'string', default: '100000' },
      rounds: { type: 'string', default: '3' },
      workers: { type: 'string', default: '2' },
      bundle: { type: 'string', default: '500' },
      'within-grace': { type: 'boolean', default: false },
      'keep-claim-table': { type: 'boolean', default: false },
      'pick-growth': { type: 'boolean', default: false },
    },
  });
  if (values['pick-growth']) return pickGrowth(positiveInts(values.rows, 'rows')[0]!);
  const sizes = positiveInts(values.rows, 'rows');
  const [rounds] = positiveInts(values.rounds, 'rounds');
  const [workers] = positiveInts(values.workers, 'workers');
  const [bundle] = positiveInts(values.bundle, 'bundle');
  const ageSeconds = values['within-grace'] ? 0 : 3600;
  const started = new Date();
  const tmp = mkdtempSync(join(tmpdir(), 'claim-ab-'));
  const databases: BenchDatabase[] = [];
  const collector = await startCollector('none');
  const runs: Run[] = [];
  try {
    note(`building ${values['baseline-commit']} into ${tmp}`);
    const baseline = buildCommit(values['baseline-commit']!, tmp);
    const head = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['-C', ROOT, 'status', '--porcelain', 'src', 'sql'], { encoding: 'utf8' }).split('\n').filter(Boolean).length;
    const commits: Record<Design, string> = { old: baseline.commit, new: `${head}${dirty ? ` + ${dirty} uncommitted changes in src/, sql/` : ''}` };
    const builds = {} as Record<Design, Build>;
    for (const design of DESIGNS) {
      const db = await createBenchDatabase(`claimab_${design}`, { migrate: false });
      databases.push(db);
      const cli = design === 'old' ? baseline.cli : CLI;
      note(`${design} (${commits[design]}): ${migrateWith(cli, db.url)}`);
      await installWalInspect(db.pool);
      builds[design] = { design, commit: commits[design], cli, db };
    }

    for (const size of sizes) {
      const t0 = Date.now();
      await truncateAll(builds.new.db.pool);
      await fillBacklog(builds.new.db.pool, size, `ab${size}`);
      await analyzeBilling(builds.new.db.pool);
      await snapshotQueue(builds.new.db.pool);
      await restamp(builds.new.db.pool, ageSeconds);
      await copyBacklog(builds.new.db, builds.old.db);
      note(`${int(size)} transfers written through the triggers and copied, ${fixed((Date.now() - t0) / 1000, 1)} s`);

      for (let round = 0; round < rounds!; round++) {
        const order: Design[] = round % 2 === 0 ? ['old', 'new'] : ['new', 'old'];
        for (const design of order) {
          const { db, cli } = builds[design];
          if (values['within-grace']) await restamp(db.pool, 0);
          if (design === 'new' && !values['keep-claim-table']) await db.pool.query('TRUNCATE dcache_probe.claim');
          const meters: { wal?: WalWindow; sampler?: ReturnType<typeof sampleActivity> } = {};
          const catchup = await catchupRun(
            {
              pool: db.pool,
              dbUrl: db.url,
              collector,
              beforeRun: async () => {
                meters.wal = await WalWindow.open(db.url);
                meters.sampler = sampleActivity(db.pool);
              },
            },
            size,
            bundle!,
            workers!,
            [],
            cli,
            design,
          );
          const activity = await meters.sampler!.stop();
          const walUse = await meters.wal!.close();
          const leases = await leasesLeft(builds[design]);
          if (catchup.exitCode !== 0 || catchup.left !== 0 || catchup.delivered !== size || leases !== 0) {
            throw new Error(`${design} round ${round + 1}: exit ${catchup.exitCode}, delivered ${catchup.delivered} of ${size}, ${catchup.left} rows and ${leases} leases left`);
          }
          const run: Run = { design, round, catchup, wal: walUse, activity };
          runs.push(run);
          note(
            `${int(size)} round ${round + 1} ${design}: ${int(catchup.rowsPerS)} rows/s, PostgreSQL ${fixed(catchup.pgBackendCpuPer100k)} / probe ${fixed(catchup.probeCpuPer100k)} CPU-s/100k, ` +
              `WAL ${fixed(walUse.bytes / size, 0)} B/row (${fixed((walUse.bytes - walUse.fpiBytes) / size, 0)} without FPI), ${fixed(walUse.commits / (size / bundle!), 2)} commits/batch, load ${fixed(catchup.loadAvg1, 1)}`,
          );
        }
      }
    }

    const text = report(runs, sizes, bundle!, commits);
    mkdirSync(RESULTS_DIR, { recursive: true });
    const file = join(RESULTS_DIR, `claim-ab-${started.toISOString().replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, JSON.stringify({ startedAt: started.toISOString(), finishedAt: new Date().toISOString(), commits, sizes, rounds, workers, bundle, withinGrace: values['within-grace'], loadAvgAtEnd: loadavg(), runs }, null, 1));
    process.stdout.write(`claim A/B: ${workers} workers, bundle ${bundle}, collector --keep none, queue ${values['within-grace'] ? 'within' : 'past'} the door grace; ${fixed((Date.now() - started.getTime()) / 1000, 0)} s; raw: ${file}\n\n${text}`);
  } finally {
    await collector.stop();
    for (const db of databases) await db.drop().catch(() => undefined);
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
