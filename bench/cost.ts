/**
 * 3. Cost to dCache: how fast 10 concurrent writers can insert billing rows (each transaction
 * a mover row and its door row, or 50 of each = 100 rows; one INSERT per row as dCache's
 * billing cell does, as prepared statements), in alternating phases:
 *   off            our triggers disabled (ALTER TABLE … DISABLE TRIGGER USER), no probe
 *   capture        our triggers enabled, no probe running (the queue grows)
 *   capture+probe  our triggers enabled and `dcache-probe run` draining to the collector
 *   naive+probe    for reference: a naive capture trigger (same copy, but pg_notify in every
 *                  transaction; created in the bench database only) with the probe draining
 * Tables are emptied and a CHECKPOINT taken before every phase, so every phase starts alike.
 *
 * The good citizen (`--sections citizen`, src/pipeline/pacing.ts): the same writers while the
 * daemon catches up a backlog (the snapshot queue restored before every phase, in all four
 * variants alike), with pipeline.goodCitizen on and off, alternating with `off` and `capture`;
 * and the catch-up alone (`poll --once`, dCache idle) with it on and off, alternating.
 */
import { readFileSync } from 'node:fs';
import { freePort } from '../src/tools/demo/embedded';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { TransferGenerator, type Row } from '../src/tools/demo/simulator';
import { SQL_DIR } from '../src/db/migrations';
import { sleep } from './lib/env';
import { cpuSeconds, pollOnce, startDaemon, type CollectorProcess } from './lib/proc';
import { queueDepth, restoreQueue } from './lib/db';
import { percentile, sorted } from './lib/stats';

export interface CostPhase {
  variant: string;
  rowsPerTransaction: number;
  round: number;
  rowsPerS: number;
  commitP50Ms: number;
  commitP99Ms: number;
  /** Records the collector accepted per second during the phase (probe variants). */
  deliveredPerS: number;
  queueAtEnd: number;
  loadAvg1: number;
  /**
   * CPU of the writers' PostgreSQL backends (where the triggers run) per inserted row, µs:
   * what dCache's inserts cost the database server, much less sensitive to a busy machine
   * than the insert rate.
   */
  writerCpuUsPerRow: number;
  /** Probe variants with a metrics port: the pacer's duty at the end of the window, and the seconds it yielded in it. */
  pacingDuty?: number;
  pacingYieldedS?: number;
}

/** A phase's set-up: which triggers are enabled (all others disabled) and whether the probe runs. */
export interface VariantSpec {
  name: string;
  /** Triggers to enable, as "table.trigger". */
  triggers: string[];
  probe: boolean;
  /** More flags for the probe daemon. */
  probeExtra?: string[];
  /** Shown in the report. */
  description: string;
}

const OURS = ['billinginfo.dcache_probe_capture'];

export const COST_VARIANTS: VariantSpec[] = [
  { name: 'off', triggers: [], probe: false, description: 'our triggers disabled, no probe' },
  { name: 'capture', triggers: OURS, probe: false, description: 'our triggers, no probe running (the queue grows)' },
  { name: 'capture+probe', triggers: OURS, probe: true, description: 'our triggers, `dcache-probe run` draining' },
  { name: 'naive', triggers: ['billinginfo.bench_naive_capture', 'doorinfo.bench_naive_wake'], probe: false, description: 'reference: same copy, pg_notify in every transaction, no probe' },
  { name: 'naive+probe', triggers: ['billinginfo.bench_naive_capture', 'doorinfo.bench_naive_wake'], probe: true, description: 'reference: same copy, pg_notify in every transaction, probe draining' },
];

/**
 * The capture of migration 006 against ours (007, `capture`), paired (`--sections x-capture`):
 * 006 verbatim (its function read from sql/migrations/006_lighter_capture.sql), and 007 without
 * its once-per-transaction queue check, to price that check.
 */
export const CAPTURE_007_EXPERIMENTS: VariantSpec[] = [
  { name: 'x: 006', triggers: ['billinginfo.bench_x_006_capture'], probe: false, description: 'the capture of migration 006, verbatim: an EXCEPTION block (a subtransaction) in every statement' },
  { name: 'x: 007 without queue check', triggers: ['billinginfo.bench_x_007nocheck_capture'], probe: false, description: 'ours (007) without the once-per-transaction check that the queue can be written' },
];

/**
 * What a narrower copy could save (issue 15: "at most 10% at 100-row commits if a design allows
 * it"): the copy of our statement trigger, nothing else, into other kinds of queue table. A
 * typed copy keeps the billing row's own columns (no jsonb built, no keys stored: about half
 * the bytes); "no index" drops the queue's primary key (the claim's order needs one, so these
 * are lower bounds, not designs). Each writes into its own table, emptied with the others.
 * Measured on 1 December 2026 (docs/PERFORMANCE.md): with dCache's one row per statement the
 * rest of the capture function costs as much as the copy's format saves, so a json copy (tried
 * as a migration) bought nothing measurable in the whole function.
 */
export const NARROW_COPY_EXPERIMENTS: VariantSpec[] = [
  { name: 'x: jsonb copy', triggers: ['billinginfo.bench_x_jsonbqueue_capture'], probe: false, description: 'our copy alone (to_jsonb of the transition table), nothing else of the capture function, into a jsonb queue with an identity primary key' },
  { name: 'x: jsonb copy, no index', triggers: ['billinginfo.bench_x_jsonbheap_capture'], probe: false, description: 'our copy (to_jsonb of the transition table) into a queue without a primary key' },
  { name: 'x: json copy', triggers: ['billinginfo.bench_x_json_capture'], probe: false, description: 'our copy as json (to_json: text, no binary jsonb built) into a queue with an identity primary key' },
  { name: 'x: text copy', triggers: ['billinginfo.bench_x_text_capture'], probe: false, description: 'the row as its composite text form (n::text) into a queue with an identity primary key' },
  { name: 'x: typed copy', triggers: ['billinginfo.bench_x_typed_capture'], probe: false, description: 'the transition table copied with its own column types into a queue with an identity primary key' },
  { name: 'x: typed copy, no index', triggers: ['billinginfo.bench_x_typedheap_capture'], probe: false, description: 'the same into a queue without a primary key: the least a second copy of the row costs' },
];

/** The narrow-copy experiments' queue tables (emptied with the bench's own tables). */
export const NARROW_COPY_TABLES = ['public.bench_x_jsonb_queue', 'public.bench_x_json_queue', 'public.bench_x_text_queue', 'public.bench_x_jsonb_heap', 'public.bench_x_typed_queue', 'public.bench_x_typed_heap'];

/**
 * EXPERIMENTS (bench database only): variants of the 006 capture trigger, to find what its
 * cost is made of. Each is the 006 function with one thing changed, plus the design before 006
 * and two lower bounds (and the two above).
 */
export const TRIGGER_EXPERIMENTS: VariantSpec[] = [
  ...CAPTURE_007_EXPERIMENTS,
  { name: 'x: before 006', triggers: ['billinginfo.bench_x_v1_capture', 'doorinfo.bench_x_v1_wake'], probe: false, description: 'the design of 001_capture.sql: lock and wake-up check in every statement, and a doorinfo trigger' },
  { name: 'x: no EXCEPTION block', triggers: ['billinginfo.bench_x_noexc_capture'], probe: false, description: 'ours without the EXCEPTION block (no subtransaction per statement)' },
  { name: 'x: no SECURITY DEFINER/SET', triggers: ['billinginfo.bench_x_noset_capture'], probe: false, description: 'ours without SECURITY DEFINER and SET search_path' },
  { name: 'x: no lock/wake-up', triggers: ['billinginfo.bench_x_nowake_capture'], probe: false, description: 'ours without the advisory lock and the wake-up check: the copy alone' },
  { name: 'x: bare copy', triggers: ['billinginfo.bench_x_lean_capture'], probe: false, description: 'lower bound of a copy: row-level INSERT of to_jsonb(NEW), nothing else' },
  { name: 'x: empty trigger', triggers: ['billinginfo.bench_x_empty_capture'], probe: false, description: 'lower bound of any statement trigger: a transition table and a PL/pgSQL call that does nothing' },
  ...NARROW_COPY_EXPERIMENTS,
];

/** The 006 capture function, verbatim, as public.bench_x_006_capture. */
function capture006(): string {
  const migration = readFileSync(join(SQL_DIR, 'migrations', '006_lighter_capture.sql'), 'utf8');
  const fn = /CREATE OR REPLACE FUNCTION dcache_probe\.capture_rows\(\)[\s\S]*?\n\$\$;/.exec(migration)?.[0];
  if (!fn) throw new Error('bench: no capture_rows() in 006_lighter_capture.sql');
  return fn.replace('dcache_probe.capture_rows()', 'public.bench_x_006_capture()');
}

/** Ours (007) without the queue check (keep in step with 007_capture_without_subtransactions.sql). */
const CAPTURE_007_NO_CHECK = `
CREATE OR REPLACE FUNCTION public.bench_x_007nocheck_capture() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    state text := current_setting('dcache_probe.capture', true);
    armed bigint;
    fired bigint;
    wake boolean := false;
BEGIN
    IF state IS DISTINCT FROM 'on' THEN
        PERFORM set_config('dcache_probe.capture', 'on', true);
        IF pg_try_advisory_xact_lock_shared(7262627701) THEN
            SELECT a.last_value, f.last_value INTO armed, fired FROM dcache_probe.wake_armed a, dcache_probe.wake_fired f;
            wake := armed > fired;
            IF wake THEN
                PERFORM setval('dcache_probe.wake_fired', armed);
            END IF;
        ELSE
            wake := true;
        END IF;
        IF wake AND pg_notification_queue_usage() < 0.5 THEN
            PERFORM pg_notify('dcache_probe', '');
        END IF;
    END IF;
    INSERT INTO dcache_probe.capture_queue (source, record)
    SELECT TG_TABLE_NAME, r FROM (SELECT to_jsonb(n) AS r FROM new_rows n) AS captured
     WHERE (r ->> 'p2p') IS DISTINCT FROM 'true';
    RETURN NULL;
END $$;`;

/** The 006 design, with the parts the experiments take out marked by placeholders. */
function oursVariant(name: string, opts: { definer: boolean; exception: boolean; wake: boolean }): string {
  const header = opts.definer ? 'SECURITY DEFINER SET search_path = pg_catalog, pg_temp' : '';
  const copy = `
        INSERT INTO dcache_probe.capture_queue (source, record)
        SELECT TG_TABLE_NAME, r FROM (SELECT to_jsonb(n) AS r FROM new_rows n) AS captured
         WHERE (r ->> 'p2p') IS DISTINCT FROM 'true';`;
  const wake = !opts.wake
    ? ''
    : `
        IF current_setting('dcache_probe.wake_checked', true) IS DISTINCT FROM 'on' THEN
            PERFORM pg_advisory_xact_lock_shared(7262627701);
            PERFORM set_config('dcache_probe.wake_checked', 'on', true);
            SELECT a.last_value, f.last_value INTO armed, fired FROM dcache_probe.wake_armed a, dcache_probe.wake_fired f;
            IF armed > fired THEN
                PERFORM setval('dcache_probe.wake_fired', armed);
                PERFORM pg_notify('dcache_probe', '');
            END IF;
        END IF;`;
  const body = opts.exception ? `BEGIN${copy}${wake}\n    EXCEPTION WHEN OTHERS THEN\n        RAISE WARNING 'bench: %', SQLERRM;\n    END;` : `${copy}${wake}`;
  return `CREATE OR REPLACE FUNCTION public.${name}() RETURNS trigger LANGUAGE plpgsql ${header} AS $$
DECLARE armed bigint; fired bigint;
BEGIN
    ${body}
    RETURN NULL;
END $$;`;
}

/** Our copy alone (to_jsonb of the transition table, pool-to-pool rows left out) into public.<table>, as public.<fn>(). */
function jsonbCopy(fn: string, table: string): string {
  return `CREATE OR REPLACE FUNCTION public.${fn}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.${table} (source, record)
    SELECT TG_TABLE_NAME, r FROM (SELECT to_jsonb(n) AS r FROM new_rows n) AS c
     WHERE (r ->> 'p2p') IS DISTINCT FROM 'true';
    RETURN NULL;
END $$;`;
}

/** The naive reference and the experiments' functions and triggers (created disabled). */
const benchTriggersSql = () => `
${capture006()}
${CAPTURE_007_NO_CHECK}

CREATE OR REPLACE FUNCTION public.bench_naive_capture() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO dcache_probe.capture_queue (source, record)
    SELECT TG_TABLE_NAME, r FROM (SELECT to_jsonb(n) AS r FROM new_rows n) AS c
     WHERE (r ->> 'p2p') IS DISTINCT FROM 'true';
    PERFORM pg_notify('dcache_probe', '');
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION public.bench_naive_wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('dcache_probe', '');
    RETURN NULL;
END $$;

-- the design before migration 006 (as in 001_capture.sql)
CREATE OR REPLACE FUNCTION public.bench_x_v1_listener() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE armed bigint; fired bigint;
BEGIN
    SELECT last_value INTO armed FROM dcache_probe.wake_armed;
    SELECT last_value INTO fired FROM dcache_probe.wake_fired;
    IF armed > fired THEN
        PERFORM setval('dcache_probe.wake_fired', armed);
        PERFORM pg_notify('dcache_probe', '');
    END IF;
END $$;
CREATE OR REPLACE FUNCTION public.bench_x_v1_capture() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    BEGIN
        PERFORM pg_advisory_xact_lock_shared(7262627701);
        INSERT INTO dcache_probe.capture_queue (source, record)
        SELECT TG_TABLE_NAME, r FROM (SELECT to_jsonb(n) AS r FROM new_rows n) AS captured
         WHERE (r ->> 'p2p') IS DISTINCT FROM 'true';
        PERFORM public.bench_x_v1_listener();
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'bench: %', SQLERRM;
    END;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION public.bench_x_v1_wake() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    BEGIN
        PERFORM pg_advisory_xact_lock_shared(7262627701);
        PERFORM public.bench_x_v1_listener();
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'bench: %', SQLERRM;
    END;
    RETURN NULL;
END $$;

${oursVariant('bench_x_noexc_capture', { definer: true, exception: false, wake: true })}
${oursVariant('bench_x_noset_capture', { definer: false, exception: true, wake: true })}
${oursVariant('bench_x_nowake_capture', { definer: true, exception: true, wake: false })}

-- the least a copying trigger can do
CREATE OR REPLACE FUNCTION public.bench_x_lean_capture() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO dcache_probe.capture_queue (source, record) VALUES (TG_TABLE_NAME, to_jsonb(NEW));
    RETURN NULL;
END $$;

-- narrower copies (NARROW_COPY_EXPERIMENTS): their queue tables, then one function each. The
-- typed ones list billinginfo's columns as the fixture has them (read from the catalog once).
CREATE TABLE IF NOT EXISTS public.bench_x_jsonb_heap (source text NOT NULL, captured_at timestamptz NOT NULL DEFAULT statement_timestamp(), record jsonb NOT NULL);
CREATE TABLE IF NOT EXISTS public.bench_x_typed_queue (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, source text NOT NULL, captured_at timestamptz NOT NULL DEFAULT statement_timestamp(), LIKE public.billinginfo);
CREATE TABLE IF NOT EXISTS public.bench_x_typed_heap (source text NOT NULL, captured_at timestamptz NOT NULL DEFAULT statement_timestamp(), LIKE public.billinginfo);
CREATE TABLE IF NOT EXISTS public.bench_x_jsonb_queue (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, source text NOT NULL, captured_at timestamptz NOT NULL DEFAULT statement_timestamp(), record jsonb NOT NULL);
${jsonbCopy('bench_x_jsonbqueue_capture', 'bench_x_jsonb_queue')}
CREATE TABLE IF NOT EXISTS public.bench_x_json_queue (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, source text NOT NULL, captured_at timestamptz NOT NULL DEFAULT statement_timestamp(), record json NOT NULL);
CREATE TABLE IF NOT EXISTS public.bench_x_text_queue (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, source text NOT NULL, captured_at timestamptz NOT NULL DEFAULT statement_timestamp(), record text NOT NULL);
CREATE OR REPLACE FUNCTION public.bench_x_json_capture() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.bench_x_json_queue (source, record)
    SELECT TG_TABLE_NAME, to_json(n) FROM new_rows n WHERE n.p2p IS DISTINCT FROM true;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION public.bench_x_text_capture() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.bench_x_text_queue (source, record)
    SELECT TG_TABLE_NAME, n::text FROM new_rows n WHERE n.p2p IS DISTINCT FROM true;
    RETURN NULL;
END $$;
${jsonbCopy('bench_x_jsonbheap_capture', 'bench_x_jsonb_heap')}
DO $$
DECLARE cols text;
BEGIN
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO cols
      FROM pg_attribute WHERE attrelid = 'public.billinginfo'::regclass AND attnum > 0 AND NOT attisdropped;
    EXECUTE format($f$
        CREATE OR REPLACE FUNCTION public.bench_x_typed_capture() RETURNS trigger LANGUAGE plpgsql AS $b$
        BEGIN
            INSERT INTO public.bench_x_typed_queue (source, %1$s) SELECT TG_TABLE_NAME, %1$s FROM new_rows WHERE p2p IS DISTINCT FROM true;
            RETURN NULL;
        END $b$;
        CREATE OR REPLACE FUNCTION public.bench_x_typedheap_capture() RETURNS trigger LANGUAGE plpgsql AS $b$
        BEGIN
            INSERT INTO public.bench_x_typed_heap (source, %1$s) SELECT TG_TABLE_NAME, %1$s FROM new_rows WHERE p2p IS DISTINCT FROM true;
            RETURN NULL;
        END $b$;$f$, cols);
END $$;

-- the least any statement-level trigger with a transition table costs
CREATE OR REPLACE FUNCTION public.bench_x_empty_capture() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RETURN NULL;
END $$;

DO $$
DECLARE t record;
BEGIN
    FOR t IN SELECT * FROM (VALUES
        ('billinginfo', 'bench_naive_capture', 'REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT', 'bench_naive_capture'),
        ('doorinfo', 'bench_naive_wake', 'FOR EACH STATEMENT', 'bench_naive_wake'),
        ('billinginfo', 'bench_x_006_capture', 'REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT', 'bench_x_006_capture'),
        ('billinginfo', 'bench_x_007nocheck_capture', 'REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT', 'bench_x_007nocheck_capture'),
        ('billinginfo', 'bench_x_v1_capture', 'REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT', 'bench_x_v1_capture'),
        ('doorinfo', 'bench_x_v1_wake', 'FOR EACH STATEMENT', 'bench_x_v1_wake'),
        ('billinginfo', 'bench_x_noexc_capture', 'REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT', 'bench_x_noexc_capture'),
        ('billinginfo', 'bench_x_noset_capture', 'REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT', 'bench_x_noset_capture'),
        ('billinginfo', 'bench_x_nowake_capture', 'REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT', 'bench_x_nowake_capture'),
        ('billinginfo', 'bench_x_lean_capture', 'FOR EACH ROW', 'bench_x_lean_capture'),
        ('billinginfo', 'bench_x_empty_capture', 'REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT', 'bench_x_empty_capture'),
        ('billinginfo', 'bench_x_jsonbheap_capture', 'REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT', 'bench_x_jsonbheap_capture'),
        ('billinginfo', 'bench_x_jsonbqueue_capture', 'REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT', 'bench_x_jsonbqueue_capture'),
        ('billinginfo', 'bench_x_json_capture', 'REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT', 'bench_x_json_capture'),
        ('billinginfo', 'bench_x_text_capture', 'REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT', 'bench_x_text_capture'),
        ('billinginfo', 'bench_x_typed_capture', 'REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT', 'bench_x_typed_capture'),
        ('billinginfo', 'bench_x_typedheap_capture', 'REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT', 'bench_x_typedheap_capture')
    ) AS v(tbl, trg, how, fn) LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON public.%I', t.trg, t.tbl);
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON public.%I %s EXECUTE FUNCTION public.%I()', t.trg, t.tbl, t.how, t.fn);
        EXECUTE format('ALTER TABLE public.%I DISABLE TRIGGER %I', t.tbl, t.trg);
    END LOOP;
END $$;
`;

export async function installBenchTriggers(pool: pg.Pool): Promise<void> {
  await pool.query(benchTriggersSql());
}

async function setTriggers(pool: pg.Pool, variant: VariantSpec): Promise<void> {
  const { rows } = await pool.query<{ tbl: string; trg: string; enabled: boolean }>(
    `SELECT c.relname AS tbl, t.tgname AS trg, t.tgenabled <> 'D' AS enabled
       FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
      WHERE NOT t.tgisinternal AND c.relname IN ('billinginfo', 'doorinfo') AND c.relnamespace = 'public'::regnamespace`,
  );
  for (const { tbl, trg, enabled } of rows) {
    const want = variant.triggers.includes(`${tbl}.${trg}`);
    if (want !== enabled) await pool.query(`ALTER TABLE public.${pg.escapeIdentifier(tbl)} ${want ? 'ENABLE' : 'DISABLE'} TRIGGER ${pg.escapeIdentifier(trg)}`);
  }
}

const MOVER_COLUMNS = ['datestamp', 'cellname', 'action', 'transaction', 'pnfsid', 'fullsize', 'transfersize', 'storageclass', 'isnew', 'client', 'connectiontime', 'errorcode', 'errormessage', 'protocol', 'initiator', 'p2p', 'fqan', 'mappeduid', 'mappedgid', 'owner'];
const DOOR_COLUMNS = ['datestamp', 'cellname', 'action', 'owner', 'mappeduid', 'mappedgid', 'client', 'transaction', 'pnfsid', 'path', 'queuedtime', 'connectiontime', 'errorcode', 'errormessage', 'fqan'];

function insertText(table: string, columns: string[]): string {
  return `INSERT INTO public.${table} (${columns.join(', ')}) VALUES (${columns.map((c, i) => (c === 'datestamp' ? `$${i + 1}::timestamptz` : `$${i + 1}`)).join(', ')})`;
}

function values(row: Row, columns: string[]): unknown[] {
  return columns.map((c) => {
    const v = row[c];
    return v instanceof Date ? v.toISOString() : v ?? null;
  });
}

/** Templates of realistic mover/door pairs; each use gets a unique transaction id. */
class PairSource {
  private readonly movers: unknown[][] = [];
  private readonly doors: unknown[][] = [];
  private counter = 0;
  private readonly tIdx = MOVER_COLUMNS.indexOf('transaction');
  private readonly iIdx = MOVER_COLUMNS.indexOf('initiator');
  private readonly dIdx = DOOR_COLUMNS.indexOf('transaction');

  constructor(private readonly tag: string) {
    const gen = new TransferGenerator({ seed: 42, p2pShare: 0, noDoorShare: 0, duplicateShare: 0 });
    for (let i = 0; i < 2000; i++) {
      const t = gen.next();
      this.movers.push(values(t.mover, MOVER_COLUMNS));
      this.doors.push(values(t.door!, DOOR_COLUMNS));
    }
  }

  next(): { mover: unknown[]; door: unknown[] } {
    const n = this.counter++;
    const mover = [...this.movers[n % this.movers.length]!];
    const door = [...this.doors[n % this.doors.length]!];
    const suffix = `-${this.tag}-${n}`;
    mover[this.tIdx] = `${mover[this.tIdx]}${suffix}`;
    mover[this.iIdx] = `${mover[this.iIdx]}${suffix}`;
    door[this.dIdx] = mover[this.iIdx];
    return { mover, door };
  }
}

/** user+system CPU seconds of each writer backend (pid → s). */
async function writerBackendCpu(pool: pg.Pool): Promise<Map<number, number>> {
  const { rows } = await pool.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE application_name = 'dcache billing (bench)'");
  const out = new Map<number, number>();
  for (const { pid } of rows) {
    const c = cpuSeconds(pid);
    if (c !== null) out.set(pid, c);
  }
  return out;
}

export interface CostContext {
  pool: pg.Pool;
  dbUrl: string;
  collector: CollectorProcess;
  /**
   * Rows of the snapshot queue (bench/lib/db.ts snapshotQueue) restored before every phase:
   * the billing tables are then kept (the backlog's door rows are in them), not emptied.
   */
  backlogRows?: number;
}


/** One value of the daemon's /metrics (NaN when absent). */
async function metricValue(port: number, name: string): Promise<number> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

async function phase(ctx: CostContext, spec: VariantSpec, rowsPerTransaction: number, round: number, warmupS: number, windowS: number): Promise<CostPhase> {
  const variant = spec.name;
  await setTriggers(ctx.pool, spec);
  if (ctx.backlogRows !== undefined) {
    const depth = await restoreQueue(ctx.dbUrl);
    if (depth !== ctx.backlogRows) throw new Error(`expected ${ctx.backlogRows} queued rows, found ${depth}`);
  } else await ctx.pool.query(`TRUNCATE public.billinginfo, public.doorinfo, dcache_probe.capture_queue, dcache_probe.delivered_key, ${NARROW_COPY_TABLES.join(', ')}`);
  await ctx.pool.query('CHECKPOINT');
  await ctx.collector.reset();
  const metricsPort = spec.probe && ctx.backlogRows !== undefined ? await freePort() : 0;
  const probeExtra = [...(spec.probeExtra ?? []), ...(metricsPort ? ['--metrics-port', String(metricsPort)] : [])];
  const probe = spec.probe ? await startDaemon({ dbUrl: ctx.dbUrl, collectorUrl: ctx.collector.url, extra: probeExtra }) : null;

  const source = new PairSource(`${variant.replace(/\W/g, '')}${round}r${rowsPerTransaction}`);
  const moverSql = insertText('billinginfo', MOVER_COLUMNS);
  const doorSql = insertText('doorinfo', DOOR_COLUMNS);
  let stop = false;
  let windowStart = Infinity;
  let windowEnd = Infinity;
  let rows = 0;
  const commitMs: number[] = [];
  const writer = async (w: number) => {
    const client = new pg.Client({ connectionString: ctx.dbUrl, application_name: 'dcache billing (bench)' });
    await client.connect();
    try {
      while (!stop) {
        const began = performance.now();
        await client.query('BEGIN');
        for (let i = 0; i < rowsPerTransaction / 2; i++) {
          const { mover, door } = source.next();
          await client.query({ name: `m${w}`, text: moverSql, values: mover });
          await client.query({ name: `d${w}`, text: doorSql, values: door });
        }
        await client.query('COMMIT');
        const now = Date.now();
        if (now >= windowStart && now < windowEnd) {
          rows += rowsPerTransaction;
          commitMs.push(performance.now() - began);
        }
      }
    } finally {
      await client.end();
    }
  };
  const writers = Promise.all(Array.from({ length: 10 }, (_, w) => writer(w)));
  let delivered0 = 0;
  let cpu0 = new Map<number, number>();
  let cpu1 = new Map<number, number>();
  let yielded0 = NaN;
  let yielded1 = NaN;
  let duty = NaN;
  try {
    await sleep(warmupS * 1000);
    delivered0 = (await ctx.collector.stats()).recordsAccepted;
    cpu0 = await writerBackendCpu(ctx.pool);
    if (metricsPort) yielded0 = await metricValue(metricsPort, 'dcache_probe_pacing_yielded_seconds_total');
    windowStart = Date.now();
    windowEnd = windowStart + windowS * 1000;
    await sleep(windowS * 1000);
    cpu1 = await writerBackendCpu(ctx.pool);
    if (metricsPort) {
      yielded1 = await metricValue(metricsPort, 'dcache_probe_pacing_yielded_seconds_total');
      duty = await metricValue(metricsPort, 'dcache_probe_pacing_duty');
    }
  } finally {
    stop = true;
    await writers;
  }
  const delivered1 = (await ctx.collector.stats()).recordsAccepted;
  const { rows: q } = await ctx.pool.query<{ n: string }>('SELECT count(*) AS n FROM dcache_probe.capture_queue');
  await probe?.stop();
  const s = sorted(commitMs);
  return {
    variant,
    rowsPerTransaction,
    round,
    rowsPerS: rows / windowS,
    commitP50Ms: percentile(s, 50),
    commitP99Ms: percentile(s, 99),
    deliveredPerS: (delivered1 - delivered0) / windowS,
    queueAtEnd: Number(q[0]?.n ?? 0),
    loadAvg1: loadavg()[0] ?? NaN,
    writerCpuUsPerRow: rows > 0 ? ([...cpu1].reduce((sum, [pid, c]) => sum + c - (cpu0.get(pid) ?? c), 0) * 1e6) / rows : NaN,
    ...(metricsPort ? { pacingDuty: duty, pacingYieldedS: yielded1 - yielded0 } : {}),
  };
}

/**
 * Alternates the variants (rotating which goes first) for each transaction shape, `rounds`
 * times; returns every phase.
 */
export async function costRuns(ctx: CostContext, variants: VariantSpec[], shapes: number[], rounds: number, warmupS: number, windowS: number, log: (line: string) => void): Promise<CostPhase[]> {
  await installBenchTriggers(ctx.pool);
  const phases: CostPhase[] = [];
  try {
    for (let round = 0; round < rounds; round++) {
      for (const shape of shapes) {
        const order = variants.map((_, i) => variants[(i + round) % variants.length]!);
        for (const spec of order) {
          const p = await phase(ctx, spec, shape, round, warmupS, windowS);
          log(`cost round ${round + 1}/${rounds}, ${shape}-row commits, ${spec.name}: ${Math.round(p.rowsPerS)} rows/s (commit p99 ${p.commitP99Ms.toFixed(1)} ms)`);
          phases.push(p);
        }
      }
    }
  } finally {
    await setTriggers(ctx.pool, COST_VARIANTS[1]!);
  }
  return phases;
}

/** The good citizen's variants: the writers alone (off, capture) and during a catch-up, with it on and off. */
export const CITIZEN_VARIANTS: VariantSpec[] = [
  COST_VARIANTS[0]!,
  COST_VARIANTS[1]!,
  { name: 'catch-up, good citizen', triggers: OURS, probe: true, description: 'our triggers, `dcache-probe run` catching up the backlog (pipeline.goodCitizen on, the default)' },
  { name: 'catch-up, citizen off', triggers: OURS, probe: true, probeExtra: ['--good-citizen', 'false'], description: 'the same with --good-citizen false' },
];

/** The catch-up alone (dCache idle): `poll --once` over the restored backlog, good citizen on or off. */
export interface IdleCatchup {
  goodCitizen: boolean;
  round: number;
  rows: number;
  delivered: number;
  left: number;
  wallS: number;
  rowsPerS: number;
}

export async function idleCatchupRuns(ctx: CostContext & { backlogRows: number }, rounds: number, log: (line: string) => void): Promise<IdleCatchup[]> {
  await setTriggers(ctx.pool, COST_VARIANTS[1]!);
  const out: IdleCatchup[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const goodCitizen of round % 2 ? [false, true] : [true, false]) {
      const depth = await restoreQueue(ctx.dbUrl);
      if (depth !== ctx.backlogRows) throw new Error(`expected ${ctx.backlogRows} queued rows, found ${depth}`);
      await ctx.pool.query('CHECKPOINT');
      await ctx.collector.reset();
      const run = await pollOnce({ dbUrl: ctx.dbUrl, collectorUrl: ctx.collector.url, extra: ['--good-citizen', String(goodCitizen)] });
      if (run.code !== 0) throw new Error(`poll --once exited with ${run.code}: ${run.stderr}`);
      const delivered = (await ctx.collector.stats()).recordsAccepted;
      const r: IdleCatchup = { goodCitizen, round, rows: depth, delivered, left: await queueDepth(ctx.pool), wallS: run.wallMs / 1000, rowsPerS: depth / (run.wallMs / 1000) };
      log(`idle catch-up round ${round + 1}/${rounds}, good citizen ${goodCitizen ? 'on' : 'off'}: ${Math.round(r.rowsPerS)} rows/s (${r.delivered} delivered, ${r.left} left)`);
      out.push(r);
    }
  }
  return out;
}

const median = (xs: number[]): number => percentile(sorted(xs), 50);
const spread = (xs: number[]): string => `${median(xs).toFixed(2)} (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}, n=${xs.length})`;

/**
 * The good citizen's figures, as ratios within each round (the machine is shared, rates drift):
 * the writers' rate during each catch-up ÷ capture alone and ÷ no trigger, and the idle
 * catch-up rate with it on ÷ off (pairs of the same round).
 */
export function citizenSummary(phases: CostPhase[], idle: IdleCatchup[]): string[] {
  const lines: string[] = [];
  const shapes = [...new Set(phases.map((p) => p.rowsPerTransaction))];
  for (const shape of shapes) {
    const of = (variant: string) => phases.filter((p) => p.variant === variant && p.rowsPerTransaction === shape);
    const rounds = [...new Set(of('capture').map((p) => p.round))];
    const ratio = (variant: string, base: string) =>
      rounds.flatMap((round) => {
        const a = of(variant).find((p) => p.round === round);
        const b = of(base).find((p) => p.round === round);
        return a && b && b.rowsPerS > 0 ? [a.rowsPerS / b.rowsPerS] : [];
      });
    lines.push(`${shape}-row commits: capture ÷ off ${spread(ratio('capture', 'off'))}`);
    for (const v of ['catch-up, good citizen', 'catch-up, citizen off']) {
      const ps = of(v);
      lines.push(
        `${shape}-row commits, ${v}: writers ÷ capture ${spread(ratio(v, 'capture'))}, ÷ off ${spread(ratio(v, 'off'))}; ` +
          `catch-up ${Math.round(median(ps.map((p) => p.deliveredPerS)))} rows/s delivered, duty at end ${ps.map((p) => (p.pacingDuty ?? NaN).toFixed(2)).join('/')}, ` +
          `yielded ${ps.map((p) => (p.pacingYieldedS ?? NaN).toFixed(1)).join('/')} s of the window, queue left ${ps.map((p) => p.queueAtEnd).join('/')}`,
      );
    }
  }
  const pairs = [...new Set(idle.map((r) => r.round))].flatMap((round) => {
    const on = idle.find((r) => r.round === round && r.goodCitizen);
    const off = idle.find((r) => r.round === round && !r.goodCitizen);
    return on && off ? [on.rowsPerS / off.rowsPerS] : [];
  });
  if (pairs.length) {
    lines.push(
      `idle catch-up: good citizen on ${Math.round(median(idle.filter((r) => r.goodCitizen).map((r) => r.rowsPerS)))} rows/s, off ${Math.round(median(idle.filter((r) => !r.goodCitizen).map((r) => r.rowsPerS)))} rows/s; on ÷ off ${spread(pairs)}`,
    );
  }
  return lines;
}
