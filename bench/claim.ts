#!/usr/bin/env node
/**
 * The claim alone: one claim of 500 on a queue of --rows
 * captured transfers with their door rows (bench/lib/db.ts), each in a transaction that is
 * rolled back, so every claim sees the same queue. The variants alternate, in blocks of 10
 * claims, the order reversed every other round.
 *
 *   npx tsc -p bench/tsconfig.json && node dist/bench/claim.js [--rows 100000] [--history 0] [--rounds 10] [--keep]
 *
 * Two phases: doorinfo never analyzed (a fresh billing database, autovacuum off), then after
 * `ANALYZE doorinfo`. The queue itself is analyzed in both (as bench/lib/db.ts restoreQueue
 * does). Four scenarios in each phase:
 *   - within grace / past grace: the rows are younger than doorGraceSeconds (the door test
 *     decides readiness: live operation) or older (a catch-up after an outage);
 *   - alone / skipping 500: another transaction holds the first 500 rows locked (a second
 *     worker's claim in flight), so the claim must pass them (SKIP LOCKED) first.
 * Per claim: the CPU time of the claiming backend (from /proc, so the server must be local;
 * far less disturbed by other work on the machine than wall time), the wall time the client
 * sees (its 500 rows received as text, not parsed), and, from one EXPLAIN (ANALYZE, BUFFERS),
 * the shared-buffer hits and reads per returned row (planning included) and whether a
 * sequential scan of doorinfo ran.
 * Since migration 008 the shipped claim is two statements (src/db/queue.ts): "new" here is its
 * picking (pickQuery, ids only; the lease makes SKIP LOCKED moot), and the door rows are read
 * by leasedRowsQuery after the claim commits; bench/claim-ab.ts compares whole catch-ups.
 * `--history N` first adds N older transfers whose rows are not queued (doorinfo holds years).
 * `--url URL` measures an existing database instead (one phase, as it is); `VARIANTS=a,b`
 * limits the variants; `--print NAME` prints one variant's SQL.
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { pickQuery } from '../src/db/queue';
import { createBenchDatabase, fillBacklog } from './lib/db';

const args = process.argv.slice(2);
const option = (name: string, fallback: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const ROWS = option('rows', 100_000);
const HISTORY = option('history', 0);
const ROUNDS = option('rounds', 10);
const KEEP = args.includes('--keep');
const LIMIT = 500;
const DOORINFO = '"public".doorinfo';

/** The claim as it was up to 7b34040. */
const CLAIM_005 = `
      WITH claimed AS (
        SELECT q.id, q.source, q.captured_at, q.record
          FROM dcache_probe.capture_queue q
         WHERE q.source <> 'billinginfo'
            OR q.captured_at <= now() - make_interval(secs => $2)
            OR coalesce(q.record ->> 'initiator', '') = ''
            OR q.record ->> 'initiator' = '<undefined>'
            OR q.record ->> 'initiator' LIKE 'pool:%'
            OR EXISTS (SELECT 1 FROM ${DOORINFO} d
                        WHERE d.transaction = q.record ->> 'initiator' AND d.pnfsid = q.record ->> 'pnfsid')
         ORDER BY q.id
         LIMIT $1
         FOR UPDATE OF q SKIP LOCKED
      )
      SELECT c.id, c.source, c.record,
             floor(extract(epoch FROM c.captured_at) * 1000)::bigint AS captured_ms,
             dcache_probe.epoch_ms(c.record ->> 'datestamp') AS datestamp_ms,
             door.record AS door
        FROM claimed c
        LEFT JOIN LATERAL (
          SELECT to_jsonb(d) AS record FROM ${DOORINFO} d
           WHERE c.source = 'billinginfo'
             AND d.transaction = c.record ->> 'initiator' AND d.pnfsid = c.record ->> 'pnfsid'
           ORDER BY d.datestamp, d.cellname
           LIMIT 1
        ) door ON true
       ORDER BY c.id`;

/** Alternatives measured while choosing the new claim (see docs/PERFORMANCE.md). */
const READY_UNLESS_DOOR = `q.source <> 'billinginfo'
            OR q.captured_at <= now() - make_interval(secs => $2)
            OR coalesce(q.record ->> 'initiator', '') = ''
            OR q.record ->> 'initiator' = '<undefined>'
            OR q.record ->> 'initiator' LIKE 'pool:%'`;
/** "lateral-jsonb": the LATERAL door fetch (to_jsonb) moved into the claiming query. */
const CLAIM_LATERAL_JSONB = `
      SELECT q.id, q.source, q.record,
             floor(extract(epoch FROM q.captured_at) * 1000)::bigint AS captured_ms,
             dcache_probe.epoch_ms(q.record ->> 'datestamp') AS datestamp_ms,
             door.record AS door
        FROM dcache_probe.capture_queue q
        LEFT JOIN LATERAL (
          SELECT to_jsonb(d) AS record FROM ${DOORINFO} d
           WHERE q.source = 'billinginfo'
             AND d.transaction = q.record ->> 'initiator' AND d.pnfsid = q.record ->> 'pnfsid'
           ORDER BY d.datestamp, d.cellname
           LIMIT 1
        ) door ON true
       WHERE ${READY_UNLESS_DOOR} OR door.record IS NOT NULL
       ORDER BY q.id
       LIMIT $1
       FOR UPDATE OF q SKIP LOCKED`;
/** "lateral-ctid": the LATERAL finds the door's ctid for every mover; to_jsonb after locking. */
const CLAIM_LATERAL_CTID = `
      WITH claimed AS (
        SELECT q.id, q.source, q.captured_at, q.record, door.ctid AS door_ctid
          FROM dcache_probe.capture_queue q
          LEFT JOIN LATERAL (
            SELECT d.ctid FROM ${DOORINFO} d
             WHERE q.source = 'billinginfo'
               AND d.transaction = q.record ->> 'initiator' AND d.pnfsid = q.record ->> 'pnfsid'
             ORDER BY d.datestamp, d.cellname
             LIMIT 1
          ) door ON true
         WHERE ${READY_UNLESS_DOOR} OR door.ctid IS NOT NULL
         ORDER BY q.id
         LIMIT $1
         FOR UPDATE OF q SKIP LOCKED
      )
      SELECT c.id, c.source, c.record,
             floor(extract(epoch FROM c.captured_at) * 1000)::bigint AS captured_ms,
             dcache_probe.epoch_ms(c.record ->> 'datestamp') AS datestamp_ms,
             (SELECT to_jsonb(d) FROM ${DOORINFO} d WHERE d.ctid = c.door_ctid) AS door
        FROM claimed c
       ORDER BY c.id`;

/**
 * "exists-offset0": the claim of 005 with OFFSET 0 in its EXISTS, which keeps the planner
 * from hashing it: two lookups per waiting mover, as before, but never a scan of doorinfo.
 */
const CLAIM_EXISTS_OFFSET0 = CLAIM_005.replace(`AND d.pnfsid = q.record ->> 'pnfsid')`, `AND d.pnfsid = q.record ->> 'pnfsid' OFFSET 0)`);

/**
 * "ctid-176327e": the claim as 176327e shipped it: the waiting mover's door looked up once, its
 * ctid kept, the row fetched by that ctid after locking. Not usable (a ctid is unique only
 * within one table, and a site may partition doorinfo); kept to measure what the key lookup
 * that replaced it costs.
 */
function claimByCtid(doorinfo: string): string {
  return `
      WITH claimed AS (
        SELECT q.id, q.source, q.captured_at, q.record, door.ctid AS door_ctid
          FROM dcache_probe.capture_queue q
         CROSS JOIN LATERAL (
           SELECT q.source = 'billinginfo'
              AND q.captured_at > now() - make_interval(secs => $2)
              AND coalesce(q.record ->> 'initiator', '') NOT IN ('', '<undefined>')
              AND q.record ->> 'initiator' NOT LIKE 'pool:%' AS waits
         ) w
         CROSS JOIN LATERAL (
           SELECT CASE WHEN w.waits THEN (
                    SELECT d.ctid FROM ${doorinfo} d
                     WHERE d.transaction = q.record ->> 'initiator' AND d.pnfsid = q.record ->> 'pnfsid'
                     ORDER BY d.datestamp, d.cellname
                     LIMIT 1)
                  END AS ctid
           OFFSET 0
         ) door
         WHERE NOT w.waits OR door.ctid IS NOT NULL
         ORDER BY q.id
         LIMIT $1
         FOR UPDATE OF q SKIP LOCKED
      )
      SELECT c.id, c.source, c.record,
             floor(extract(epoch FROM c.captured_at) * 1000)::bigint AS captured_ms,
             dcache_probe.epoch_ms(c.record ->> 'datestamp') AS datestamp_ms,
             CASE WHEN c.door_ctid IS NOT NULL
                  THEN (SELECT to_jsonb(d) FROM ${doorinfo} d WHERE d.ctid = c.door_ctid)
                  WHEN c.source = 'billinginfo'
                  THEN (SELECT to_jsonb(d) FROM ${doorinfo} d
                         WHERE d.transaction = c.record ->> 'initiator' AND d.pnfsid = c.record ->> 'pnfsid'
                         ORDER BY d.datestamp, d.cellname
                         LIMIT 1)
             END AS door
        FROM claimed c
       ORDER BY c.id`;
}

const VARIANTS: Record<string, string> = {
  '005': CLAIM_005,
  new: pickQuery(DOORINFO),
  'ctid-176327e': claimByCtid(DOORINFO),
  'lateral-jsonb': CLAIM_LATERAL_JSONB,
  'lateral-ctid': CLAIM_LATERAL_CTID,
  'exists-offset0': CLAIM_EXISTS_OFFSET0,
};

/** One block of BLOCK claims of one variant. */
interface Block {
  /** CPU of the backend per claim (utime + stime of /proc/PID/stat, in 10 ms ticks: summed over blocks). */
  cpuMs: number;
  /** Wall time per claim, as the client sees it (the 500 rows received as text, not parsed). */
  wallMs: number;
}

/** What EXPLAIN (ANALYZE, BUFFERS) says about one claim. */
interface Explained {
  rows: number;
  hitsPerRow: number;
  readsPerRow: number;
  seqScanOfDoorinfo: boolean;
}

const BLOCK = 10;
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Actual Loops'?: number;
  Plans?: PlanNode[];
}
/** Whether the plan ran a sequential scan of doorinfo (not only planned one). */
const seqScansDoorinfo = (n: PlanNode): boolean =>
  (n['Node Type'] === 'Seq Scan' && n['Relation Name'] === 'doorinfo' && (n['Actual Loops'] ?? 0) > 0) || (n.Plans ?? []).some(seqScansDoorinfo);

function backendCpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime (USER_HZ 100)
}

async function explain(client: pg.Client, sql: string, grace: number): Promise<Explained> {
  await client.query('BEGIN');
  const { rows } = await client.query(`EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, FORMAT JSON) ${sql}`, [LIMIT, grace]);
  await client.query('ROLLBACK');
  const top = rows[0]['QUERY PLAN'][0];
  const n = top.Plan['Actual Rows'] as number;
  return {
    rows: n,
    hitsPerRow: (top.Plan['Shared Hit Blocks'] + (top.Planning?.['Shared Hit Blocks'] ?? 0)) / n,
    readsPerRow: (top.Plan['Shared Read Blocks'] + (top.Planning?.['Shared Read Blocks'] ?? 0)) / n,
    seqScanOfDoorinfo: seqScansDoorinfo(top.Plan),
  };
}

async function block(client: pg.Client, pid: number, sql: string, grace: number): Promise<Block> {
  const cpu0 = backendCpuMs(pid);
  let wall = 0;
  for (let i = 0; i < BLOCK; i++) {
    await client.query('BEGIN');
    const t0 = process.hrtime.bigint();
    const { rowCount } = await client.query({ text: sql, values: [LIMIT, grace], rowMode: 'array', types: { getTypeParser: () => (v: string) => v } });
    wall += Number(process.hrtime.bigint() - t0) / 1e6;
    await client.query('ROLLBACK');
    if (rowCount !== LIMIT) throw new Error(`claimed ${rowCount} rows`);
  }
  return { cpuMs: (backendCpuMs(pid) - cpu0) / BLOCK, wallMs: wall / BLOCK };
}

async function phase(url: string, label: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, application_name: 'dcache-probe bench claim' });
  const holder = new pg.Client({ connectionString: url, application_name: 'dcache-probe bench claim holder' });
  await client.connect();
  await holder.connect();
  try {
    const pid = Number((await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid);
    const names = Object.keys(VARIANTS);
    for (const [scenario, grace, skip] of [
      ['within grace, alone', 1e9, false],
      ['within grace, skipping 500', 1e9, true],
      ['past grace, alone', 0, false],
      ['past grace, skipping 500', 0, true],
    ] as const) {
      if (skip) {
        await holder.query('BEGIN');
        await holder.query('SELECT id FROM dcache_probe.capture_queue ORDER BY id LIMIT 500 FOR UPDATE');
      }
      const explained = new Map<string, Explained>();
      for (const n of names) explained.set(n, await explain(client, VARIANTS[n]!, grace));
      for (const n of names) await block(client, pid, VARIANTS[n]!, grace); // warm-up
      const blocks = new Map<string, Block[]>(names.map((n) => [n, []]));
      for (let round = 0; round < ROUNDS; round++) {
        const order = round % 2 === 0 ? names : [...names].reverse();
        for (const n of order) blocks.get(n)!.push(await block(client, pid, VARIANTS[n]!, grace));
      }
      if (skip) await holder.query('ROLLBACK');
      const reference = sum(blocks.get(names[0]!)!.map((b) => b.cpuMs));
      for (const n of names) {
        const b = blocks.get(n)!;
        const e = explained.get(n)!;
        const cpu = sum(b.map((x) => x.cpuMs)) / b.length;
        console.log(
          [
            label.padEnd(22),
            scenario.padEnd(27),
            n.padEnd(14),
            `cpu ${cpu.toFixed(2)} ms/claim (${((cpu * b.length) / reference).toFixed(2)}×)`,
            `wall ${median(b.map((x) => x.wallMs)).toFixed(2)} ms (median of ${b.length} blocks)`,
            `hits/row ${e.hitsPerRow.toFixed(1)}`,
            `reads/row ${e.readsPerRow.toFixed(1)}`,
            e.seqScanOfDoorinfo ? 'SEQ SCAN of doorinfo' : '',
          ].join('  '),
        );
      }
    }
  } finally {
    await holder.end();
    await client.end();
  }
}

async function main(): Promise<void> {
  const only = process.env.VARIANTS?.split(',');
  if (only) for (const n of Object.keys(VARIANTS)) if (!only.includes(n)) delete VARIANTS[n];
  const print = args.indexOf('--print');
  if (print >= 0) {
    console.log(VARIANTS[args[print + 1]!]);
    return;
  }
  const existing = args.indexOf('--url');
  if (existing >= 0) {
    const url = args[existing + 1]!;
    await phase(url, url.split('/').pop()!);
    return;
  }
  const db = await createBenchDatabase('claim');
  try {
    if (HISTORY > 0) {
      await db.pool.query('ALTER TABLE public.billinginfo DISABLE TRIGGER dcache_probe_capture');
      await fillBacklog(db.pool, HISTORY, 'history');
      await db.pool.query('ALTER TABLE public.billinginfo ENABLE TRIGGER dcache_probe_capture');
    }
    await fillBacklog(db.pool, ROWS, 'queued');
    await db.pool.query('VACUUM ANALYZE dcache_probe.capture_queue');
    const doors = await db.pool.query<{ n: string }>('SELECT count(*) AS n FROM public.doorinfo');
    console.log(`queue ${ROWS} rows, doorinfo ${doors.rows[0]!.n} rows, ${ROUNDS} claims of ${LIMIT} per variant and scenario`);
    await phase(db.url, 'doorinfo not analyzed');
    await db.pool.query('ANALYZE public.doorinfo');
    await phase(db.url, 'doorinfo analyzed');
  } finally {
    if (KEEP) console.log(`kept ${db.url}`);
    else await db.drop();
    await db.pool.end().catch(() => undefined);
  }
}

main().catch((err: Error) => {
  console.error(err);
  process.exit(1);
});
