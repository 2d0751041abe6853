/**
 * `dcache-probe status`: what an operator needs to see at a glance, read from the database
 * alone (works whether or not the probe is running): queue depth and age, quarantine,
 * capture health (triggers present, what the capture needs, capture failures, the DDL guard),
 * installed version, and whether a probe is connected and listening. The judging is here; the
 * queries are in src/db/status.ts, the printing in src/cli/status.ts.
 */
import type pg from 'pg';
import { createPool, withClient, type DatabaseOptions } from './pool';
import { GUARD_MISSING, LATEST_VERSION, installedBillingSchema, installedVersion } from './migrations';
import { PROBE_VERSION } from '../version';
import { captureProblems, readCaptureFacts, readQueueFacts } from './status';

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
