/**
 * The composition root of the daemon: builds the probe's parts in one place (pool, sender,
 * delivery, listener, drain scheduler, metrics server, statistics) and runs their lifecycle:
 * start, drain, stop. What each part does is in its own module: the drain scheduling in
 * src/pipeline/scheduler.ts, one drain in src/pipeline/drain.ts, the handshake in
 * src/service/handshake.ts, the stop file in src/service/stop-file.ts, the installation checks
 * in src/db/installation.ts, the door re-check query and pruning in src/db/housekeeping.ts.
 * Metrics and readiness read the probe through ProbeHealth and hear of its batches through
 * ProbeEvents (src/service/interfaces.ts).
 */
import type { Server } from 'node:http';
import pg from 'pg';
import { collectorEndpoint, redactUrl, type Config } from '../config/schema';
import { DatabaseOutage, createPool, databaseError, describeDatabaseError, isConnectionFault, withClient } from '../db/pool';
import { checkInstallation } from '../db/installation';
import { installationTimeMs } from '../db/backfill';
import { pruneOldState, queueWaits } from '../db/housekeeping';
import { backoffDelay, pause } from '../lib';
import { Delivery, emptyResult, type BatchResult, type DeliveryOptions } from '../pipeline/delivery';
import { pollWindow } from '../pipeline/poll-window';
import { IdentityFiles } from '../record/identity';
import { WakeListener } from '../pipeline/listener';
import type { Logger } from '../logger';
import { ProbeMetrics, startMetricsServer } from './metrics';
import type { ExtraRoutes } from '../lib';
import { CaptureQueue } from '../db/queue';
import { armWakeUp, captureBarrier } from '../db/wake-up';
import { CollectorSender } from '../pipeline/sender';
import { PROBE_VERSION } from '../version';
import { StatisticsRecorder, TransferStatistics } from '../features/statistics';
import { sendCompleteHours, type SummarySendResult } from '../pipeline/summaries';
import { drainQueue } from '../pipeline/drain';
import { Pacer, type PacerStatus } from '../pipeline/pacing';
import { capturedCount } from '../db/captured-count';
import { DATABASE_RETRY_FIRST_MS, DATABASE_RETRY_MAX_MS, DrainScheduler } from '../pipeline/scheduler';
import { addBatch, batchCounts, emptyCounters, type ProbeCounters } from './counters';
import { sendHandshake } from './handshake';
import { ProbeEventEmitter, type ProbeHealth } from './interfaces';
import { StopFile } from './stop-file';
import { databaseOptions, deliveryOptions, senderOptions } from './settings';

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

export class Probe implements ProbeHealth {
  readonly counters: ProbeCounters = emptyCounters();
  /** What the probe says as it works: batches, retries (the metrics listen). */
  readonly events = new ProbeEventEmitter();
  readonly pool: pg.Pool;
  readonly sender: CollectorSender;
  private listener: WakeListener | null = null;
  private metrics: ProbeMetrics | null = null;
  private metricsServer: Server | null = null;
  /** Writes the transfer statistics (whenever statistics.enabled, also for poll --once). */
  readonly recorder: StatisticsRecorder | null;
  /** The dashboard and anomaly alerts: only while the HTTP server runs. */
  statistics: TransferStatistics | null = null;
  /** Port of the metrics/health server once started (0 in the configuration picks a free one). */
  metricsPort: number | null = null;
  private delivery: Delivery | null = null;
  /** Paces the drains' claims: the good citizen and the rows/s limit (src/pipeline/pacing.ts). */
  private readonly pacer: Pacer;
  private readonly scheduler: DrainScheduler;
  private readonly stopFile: StopFile;
  private stopping = false;
  /** Aborted after the stop deadline: abandons the collector request in flight. */
  private readonly abort = new AbortController();
  /** Aborted when stop() begins: ends waits (for the database at start-up). */
  private readonly stopSignal = new AbortController();
  private starting: Promise<void> | null = null;
  private stopped: Promise<void> | null = null;
  /** Logs a database outage once, and its end; readiness reports it meanwhile. */
  readonly outage: DatabaseOutage;
  private intervals = new Set<NodeJS.Timeout>();
  private handshake: Promise<void> | null = null;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
    private readonly hooks: ProbeHooks = {},
  ) {
    this.pool = createPool({ ...databaseOptions(this.config), max: config.pipeline.workers + 2 });
    this.recorder = config.statistics.enabled ? new StatisticsRecorder(this.pool, log, config.statistics) : null;
    this.outage = new DatabaseOutage(log);
    this.stopFile = new StopFile(config.probe.stopFile, log);
    this.sender = new CollectorSender({
      ...senderOptions(config),
      onRetry: (attempt, answer, delayMs) => {
        this.events.emit('retry', attempt, answer, delayMs);
        this.log.warn('collector request failed; retrying', { attempt, answer, delayMs });
      },
    });
    this.pacer = new Pacer({
      // In poll mode the capture sequence counts the probe's own copies, not dCache's inserts.
      goodCitizen: config.pipeline.goodCitizen && !this.pollMode,
      maxRowsPerSecond: config.pipeline.maxRowsPerSecond,
      readCount: () => capturedCount(this.pool),
      onPeriod: (p) => this.log.debug('pacing', { insertsPerSWorking: Math.round(p.workRate), insertsPerSPaused: Math.round(p.pauseRate), duty: p.duty }),
    });
    this.scheduler = new DrainScheduler(
      {
        stoppedByFile: () => this.stopFile.present(),
        pollWindow: this.pollMode ? () => this.pollWindow() : undefined,
        drain: () => this.drain(),
        goIdle: async () => {
          await armWakeUp(this.pool);
          return captureBarrier(this.pool);
        },
        sendSummaries: config.pipeline.summarize ? () => this.sendSummaries() : undefined,
        queueWaits: () => queueWaits(this.pool),
      },
      { doorGraceSeconds: config.pipeline.doorGraceSeconds, collectorRetryBaseMs: config.collector.retryBaseMs, collectorRetryMaxMs: config.collector.retryMaxMs },
      this.outage,
      log,
    );
    this.events.on('batch', (counts) => {
      addBatch(this.counters, counts, Date.now());
      if (!counts.unavailable) this.scheduler.collectorAccepted();
    });
    if (hooks.onBatch) {
      const onBatch = hooks.onBatch;
      this.events.on('batch', (_counts, result) => onBatch(result));
    }
  }

  get listenerConnected(): boolean {
    return this.listener?.connected ?? false;
  }

  get lastNotificationAt(): number | null {
    return this.listener?.lastNotificationAt ?? null;
  }

  /** The last drain error, until a drain succeeds again (readiness reports it). */
  get lastDrainError(): string | null {
    return this.scheduler.lastDrainError;
  }

  get pacing(): PacerStatus {
    return this.pacer.status();
  }

  get outageProblem(): string | null {
    return this.outage.problem;
  }

  get collectorLastAcceptedAt(): number | null {
    return this.sender.lastAcceptedAt;
  }

  pingCollector(signal: AbortSignal): Promise<boolean> {
    return this.sender.ping(signal);
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
    const identity = new IdentityFiles(this.config.identity, (problem) => this.log.warn(`identity file: ${problem}`));
    // Read once: records from before it are the history builder's (src/features/statistics/history.ts).
    if (this.recorder) this.recorder.installedAtMs = await withClient(this.pool, installationTimeMs);
    const onDelivered = this.recorder ? chainOnDelivered(this.recorder.onDelivered, this.hooks.onDelivered) : this.hooks.onDelivered;
    this.delivery = new Delivery(this.pool, queue, this.sender, { ...deliveryOptions(this.config, identity), onDelivered }, this.log);
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
      this.metrics = new ProbeMetrics(this, this.events);
      const routes = this.statistics ? chainRoutes(this.hooks.extraRoutes, this.statistics.routes) : this.hooks.extraRoutes;
      const started = await startMetricsServer(this, this.metrics, this.config.metrics, routes);
      this.metricsServer = started.server;
      this.metricsPort = started.port;
    }
    if (!(await this.untilDatabase('start-up', () => this.prepare()))) return;
    this.recorder?.start({ reportTape: this.config.pipeline.reportTape, onlyInterSiteTransfers: this.config.pipeline.onlyInterSiteTransfers });
    if (this.metrics) this.statistics?.start(this.metrics.registry, this.config.metrics.personalLabels);
    if (!this.pollMode && !(await this.startListener())) return;
    if (this.stopping) return;
    this.handshake = sendHandshake(this.pool, this.sender, this.config.probe, this.log, this.abort.signal);
    this.every(this.config.pipeline.pollIntervalSeconds * 1000, () => this.requestDrain());
    this.every(10 * 60_000, () => void this.pruneOldState());
    this.log.info('probe running', {
      version: PROBE_VERSION,
      database: redactUrl(this.config.database.url),
      collector: collectorEndpoint(this.config.collector.url).toString(),
      probeName: this.config.probe.name,
      siteName: this.config.probe.siteName,
    });
    this.requestDrain();
  }

  private every(ms: number, fn: () => void): void {
    this.intervals.add(setInterval(fn, ms));
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
      database: databaseOptions(this.config),
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
    await pollWindow({ pool: this.pool, config: this.config, log: this.log, outage: this.outage, signal: this.stopSignal.signal });
  }

  /** Asks for a drain cycle; coalesces with one already running (src/pipeline/scheduler.ts). */
  requestDrain(): void {
    if (this.stopping) return;
    this.scheduler.request();
  }

  /** Resolves when no drain cycle is running (tests, poll --once). */
  idle(): Promise<void> {
    return this.scheduler.idle();
  }

  /** Delivers with `workers` parallel batches until no ready row is left. */
  async drain(): Promise<BatchResult> {
    const delivery = this.delivery;
    if (!delivery) throw new Error('probe not prepared');
    if (this.stopFile.present()) return emptyResult();
    return drainQueue(delivery, {
      workers: this.config.pipeline.workers,
      signal: this.abort.signal,
      stopping: () => this.stopping,
      onBatch: (r) => this.events.emit('batch', batchCounts(r), r),
      pacer: this.pacer,
    });
  }

  /** Summarize mode: sends the hours that are complete (src/pipeline/summaries.ts). */
  async sendSummaries(): Promise<SummarySendResult> {
    if (this.stopFile.present() || !this.delivery) return { hoursSent: 0, records: 0 };
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
    this.scheduler.stop();
    for (const t of this.intervals) clearInterval(t);
    this.intervals.clear();
    const abandon = setTimeout(() => this.abort.abort(), deadlineMs);
    try {
      // A start-up still waiting for the database ends now; one in its last step finishes it.
      await this.starting?.catch(() => undefined);
      await this.idle();
      await this.handshake;
      await this.statistics?.stop();
      await this.recorder?.stop();
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
