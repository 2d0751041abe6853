/**
 * What the database says about the probe, for an operator: `dcache-probe status`, the capture
 * health checked at start-up, readiness and the gauges the metrics read at scrape time. Read
 * from the database alone (works whether or not a probe is running): queue depth and age,
 * quarantine, capture health (triggers present, what the capture needs, capture failures, the
 * DDL guard, the NOTIFY queue, the queue's tablespace), installed version, and whether a probe is
 * connected and listening. The read-only queries are at the bottom; above them, their facts
 * judged into problems and warnings an operator can act on. The printing is src/cli/status.ts.
 */
import type pg from 'pg';
import { createPool, withClient, type DatabaseOptions } from './pool';
import { GUARD_MISSING, LATEST_VERSION, installedBillingSchema, installedVersion } from './migrations';
import { PROBE_VERSION } from '../version';
import { queueDepth } from './queue';
import { CAPTURED_COUNT_SQL } from './captured-count';

export interface ProbeStatus {
  /** The version of this dcache-probe (the one asking, not necessarily the one running). */
  probeVersion: string;
  schemaVersion: number;
  expectedSchemaVersion: number;
  billingSchema: string | null;
  queueDepth: number;
  oldestPendingAgeSeconds: number | null;
  quarantined: number;
  deliveredKeysRemembered: number;
  lastDeliveryAt: string | null;
  captureFailures: number;
  triggers: string[];
  listenersConnected: number;
  problems: string[];
  /** A protection missing or a risk ahead; does not make `status` fail. */
  warnings: string[];
}

const EXPECTED_TRIGGERS = ['billinginfo.dcache_probe_capture'];

export interface CaptureHealth {
  /** Enabled triggers of ours, as "table.trigger". */
  triggers: string[];
  captureFailures: number;
  /** What is wrong with capture, in words an operator can act on (empty when healthy). */
  problems: string[];
  /** Protections missing or risks ahead (the guard, the NOTIFY queue, the queue's tablespace). */
  warnings: string[];
}

/** Above this fraction of PostgreSQL's NOTIFY queue the capture stops notifying (007_capture_without_subtransactions.sql). */
const NOTIFY_QUEUE_LIMIT = 0.5;

/**
 * Are our triggers in place and enabled, can they work (dcache_probe.capture_problems(),
 * checked for the capture function's owner: privileges, the queue and what hangs on it), has
 * any capture been skipped, and is the DDL guard installed? Called by `status` and at the
 * probe's start.
 */
export async function captureHealth(client: pg.ClientBase, billingSchema: string | null): Promise<CaptureHealth> {
  const r = await readCaptureFacts(client, billingSchema);
  const triggers = r.triggers ?? [];
  const captureFailures = Number(r.failures ?? 0);
  const problems = EXPECTED_TRIGGERS.filter((t) => !triggers.includes(t)).map(
    (t) => `trigger ${t} is missing or disabled: new transfers are not captured; run "dcache-probe migrate" (or re-enable it)`,
  );
  const warnings: string[] = [];
  if (r.checks) {
    const checked = await captureProblems(client);
    if (triggers.length) problems.push(...checked.map((p) => `capture cannot work: ${p}`));
    if (!r.guard) warnings.push(GUARD_MISSING);
  }
  if (captureFailures > 0) {
    problems.push(
      `${captureFailures} captures were skipped because the queue could not be written (the count is in dcache_probe.capture_failure; until migration 007: "dcache-transfer-probe: could not capture" in PostgreSQL's log): those rows were not queued; "dcache-probe backfill" can send them`,
    );
  }
  if (Number(r.notify_usage) >= NOTIFY_QUEUE_LIMIT) {
    warnings.push(
      `PostgreSQL's NOTIFY queue is ${Math.round(Number(r.notify_usage) * 100)}% full (a listening session is not reading its notifications, often one left open in a transaction): the capture does not notify, and the probe relies on its poll`,
    );
  }
  if (r.tablespaces) {
    warnings.push('dcache_probe.capture_queue is not in the tablespace of billinginfo: if its disk fills first, captures fail while dCache could still write (move it: ALTER TABLE dcache_probe.capture_queue SET TABLESPACE …, when dCache is quiet)');
  }
  return { triggers, captureFailures, problems, warnings };
}

/** A captured row waiting longer than this means nothing is delivering (or it fails). */
export const STALE_AFTER_SECONDS = 600;

export async function readStatus(database: DatabaseOptions, staleAfterSeconds = STALE_AFTER_SECONDS): Promise<ProbeStatus> {
  const pool = createPool({ ...database, max: 1, applicationName: 'dcache-probe status' });
  try {
    return await withClient(pool, async (client) => {
      const schemaVersion = await installedVersion(client);
      const status: ProbeStatus = {
        probeVersion: PROBE_VERSION,
        schemaVersion,
        expectedSchemaVersion: LATEST_VERSION,
        billingSchema: await installedBillingSchema(client),
        queueDepth: 0,
        oldestPendingAgeSeconds: null,
        quarantined: 0,
        deliveredKeysRemembered: 0,
        lastDeliveryAt: null,
        captureFailures: 0,
        triggers: [],
        listenersConnected: 0,
        problems: [],
        warnings: [],
      };
      if (schemaVersion === 0) {
        status.problems.push('the probe is not installed in this database: run "dcache-probe migrate"');
        return status;
      }
      if (schemaVersion < LATEST_VERSION) status.problems.push(`schema version ${schemaVersion} is older than ${LATEST_VERSION}: run "dcache-probe migrate"`);
      const facts = await readQueueFacts(client);
      status.queueDepth = facts.depth;
      status.oldestPendingAgeSeconds = facts.oldestAgeSeconds;
      status.quarantined = facts.quarantined;
      status.deliveredKeysRemembered = facts.deliveredKeys;
      status.lastDeliveryAt = facts.lastDeliveryAt;
      status.listenersConnected = facts.listeners;
      const health = await captureHealth(client, status.billingSchema);
      status.captureFailures = health.captureFailures;
      status.triggers = health.triggers;
      status.problems.push(...health.problems);
      status.warnings.push(...health.warnings);
      if (status.oldestPendingAgeSeconds !== null && status.oldestPendingAgeSeconds > staleAfterSeconds) {
        status.problems.push(
          `the oldest captured row has waited ${status.oldestPendingAgeSeconds} s: no probe is delivering (is "dcache-probe run" up? its log says why it fails; /readyz too)`,
        );
      }
      return status;
    });
  } finally {
    await pool.end();
  }
}

// ---------------------------------------------------------------------------------------
// The queries

/** The raw facts captureHealth judges. */
export interface CaptureFacts {
  triggers: string[] | null;
  failures: string;
  checks: boolean;
  guard: boolean;
  notify_usage: number;
  tablespaces: boolean;
}

/** Our enabled triggers, the capture failures, the guard, the NOTIFY queue and the tablespaces. */
export async function readCaptureFacts(client: pg.ClientBase, billingSchema: string | null): Promise<CaptureFacts> {
  const { rows } = await client.query<CaptureFacts>(
    `
    SELECT (SELECT array_agg(c.relname || '.' || t.tgname ORDER BY 1)
              FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
              JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'dcache_probe' AND t.tgenabled <> 'D') AS triggers,
           (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM dcache_probe.capture_failure) AS failures,
           to_regprocedure('dcache_probe.capture_problems()') IS NOT NULL AS checks,
           (SELECT count(*) = 2 FROM pg_event_trigger
             WHERE evtname IN ('dcache_probe_guard_start', 'dcache_probe_guard_end') AND evtenabled <> 'D') AS guard,
           pg_notification_queue_usage() AS notify_usage,
           -- the queue and billinginfo on one tablespace: a full disk fails dCache's inserts and ours together
           (SELECT count(DISTINCT c.reltablespace) > 1 FROM pg_class c
             WHERE c.oid IN (to_regclass('dcache_probe.capture_queue'),
                             to_regclass(quote_ident($1::text) || '.billinginfo'))) AS tablespaces`,
    [billingSchema],
  );
  return rows[0]!;
}

/** What dcache_probe.capture_problems() finds wrong with the capture. */
export async function captureProblems(client: pg.ClientBase): Promise<string[]> {
  const checked = await client.query<{ problems: string[] }>('SELECT dcache_probe.capture_problems() AS problems');
  return checked.rows[0]?.problems ?? [];
}

export interface QueueFacts {
  depth: number;
  oldestAgeSeconds: number | null;
  quarantined: number;
  deliveredKeys: number;
  lastDeliveryAt: string | null;
  listeners: number;
}

/** Queue, quarantine, ledger and listening probes, for `status`. */
export async function readQueueFacts(client: pg.ClientBase): Promise<QueueFacts> {
  // The queue may be gone (dropped by hand): captureHealth says so, the rest is still shown.
  const queue = await client.query<{ present: boolean }>("SELECT to_regclass('dcache_probe.capture_queue') IS NOT NULL AS present");
  const depth = queue.rows[0]?.present
    ? `(SELECT count(*) FROM dcache_probe.capture_queue) AS depth,
           (SELECT extract(epoch FROM now() - min(captured_at)) FROM dcache_probe.capture_queue) AS oldest_age,`
    : '0 AS depth, NULL AS oldest_age,';
  const { rows } = await client.query(`
    SELECT ${depth}
           (SELECT count(*) FROM dcache_probe.quarantine) AS quarantined,
           (SELECT count(*) FROM dcache_probe.delivered_key) AS keys,
           (SELECT max(delivered_at) FROM dcache_probe.delivered_key) AS last_delivery,
           (SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'dcache-probe listener') AS listeners`);
  const r = rows[0];
  return {
    depth: Number(r.depth),
    oldestAgeSeconds: r.oldest_age === null ? null : Math.round(Number(r.oldest_age)),
    quarantined: Number(r.quarantined),
    deliveredKeys: Number(r.keys),
    lastDeliveryAt: r.last_delivery ? new Date(r.last_delivery).toISOString() : null,
    listeners: Number(r.listeners),
  };
}

/** A number read from the database now; NaN when it cannot be read (a scrape goes on). */
async function numberOrNaN(pool: pg.Pool, sql: string): Promise<number> {
  try {
    const { rows } = await pool.query<{ n: unknown }>(sql);
    return Number(rows[0]!.n);
  } catch {
    return NaN;
  }
}

/** The gauges read at scrape time (src/service/metrics.ts): true even when another probe delivers. */
export const scrapeGauges = {
  queueDepth: (pool: pg.Pool) => queueDepth(pool).catch(() => NaN),
  oldestPendingSeconds: (pool: pg.Pool) => numberOrNaN(pool, 'SELECT coalesce(extract(epoch FROM now() - min(captured_at)), 0) AS n FROM dcache_probe.capture_queue'),
  rowsCaptured: (pool: pg.Pool) => numberOrNaN(pool, CAPTURED_COUNT_SQL),
  quarantineSize: (pool: pg.Pool) => numberOrNaN(pool, 'SELECT count(*)::bigint AS n FROM dcache_probe.quarantine'),
};

/** Throws when the database cannot answer now (readiness). */
export async function pingDatabase(pool: pg.Pool): Promise<void> {
  await pool.query('SELECT 1');
}
