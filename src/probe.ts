/**
 * The probe's lifecycle: start, drain, stop.
 *
 * A "drain cycle" runs whenever something may have arrived: a notification, a (re)connect of
 * the listener, the fallback poll timer, the door re-check timer (movers waiting for their door
 * row), or the end of a collector outage. Overlapping requests coalesce: a request during a
 * cycle makes it go round once more.
 * Each cycle delivers until nothing is ready, then arms the wake-up, waits out in-flight
 * captures (the barrier) and looks once more before going idle (sql/migrations/001_capture.sql
 * explains why nothing can be stranded).
 */
import { existsSync } from 'node:fs';
import type { Server } from 'node:http';
import pg from 'pg';
import { collectorEndpoint, redactUrl, type Config } from './config';
import { DatabaseOutage, createPool, databaseError, describeDatabaseError, isConnectionFault, requireInstalled } from './db';
import { backoffDelay, pause } from './lib';
import { Delivery, emptyResult, type BatchResult, type DeliveryOptions } from './delivery';
import { runBackfill, timeArgOf } from './backfill';
import { IdentityFiles } from './identity';
import { WakeListener } from './listener';
import type { Logger } from './logger';
import { ProbeMetrics, startMetricsServer, type ExtraRoutes } from './metrics';
import { installedBillingSchema } from './migrations';
import { CaptureQueue, armWakeUp, captureBarrier, pruneOldState } from './queue';
import { CollectorSender, multiupdateForm } from './sender';
import { probeDetailsXml } from './xml';
import { captureHealth } from './status';
import { PROBE_VERSION } from './version';
import { TransferStatistics } from './stats';
import { sendCompleteHours, type SummarySendResult } from './summary';

export interface ProbeCounters {
  batches: number;
  delivered: number;
  duplicates: number;
  skipped: number;
  quarantined: number;
  requests: number;
  collectorUnavailable: number;
  lastDeliveryAt: number | null;
}

export interface ProbeHooks {
  /** Inside each delivery transaction, before COMMIT (see DeliveryOptions.onDelivered). */
  onDelivered?: DeliveryOptions['onDelivered'];
  /** More routes on the metrics/health HTTP server. */
  extraRoutes?: ExtraRoutes;
  /** Serve metrics even when metrics.port is 0 (then on a free port; the demo and tests). */
  metricsOnAnyPort?: boolean;
  /** Called after every batch that claimed rows (committed, or given back when unavailable). */
  onBatch?: (result: BatchResult) => void;
}

/** Both hooks, in order, inside the delivery transaction. */
function chainOnDelivered(first: NonNullable<DeliveryOptions['onDelivered']>, second: DeliveryOptions['onDelivered']): NonNullable<DeliveryOptions['onDelivered']> {
  return async (client, delivered) => {
    await first(client, delivered);
    await second?.(client, delivered);
  };
}

/** The caller's routes first, then the dashboard's. */
function chainRoutes(first: ExtraRoutes | undefined, second: ExtraRoutes): ExtraRoutes {
  return async (req, res) => (first ? await first(req, res) : false) || second(req, res);
}

/**
 * Adds a batch's counts to a running total. Latencies are left out on purpose: each batch's go
 * to the metrics as it ends (account()), and a total kept for a whole drain would grow with the
 * backlog: one number per row of a 1M-row catch-up, held until the drain ends.
 */
export function addResults(total: BatchResult, r: BatchResult): BatchResult {
  total.claimed += r.claimed;
  total.delivered += r.delivered;
  total.duplicates += r.duplicates;
  total.skipped += r.skipped;
  total.quarantined += r.quarantined;
  total.left += r.left;
  total.requests += r.requests;
  if (r.unavailable) total.unavailable = r.unavailable;
  return total;
}

/** Whether a batch (or drain) settled any row: the drain goes on only while it does. */
function settledAny(r: BatchResult): boolean {
  return r.claimed > r.left;
}

/**
 * Nothing notifies when a door row arrives (a trigger on doorinfo for that doubled what we cost
 * dCache's inserts; sql/migrations/006_lighter_capture.sql), so while movers wait for their
 * door row the probe looks again by itself: first after this long, then twice as long each
 * time nothing was delivered, up to the maximum.
 */
export const DOOR_RECHECK_FIRST_MS = 250;
export const DOOR_RECHECK_MAX_MS = 5_000;

/**
 * The server ends a probe session left idle inside a transaction this long. Every transaction
 * of the probe is a few statements with nothing in between (no network, no sleep): one idle
 * this long belongs to a probe that stopped (SIGSTOP, a VM pause) or vanished, and what it
 * holds (uncommitted delivery keys its partner may wait for, vacuum's horizon) must go.
 */
export const IDLE_IN_TRANSACTION_MS = 5_000;

export { PROBE_VERSION } from './version';

/** Which form of the billing schema this is, in words (for the handshake and status). */
export async function billingSchemaForm(pool: pg.Pool): Promise<string> {
  const { rows } = await pool.query<{ datestamp: string | null; owner: boolean; p2p: boolean }>(`
    SELECT max(data_type) FILTER (WHERE column_name = 'datestamp') AS datestamp,
           bool_or(column_name = 'owner') AS owner, bool_or(column_name = 'p2p') AS p2p
      FROM information_schema.columns
     WHERE table_schema = (SELECT billing_schema FROM dcache_probe.schema_migration ORDER BY version DESC LIMIT 1)
       AND table_name = 'billinginfo'`);
  const r = rows[0];
  if (!r?.datestamp) return 'unknown';
  if (r.datestamp === 'timestamp without time zone') return 'legacy (pre-Liquibase, timestamp without time zone)';
  if (r.owner) return 'modern (dCache >= 2.16)';
  return r.p2p ? 'dCache 2.7 - 2.15' : 'dCache < 2.7';
}

/**
 * Connection faults at start-up are waited out (the probe is a daemon: a database that is
 * restarting, or not up yet when the probe starts, comes back): first after this long, doubling
 * up to the maximum. Drains that meet one retry as often.
 */
const DATABASE_RETRY_FIRST_MS = 250;
const DATABASE_RETRY_MAX_MS = 5_000;

/** Checks that the probe's schema is installed at the version this build expects. */
export async function checkInstallation(pool: pg.Pool): Promise<{ billingSchema: string; captureProblems: string[]; captureWarnings: string[] }> {
  const client = await pool.connect();
  try {
    await requireInstalled(client);
    const billingSchema = (await installedBillingSchema(client))!;
    const health = await captureHealth(client);
    return { billingSchema, captureProblems: health.problems, captureWarnings: health.warnings };
  } finally {
    client.release();
  }
}

export class Probe {
  readonly counters: ProbeCounters = {
    batches: 0,
    delivered: 0,
    duplicates: 0,
    skipped: 0,
    quarantined: 0,
    requests: 0,
    collectorUnavailable: 0,
    lastDeliveryAt: null,
  };
  readonly pool: pg.Pool;
  readonly sender: CollectorSender;
  private listener: WakeListener | null = null;
  private metrics: ProbeMetrics | null = null;
  private metricsServer: Server | null = null;
  /** Transfer statistics, dashboard and anomaly alerts: only while the HTTP server runs. */
  statistics: TransferStatistics | null = null;
  /** Port of the metrics/health server once started (0 in the configuration picks a free one). */
  metricsPort: number | null = null;
  private delivery: Delivery | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private stopping = false;
  /** Aborted after the stop deadline: abandons the collector request in flight. */
  private readonly abort = new AbortController();
  /** Aborted when stop() begins: ends waits (for the database at start-up). */
  private readonly stopSignal = new AbortController();
  private starting: Promise<void> | null = null;
  private stopped: Promise<void> | null = null;
  /** Logs a database outage once, and its end; readiness reports it meanwhile. */
  readonly outage: DatabaseOutage;
  private timers = new Set<NodeJS.Timeout>();
  /** The last drain error, until a drain succeeds again (readiness reports it). */
  lastDrainError: string | null = null;
  private stopFileSeen = false;
  private handshake: Promise<void> | null = null;
  private outages = 0;
  private pausedUntil = 0;
  private dbFailures = 0;
  private doorRecheckTimer: NodeJS.Timeout | null = null;
  private doorRecheckMs = DOOR_RECHECK_FIRST_MS;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
    private readonly hooks: ProbeHooks = {},
  ) {
    this.pool = createPool({ ...this.databaseOptions(), max: config.pipeline.workers + 2 });
    this.outage = new DatabaseOutage(log);
    this.sender = new CollectorSender({
      endpoint: collectorEndpoint(config.collector.url),
      probeName: config.probe.name,
      timeoutMs: config.collector.timeoutSeconds * 1000,
      retryBaseMs: config.collector.retryBaseMs,
      retryMaxMs: config.collector.retryMaxMs,
      retryBudgetMs: config.collector.retryBudgetSeconds * 1000,
      caFile: config.collector.caFile,
      certFile: config.collector.certFile,
      keyFile: config.collector.keyFile,
      onRetry: (attempt, answer, delayMs) => {
        this.metrics?.retries.inc();
        this.log.warn('collector request failed; retrying', { attempt, answer, delayMs });
      },
    });
  }

  private databaseOptions() {
    const db = this.config.database;
    // No transaction of the probe waits on the network (claims are leases, src/delivery.ts):
    // one left idle this long is a probe that stopped or vanished mid-statement, and the
    // server ends it rather than let it hold back vacuum.
    return { url: db.url, timeZone: db.timeZone, queryTimeoutMs: db.queryTimeoutSeconds * 1000, idleInTransactionMs: IDLE_IN_TRANSACTION_MS };
  }

  get listenerConnected(): boolean {
    return this.listener?.connected ?? false;
  }

  get lastNotificationAt(): number | null {
    return this.listener?.lastNotificationAt ?? null;
  }

  /**
   * Connects, checks the installation and prepares delivery; does not start listening. Throws
   * a DatabaseError: UNAVAILABLE (worth retrying) or what an operator must fix.
   */
  async prepare(): Promise<void> {
    let installation;
    try {
      installation = await checkInstallation(this.pool);
    } catch (err) {
      throw databaseError(err, redactUrl(this.config.database.url));
    }
    if (installation.billingSchema !== this.config.database.billingSchema) {
      this.log.warn('triggers are installed on a different billing schema than configured; using the installed one', {
        installed: installation.billingSchema,
        configured: this.config.database.billingSchema,
      });
    }
    // Delivery goes on (what is captured is still delivered), but an operator must know.
    // (In poll mode there are no triggers to have problems.)
    if (!this.pollMode) {
      for (const problem of installation.captureProblems) this.log.error(`CAPTURE PROBLEM: ${problem}`);
      for (const warning of installation.captureWarnings) this.log.warn(`capture: ${warning}`);
    }
    const queue = new CaptureQueue(installation.billingSchema, pg.escapeIdentifier);
    this.delivery = new Delivery(this.pool, queue, this.sender, {
      bundleSize: this.config.pipeline.bundleSize,
      maxBundleBytes: this.config.pipeline.maxBundleBytes,
      doorGraceSeconds: this.config.pipeline.doorGraceSeconds,
      leaseSeconds: this.config.pipeline.leaseSeconds,
      mapping: {
        probeName: this.config.probe.name,
        siteName: this.config.probe.siteName,
        grid: this.config.probe.grid,
        dcacheServerHost: this.config.probe.dcacheServerHost,
        reportTape: this.config.pipeline.reportTape,
        identity: new IdentityFiles(this.config.identity, (problem) => this.log.warn(`identity file: ${problem}`)),
        filters: {
          onlyInterSiteTransfers: this.config.pipeline.onlyInterSiteTransfers,
          suppressGridLocal: this.config.identity.suppressGridLocal,
          suppressNoDn: this.config.identity.suppressNoDn,
          suppressUnknownVo: this.config.identity.suppressUnknownVo,
          quarantineUnknownVo: this.config.identity.quarantineUnknownVo,
        },
      },
      onDelivered: this.statistics ? chainOnDelivered(this.statistics.onDelivered, this.hooks.onDelivered) : this.hooks.onDelivered,
      summarize: this.config.pipeline.summarize,
    }, this.log);
  }

  /**
   * The daemon: listen, poll, deliver until stop(); serves metrics and health if configured.
   * A database that cannot be reached is waited for (said once; /readyz says not ready
   * meanwhile); what an operator must fix (not installed, login refused, …) is thrown. Resolves
   * early, without error, when stop() is called meanwhile.
   */
  start(): Promise<void> {
    this.starting ??= this.startUp();
    return this.starting;
  }

  private async startUp(): Promise<void> {
    const serving = this.config.metrics.port > 0 || this.hooks.metricsOnAnyPort;
    if (serving && this.config.statistics.enabled) this.statistics = new TransferStatistics(this.pool, this.log, this.config.statistics);
    if (serving) {
      // Served before the database is reached, so that /readyz can say what is awaited.
      this.metrics = new ProbeMetrics(this);
      const routes = this.statistics ? chainRoutes(this.hooks.extraRoutes, this.statistics.routes) : this.hooks.extraRoutes;
      const started = await startMetricsServer(this, this.metrics, this.config.metrics, routes);
      this.metricsServer = started.server;
      this.metricsPort = started.port;
    }
    if (!(await this.untilDatabase('start-up', () => this.prepare()))) return;
    if (this.metrics) this.statistics?.start(this.metrics.registry, this.config.metrics.personalLabels);
    if (!this.pollMode && !(await this.startListener())) return;
    if (this.stopping) return;
    this.handshake = this.sendHandshake();
    const poll = setInterval(() => this.requestDrain(), this.config.pipeline.pollIntervalSeconds * 1000);
    this.timers.add(poll);
    const prune = setInterval(() => void this.pruneOldState(), 10 * 60_000);
    this.timers.add(prune);
    this.log.info('probe running', {
      version: PROBE_VERSION,
      database: redactUrl(this.config.database.url),
      collector: collectorEndpoint(this.config.collector.url).toString(),
      probeName: this.config.probe.name,
      siteName: this.config.probe.siteName,
    });
    this.requestDrain();
  }

  /**
   * Runs `attempt` until it succeeds, waiting out connection faults (logged once, readiness
   * reports them); false if stop() came first. Other errors are thrown.
   */
  private async untilDatabase(during: string, attempt: () => Promise<void>): Promise<boolean> {
    for (let failures = 1; !this.stopping; failures++) {
      try {
        await attempt();
        this.outage.ok();
        return !this.stopping;
      } catch (err) {
        if (!isConnectionFault(err) || this.stopping) throw err;
        this.outage.fault(err, during);
        await pause(backoffDelay(failures, DATABASE_RETRY_FIRST_MS, DATABASE_RETRY_MAX_MS), this.stopSignal.signal);
      }
    }
    return false;
  }

  /**
   * Capture mode: LISTEN for the triggers' notifications, and check that they arrive. False
   * if stop() came before the listener first connected.
   */
  private async startListener(): Promise<boolean> {
    this.listener = new WakeListener({
      database: this.databaseOptions(),
      heartbeatMs: this.config.database.heartbeatSeconds * 1000,
      onWake: () => this.requestDrain(),
      log: this.log,
      outage: this.outage,
    });
    if (!(await this.listener.start())) return false;
    const delivers = await this.listener.selfTest(this.pool);
    if (delivers === false) {
      this.log.warn('LISTEN/NOTIFY does not deliver on this connection (a transaction-mode pooler?); relying on the fallback poll', {
        pollIntervalSeconds: this.config.pipeline.pollIntervalSeconds,
      });
    }
    return true;
  }

  /** Poll mode (no triggers): the probe reads billing rows by datestamp windows. */
  get pollMode(): boolean {
    return this.config.pipeline.mode === 'poll';
  }

  /**
   * Poll mode: copies the billing rows of the next datestamp window into the queue, through
   * the backfill's filters (already delivered, already queued or quarantined, p2p). A window
   * starts pollOverlapSeconds before the previous one ended and ends pollSettleSeconds ago.
   */
  async pollWindow(): Promise<void> {
    const p = this.config.pipeline;
    const end = Date.now() - p.pollSettleSeconds * 1000;
    const { rows } = await this.pool.query<{ ms: string | null }>(
      'SELECT floor(extract(epoch FROM max(range_until)) * 1000)::bigint AS ms FROM dcache_probe.backfill_progress WHERE finished_at IS NOT NULL',
    );
    const lastEnd = rows[0]?.ms ? Number(rows[0].ms) : end;
    const start = Math.min(lastEnd, end) - p.pollOverlapSeconds * 1000;
    if (start >= end) return;
    const result = await runBackfill({
      url: this.config.database.url,
      timeZone: this.config.database.timeZone,
      queryTimeoutMs: this.config.database.queryTimeoutSeconds * 1000,
      since: timeArgOf(new Date(start).toISOString()),
      until: timeArgOf(new Date(end).toISOString()),
      overlapSeconds: 0,
      maxHistoryDays: 3650,
      rate: 1e9,
      maxQueue: 1e12, // this process drains the queue itself: never wait for it here
      chunkSize: 5000,
      dryRun: false,
      restart: false,
      reportTape: p.reportTape,
      dedupWindowHours: p.dedupWindowHours,
      log: this.log,
      print: (line) => this.log.debug(`poll window: ${line}`),
      // A database lost mid-window is waited for (and said once, with the drains' outage).
      outage: this.outage,
      signal: this.stopSignal.signal,
    });
    if (result.total.copied > 0) this.log.debug('poll window copied rows', { since: result.since, until: result.until, copied: result.total.copied });
  }

  /** Sends the ProbeDetails handshake; a failure is logged, never fatal. */
  private async sendHandshake(): Promise<void> {
    try {
      const form = await billingSchemaForm(this.pool);
      const xml = probeDetailsXml({
        probeName: this.config.probe.name,
        siteName: this.config.probe.siteName,
        grid: this.config.probe.grid,
        createTimeMs: Date.now(),
        software: [
          { name: 'dcache-transfer-probe', version: PROBE_VERSION, type: 'component' },
          { name: 'Node.js', version: process.versions.node, type: 'runtime' },
          { name: 'dCache billing database', version: form, type: 'input' },
        ],
      });
      const outcome = await this.sender.send(multiupdateForm([xml], this.config.probe.name), this.abort.signal);
      if (outcome.kind === 'accepted') this.log.info('handshake (ProbeDetails) accepted', { billingSchema: form });
      else this.log.warn('handshake (ProbeDetails) not accepted; delivery goes on', { answer: outcome.answer });
    } catch (err) {
      this.log.warn('could not send the handshake (ProbeDetails)', { error: (err as Error).message });
    }
  }

  /** Asks for a drain cycle; coalesces with one already running. */
  requestDrain(): void {
    if (this.stopping) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.runCycles().finally(() => {
      this.running = null;
      // A wake-up that arrived while the cycle was finishing (e.g. during its last query) must
      // start another cycle, or it would wait for the next poll.
      if (this.again && !this.stopping) this.requestDrain();
    });
  }

  /** Resolves when no drain cycle is running (tests, poll --once). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private later(ms: number): NodeJS.Timeout | null {
    if (this.stopping) return null;
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (this.doorRecheckTimer === t) this.doorRecheckTimer = null;
      this.requestDrain();
    }, ms);
    t.unref(); // a pending retry must never keep a stopping process alive
    this.timers.add(t);
    return t;
  }

  private async runCycles(): Promise<void> {
    try {
      do {
        this.again = false;
        if (Date.now() < this.pausedUntil) return; // collector outage: a timer resumes
        if (this.stoppedByFile()) return; // the poll timer looks again
        if (this.pollMode) await this.pollWindow();
        const first = await this.drain();
        this.outage.ok();
        if (first.unavailable) return this.collectorDown(first.unavailable);
        if (settledAny(first)) this.doorRecheckMs = DOOR_RECHECK_FIRST_MS;
        // Going idle: arm the wake-up, wait out in-flight captures, look once more.
        await armWakeUp(this.pool);
        const clear = await captureBarrier(this.pool);
        const second = await this.drain();
        if (second.unavailable) return this.collectorDown(second.unavailable);
        if (settledAny(second)) this.again = true;
        if (!clear && !this.again) {
          // A long dCache transaction holds the capture lock; do not queue behind it again
          // at once (that would pause dCache's other writers), look again shortly.
          this.later(1000);
        }
      } while (this.again && !this.stopping);
      if (this.config.pipeline.summarize) {
        const sent = await this.sendSummaries();
        if (sent.unavailable) return this.collectorDown(sent.unavailable);
      }
      this.dbFailures = 0;
      this.lastDrainError = null;
      await this.scheduleDoorRecheck();
    } catch (err) {
      if (this.stopping) return;
      this.dbFailures++;
      this.again = false; // retry after the backoff below, not at once
      this.lastDrainError = describeDatabaseError(err);
      if (isConnectionFault(err)) {
        // Said once per outage (not once per retry); the listener's reconnect drains at once.
        this.outage.fault(err, 'delivery');
        this.later(backoffDelay(this.dbFailures, DATABASE_RETRY_FIRST_MS, DATABASE_RETRY_MAX_MS));
        return;
      }
      const delay = backoffDelay(this.dbFailures, 500, 30_000);
      this.log.error('drain failed; retrying', { error: this.lastDrainError, retryInMs: delay });
      this.later(delay);
    }
  }

  /**
   * Gratia's StopFileName: while the file exists nothing is claimed (rows stay queued);
   * said once when it appears and once when it goes.
   */
  private stoppedByFile(): boolean {
    const file = this.config.probe.stopFile;
    const present = file !== undefined && existsSync(file);
    if (present !== this.stopFileSeen) {
      this.stopFileSeen = present;
      if (present) this.log.warn('stop file present: not delivering until it is removed', { file });
      else if (file) this.log.info('stop file removed: delivering again', { file });
    }
    return present;
  }

  /** Delivers with `workers` parallel batches until no ready row is left. */
  async drain(): Promise<BatchResult> {
    const delivery = this.delivery;
    if (!delivery) throw new Error('probe not prepared');
    const total = emptyResult();
    if (this.stoppedByFile()) return total;
    const worker = async (): Promise<void> => {
      while (!this.stopping && !total.unavailable) {
        const r = await delivery.deliverBatch(this.abort.signal);
        addResults(total, r);
        if (r.claimed > 0) this.account(r);
        // Stop only on a claim that settled nothing: under a steady load most claims are short,
        // and stopping on the first short one left a single worker draining while the backlog
        // grew. (Rows left queued, waiting for another lease, are looked at again later.)
        if (r.unavailable || !settledAny(r)) return;
      }
    };
    // Every worker ends before the drain does, also when one fails: a failed drain is retried
    // by a new cycle, which must not find the old workers still at it.
    const outcomes = await Promise.allSettled(Array.from({ length: this.config.pipeline.workers }, worker));
    const failure = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
    if (failure) throw failure.reason;
    return total;
  }

  /** Summarize mode: sends the hours that are complete (see summary.ts). */
  async sendSummaries(): Promise<SummarySendResult> {
    if (this.stoppedByFile() || !this.delivery) return { hoursSent: 0, records: 0 };
    const result = await sendCompleteHours(
      this.pool,
      this.sender,
      this.delivery.mapping,
      this.config.pipeline.summarySettleMinutes * 60_000,
      this.config.pipeline.maxBundleBytes,
      this.log,
    );
    if (result.records > 0) this.log.info('summary records delivered', { hours: result.hoursSent, records: result.records });
    return result;
  }

  private account(r: BatchResult): void {
    const c = this.counters;
    c.batches++;
    c.delivered += r.delivered;
    c.duplicates += r.duplicates;
    c.skipped += r.skipped;
    c.quarantined += r.quarantined;
    c.requests += r.requests;
    if (r.unavailable) c.collectorUnavailable++;
    else {
      this.outages = 0;
      c.lastDeliveryAt = Date.now();
    }
    this.metrics?.observeBatch(r);
    this.hooks.onBatch?.(r);
  }

  private collectorDown(answer: string): void {
    this.outages++;
    const delay = backoffDelay(this.outages, this.config.collector.retryBaseMs, this.config.collector.retryMaxMs);
    this.pausedUntil = Date.now() + delay;
    this.log.error('collector unavailable; records stay queued in the database', { answer, retryInMs: delay });
    this.later(delay);
  }

  /**
   * Rows still queued after a cycle are movers waiting for their door row (or rows another
   * probe is delivering). Look again soon, backing off while nothing arrives, and at the latest
   * when the oldest one's grace period ends. One timer: a newer cycle replaces it.
   */
  private async scheduleDoorRecheck(): Promise<void> {
    const { rows } = await this.pool.query<{ ms: string | null; lease_ms: string | null }>(
      `SELECT floor(extract(epoch FROM min(captured_at)) * 1000)::bigint AS ms,
              (SELECT ceil(extract(epoch FROM min(leased_until) - now()) * 1000)::bigint FROM dcache_probe.claim) AS lease_ms
         FROM dcache_probe.capture_queue`,
    );
    if (this.doorRecheckTimer) {
      clearTimeout(this.doorRecheckTimer);
      this.timers.delete(this.doorRecheckTimer);
      this.doorRecheckTimer = null;
    }
    const oldest = rows[0]?.ms ? Number(rows[0].ms) : null;
    if (oldest === null || this.stopping) {
      this.doorRecheckMs = DOOR_RECHECK_FIRST_MS;
      return;
    }
    // Rows past their grace period that are still queued are held by another probe (or the
    // database's clock is behind ours): back off for them as well.
    // A lease (another probe's, or one of ours that was lost) that runs out frees its rows.
    const graceEndsIn = oldest + this.config.pipeline.doorGraceSeconds * 1000 - Date.now() + 50;
    const leaseEndsIn = rows[0]?.lease_ms ? Number(rows[0].lease_ms) + 50 : Infinity;
    const delay = Math.min(graceEndsIn > 0 ? Math.min(this.doorRecheckMs, graceEndsIn) : this.doorRecheckMs, leaseEndsIn > 0 ? leaseEndsIn : this.doorRecheckMs);
    this.doorRecheckTimer = this.later(Math.max(DOOR_RECHECK_FIRST_MS, delay));
    this.doorRecheckMs = Math.min(this.doorRecheckMs * 2, DOOR_RECHECK_MAX_MS);
  }

  private async pruneOldState(): Promise<void> {
    try {
      const n = await pruneOldState(this.pool, this.config.pipeline.dedupWindowHours);
      if (n > 0) this.log.debug('pruned old delivery keys and sent summaries', { rows: n });
    } catch (err) {
      if (isConnectionFault(err)) this.outage.fault(err, 'pruning old state');
      else this.log.warn('could not prune old state', { error: describeDatabaseError(err) });
    }
  }


  /**
   * Stops claiming, lets the batch in flight finish for up to `deadlineMs`, then abandons it
   * (its lease is given back, so its rows are claimable at once), and closes everything.
   */
  stop(deadlineMs = 10_000): Promise<void> {
    this.stopped ??= this.shutdown(deadlineMs);
    return this.stopped;
  }

  private async shutdown(deadlineMs: number): Promise<void> {
    this.stopping = true;
    this.stopSignal.abort();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const abandon = setTimeout(() => this.abort.abort(), deadlineMs);
    try {
      // A start-up still waiting for the database ends now; one in its last step finishes it.
      await this.starting?.catch(() => undefined);
      await this.idle();
      await this.handshake;
      await this.statistics?.stop();
    } finally {
      clearTimeout(abandon);
      this.metricsServer?.closeAllConnections();
      await new Promise<void>((resolve) => (this.metricsServer ? this.metricsServer.close(() => resolve()) : resolve()));
      await this.listener?.stop();
      await this.sender.close().catch(() => undefined);
      await this.pool.end().catch(() => undefined);
    }
  }
}
