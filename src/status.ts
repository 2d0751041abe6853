/**
 * `dcache-probe status`: what an operator needs to see at a glance, read from the database
 * alone (works whether or not the probe is running): queue depth and age, quarantine,
 * capture health (triggers present, what the capture needs, capture failures, the DDL guard),
 * installed version, and whether a probe is connected and listening.
 */
import type pg from 'pg';
import { createPool, type DatabaseOptions } from './db';
import { GUARD_MISSING, LATEST_VERSION, installedBillingSchema, installedVersion } from './migrations';
import { PROBE_VERSION } from './version';

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
export async function captureHealth(client: pg.ClientBase): Promise<CaptureHealth> {
  const { rows } = await client.query<{ triggers: string[] | null; failures: string; checks: boolean; guard: boolean; notify_usage: number; tablespaces: boolean }>(`
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
                             to_regclass(quote_ident((SELECT billing_schema FROM dcache_probe.schema_migration ORDER BY version DESC LIMIT 1)) || '.billinginfo'))) AS tablespaces`);
  const r = rows[0]!;
  const triggers = r.triggers ?? [];
  const captureFailures = Number(r.failures ?? 0);
  const problems = EXPECTED_TRIGGERS.filter((t) => !triggers.includes(t)).map(
    (t) => `trigger ${t} is missing or disabled: new transfers are not captured; run "dcache-probe migrate" (or re-enable it)`,
  );
  const warnings: string[] = [];
  if (r.checks) {
    const checked = await client.query<{ problems: string[] }>('SELECT dcache_probe.capture_problems() AS problems');
    if (triggers.length) problems.push(...(checked.rows[0]?.problems ?? []).map((p) => `capture cannot work: ${p}`));
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
    const client = await pool.connect();
    try {
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
      status.queueDepth = Number(r.depth);
      status.oldestPendingAgeSeconds = r.oldest_age === null ? null : Math.round(Number(r.oldest_age));
      status.quarantined = Number(r.quarantined);
      status.deliveredKeysRemembered = Number(r.keys);
      status.lastDeliveryAt = r.last_delivery ? new Date(r.last_delivery).toISOString() : null;
      status.listenersConnected = Number(r.listeners);
      const health = await captureHealth(client);
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
    } finally {
      client.release();
    }
  } finally {
    await pool.end();
  }
}

export function formatStatus(s: ProbeStatus): string {
  const lines = [
    `probe version       ${s.probeVersion}`,
    `schema version      ${s.schemaVersion} (this probe: ${s.expectedSchemaVersion})`,
    `billing schema      ${s.billingSchema ?? '-'}`,
    `queue depth         ${s.queueDepth}`,
    `oldest pending      ${s.oldestPendingAgeSeconds === null ? '-' : `${s.oldestPendingAgeSeconds} s ago`}`,
    `last delivery       ${s.lastDeliveryAt ?? '-'}`,
    `quarantined         ${s.quarantined}`,
    `capture failures    ${s.captureFailures}`,
    `triggers            ${s.triggers.join(', ') || '-'}`,
    `listening probes    ${s.listenersConnected}`,
  ];
  if (s.problems.length) lines.push('', 'PROBLEMS:', ...s.problems.map((p) => `  - ${p}`));
  if (s.warnings.length) lines.push('', 'WARNINGS:', ...s.warnings.map((w) => `  - ${w}`));
  return lines.join('\n') + '\n';
}
