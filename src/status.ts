/**
 * `dcache-probe status`: what an operator needs to see at a glance, read from the database
 * alone (works whether or not the probe is running): queue depth and age, quarantine,
 * capture health (triggers present, capture failures), installed version, and whether a probe
 * is connected and listening.
 */
import type pg from 'pg';
import { createPool, type DatabaseOptions } from './db';
import { LATEST_VERSION, installedBillingSchema, installedVersion } from './migrations';
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
}

const EXPECTED_TRIGGERS = ['billinginfo.dcache_probe_capture'];

export interface CaptureHealth {
  /** Enabled triggers of ours, as "table.trigger". */
  triggers: string[];
  captureFailures: number;
  /** What is wrong with capture, in words an operator can act on (empty when healthy). */
  problems: string[];
}

/** Are our triggers in place and enabled, and has any capture failed? */
export async function captureHealth(client: pg.ClientBase): Promise<CaptureHealth> {
  const { rows } = await client.query<{ triggers: string[] | null; failures: string }>(`
    SELECT (SELECT array_agg(c.relname || '.' || t.tgname ORDER BY 1)
              FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
              JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'dcache_probe' AND t.tgenabled <> 'D') AS triggers,
           (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM dcache_probe.capture_failure) AS failures`);
  const triggers = rows[0]?.triggers ?? [];
  const captureFailures = Number(rows[0]?.failures ?? 0);
  const problems = EXPECTED_TRIGGERS.filter((t) => !triggers.includes(t)).map(
    (t) => `trigger ${t} is missing or disabled: new transfers are not captured; run "dcache-probe migrate" (or re-enable it)`,
  );
  if (captureFailures > 0) problems.push(`${captureFailures} capture attempts failed (see PostgreSQL's log for "dcache-transfer-probe: could not capture"): those rows were not queued`);
  return { triggers, captureFailures, problems };
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
      };
      if (schemaVersion === 0) {
        status.problems.push('the probe is not installed in this database: run "dcache-probe migrate"');
        return status;
      }
      if (schemaVersion < LATEST_VERSION) status.problems.push(`schema version ${schemaVersion} is older than ${LATEST_VERSION}: run "dcache-probe migrate"`);
      const { rows } = await client.query(`
        SELECT (SELECT count(*) FROM dcache_probe.capture_queue) AS depth,
               (SELECT extract(epoch FROM now() - min(captured_at)) FROM dcache_probe.capture_queue) AS oldest_age,
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
  return lines.join('\n') + '\n';
}
