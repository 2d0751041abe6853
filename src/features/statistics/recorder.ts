/**
 * The recording half of the transfer statistics: whenever statistics.enabled, whether or not
 * the probe serves HTTP, and also for the deliveries of `poll --once` (the dashboard and the
 * detectors, src/features/statistics/index.ts, only run while the probe serves HTTP).
 *
 *  - `onDelivered` adds each delivered batch to the statistics inside the delivery
 *    transaction, under a savepoint: if it fails (e.g. the runtime role lacks the grants of
 *    004_stats.sql) delivery goes on and the failure is logged (at most once a minute).
 *    Records from before the capture's installation (`installedAt`, read at prepare) count in
 *    the minute table only: the hour and day tables have them from the history builder.
 *  - `start()` (the daemon) prunes old rows every 10 minutes and, if statistics.historyDays >
 *    0, counts that much billing history in the background (history.ts); then it counts the
 *    removals of every complete UTC day from the same start (removals.ts), and again once a
 *    day shortly after UTC midnight; `stop()` ends all three.
 */
import type pg from 'pg';
import { isConnectionFault } from '../../db/pool';
import { underStatisticsSavepoint } from '../../db/statistics';
import type { DeliveryOptions } from '../../pipeline/delivery';
import type { Logger } from '../../logger';
import { HOUR_MS, errorMessage, DAY_MS } from '../../lib';
import type { HistoryResult } from './history';
import type { RemovalResult } from './removals';
import type { StatisticsOptions } from './options';
import { prune, recordBatch } from './store';

/** What the background history builder needs beyond the statistics settings. */
export interface HistoryContext {
  reportTape: boolean;
  onlyInterSiteTransfers: boolean;
}

export class StatisticsRecorder {
  private pruneTimer: NodeJS.Timeout | null = null;
  private removalTimer: NodeJS.Timeout | null = null;
  private lastFailureLog = 0;
  private pruning: Promise<void> = Promise.resolve();
  private readonly stopSignal = new AbortController();
  /** The background history build of the daemon (resolves, never rejects). */
  history: Promise<HistoryResult | undefined> = Promise.resolve(undefined);
  /** The latest run of the removal step (resolves, never rejects). */
  removals: Promise<RemovalResult | undefined> = Promise.resolve(undefined);
  /** Batches whose statistics could not be written (delivered all the same). */
  failures = 0;
  /** The capture's installation (epoch ms); until it is known nothing is taken for history. */
  installedAtMs = -Infinity;

  constructor(
    private readonly pool: pg.Pool,
    private readonly log: Logger,
    /** The configuration's statistics section (config.statistics). */
    readonly options: StatisticsOptions,
  ) {}

  readonly onDelivered: NonNullable<DeliveryOptions['onDelivered']> = async (client, delivered) => {
    if (delivered.length === 0) return;
    const o = this.options;
    const retention = { minuteMs: o.minuteRetentionHours * HOUR_MS, hourMs: o.hourRetentionDays * DAY_MS, dayMs: o.dayRetentionDays * DAY_MS, historyBeforeMs: this.installedAtMs };
    const outcome = await underStatisticsSavepoint(client, () => recordBatch(client, delivered, retention));
    if (outcome) {
      this.failures++;
      if (Date.now() - this.lastFailureLog > 60_000) {
        this.lastFailureLog = Date.now();
        this.log.warn('could not update the transfer statistics; delivery goes on (run "dcache-probe migrate --grant-to ROLE" after an upgrade)', { error: errorMessage(outcome.failed), failedBatches: this.failures });
      }
    }
  };

  /** Pruning, and the history of the last statistics.historyDays days in the background. */
  start(context: HistoryContext): void {
    // The history builder and the removal count are loaded here, by the daemon: `poll --once`
    // only records (onDelivered) and does not pay for loading them.
    const { buildHistory } = require('./history') as typeof import('./history');
    const { countRemovals, nextRunDelayMs } = require('./removals') as typeof import('./removals');
    const pruneNow = () => {
      this.pruning = prune(this.pool, this.options).then(
        () => undefined,
        // (A database that is away is said once by the probe, not again here every 10 minutes.)
        (err) => void (isConnectionFault(err) || this.log.warn('could not prune the transfer statistics', { error: errorMessage(err) })),
      );
    };
    this.pruneTimer = setInterval(pruneNow, 10 * 60_000);
    pruneNow();
    // The history window, the same for the hours and the removals: historyDays before the installation.
    const sinceMs = this.installedAtMs - this.options.historyDays * DAY_MS;
    if (this.options.historyDays > 0 && Number.isFinite(this.installedAtMs)) {
      this.history = buildHistory(this.pool, {
        sinceMs,
        pauseMs: this.options.historyPauseMs,
        hourRetentionDays: this.options.hourRetentionDays,
        ...context,
        signal: this.stopSignal.signal,
        log: this.log,
      }).catch((err) => {
        if (!this.stopSignal.signal.aborted) this.log.warn('could not count the billing history into the statistics; "dcache-probe stats-history" continues it', { error: errorMessage(err) });
        return undefined;
      });
    }
    if (Number.isFinite(this.installedAtMs)) {
      const countNow = () => {
        this.removals = this.removals.then(() =>
          countRemovals(this.pool, { sinceMs, pauseMs: this.options.historyPauseMs, signal: this.stopSignal.signal, log: this.log }).catch((err) => {
            if (!this.stopSignal.signal.aborted && !isConnectionFault(err)) this.log.warn('could not count the removals of the billing tables; the next run continues it', { error: errorMessage(err) });
            return undefined;
          }),
        );
      };
      const daily = () => {
        this.removalTimer = setTimeout(() => {
          countNow();
          daily();
        }, nextRunDelayMs(Date.now()));
      };
      // After the history build (one throttled step at a time), then once a day.
      this.removals = this.history.then(() => undefined);
      countNow();
      daily();
    }
  }

  async stop(): Promise<void> {
    this.stopSignal.abort();
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    this.pruneTimer = null;
    if (this.removalTimer) clearTimeout(this.removalTimer);
    this.removalTimer = null;
    await this.pruning;
    await this.history;
    await this.removals;
  }
}
