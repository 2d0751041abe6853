/**
 * The database side of `dcache-probe status`, of the capture health checked at start-up, and
 * of the metrics read at scrape time: what is queued, quarantined, delivered, captured, and
 * whether our triggers and guard are in place. Read-only.
 */
import type pg from 'pg';

/** The raw facts captureHealth (src/db/health.ts) judges. */
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
  queueDepth: (pool: pg.Pool) => numberOrNaN(pool, 'SELECT count(*)::bigint AS n FROM dcache_probe.capture_queue'),
  oldestPendingSeconds: (pool: pg.Pool) => numberOrNaN(pool, 'SELECT coalesce(extract(epoch FROM now() - min(captured_at)), 0) AS n FROM dcache_probe.capture_queue'),
  rowsCaptured: (pool: pg.Pool) => numberOrNaN(pool, 'SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS n FROM dcache_probe.capture_queue_id_seq'),
  quarantineSize: (pool: pg.Pool) => numberOrNaN(pool, 'SELECT count(*)::bigint AS n FROM dcache_probe.quarantine'),
};

/** Throws when the database cannot answer now (readiness). */
export async function pingDatabase(pool: pg.Pool): Promise<void> {
  await pool.query('SELECT 1');
}
