/**
 * Transfer statistics, the dashboard and abnormal-traffic alerts (issue 7), as one optional
 * feature of the running probe (src/service/probe.ts creates it when it serves HTTP):
 *
 *  - `onDelivered` adds each delivered batch to the statistics inside the delivery
 *    transaction, under a savepoint: if it fails (e.g. the runtime role lacks the grants of
 *    004_stats.sql) delivery goes on and the failure is logged (at most once a minute).
 *  - `routes` serve the page and its API beside /metrics.
 *  - `start(registry)` prunes old rows every 10 minutes and runs the detectors.
 *
 * Its settings are the "statistics" section of the configuration (src/config/schema.ts); the probe
 * creates it only when statistics.enabled (DCACHE_PROBE_STATS=off turns it all off).
 */
import type pg from 'pg';
import type client from 'prom-client';
import { isConnectionFault } from '../../db/pool';
import { underStatisticsSavepoint } from '../../db/statistics';
import type { DeliveryOptions } from '../../pipeline/delivery';
import type { Logger } from '../../logger';
import { HOUR_MS, errorMessage, type ExtraRoutes } from '../../lib';
import { dashboardRoutes } from '../dashboard/routes';
import { AnomalyMonitor } from './monitor';
import type { StatisticsOptions } from './options';
import { prune, recordBatch } from './store';

export class TransferStatistics {
  readonly routes: ExtraRoutes;
  monitor: AnomalyMonitor | null = null;
  private pruneTimer: NodeJS.Timeout | null = null;
  private lastFailureLog = 0;
  private pruning: Promise<void> = Promise.resolve();
  /** Batches whose statistics could not be written (delivered all the same). */
  failures = 0;

  constructor(
    private readonly pool: pg.Pool,
    private readonly log: Logger,
    /** The configuration's statistics section (config.statistics). */
    readonly options: StatisticsOptions,
  ) {
    this.routes = dashboardRoutes(pool, this.options);
  }

  readonly onDelivered: NonNullable<DeliveryOptions['onDelivered']> = async (client, delivered) => {
    if (delivered.length === 0) return;
    const retention = { minuteMs: this.options.minuteRetentionHours * HOUR_MS, hourMs: this.options.hourRetentionDays * 24 * HOUR_MS };
    const outcome = await underStatisticsSavepoint(client, () => recordBatch(client, delivered, retention));
    if (outcome) {
      this.failures++;
      if (Date.now() - this.lastFailureLog > 60_000) {
        this.lastFailureLog = Date.now();
        this.log.warn('could not update the transfer statistics; delivery goes on (run "dcache-probe migrate --grant-to ROLE" after an upgrade)', { error: errorMessage(outcome.failed), failedBatches: this.failures });
      }
    }
  };

  /** `personalLabels`: metric labels may carry DNs, user names and client networks (metrics.personalLabels). */
  start(registry?: client.Registry, personalLabels = false): void {
    this.monitor = new AnomalyMonitor(this.pool, this.log, this.options, registry, personalLabels);
    this.monitor.start();
    const pruneNow = () => {
      this.pruning = prune(this.pool, this.options).then(
        () => undefined,
        // (A database that is away is said once by the probe, not again here every 10 minutes.)
        (err) => void (isConnectionFault(err) || this.log.warn('could not prune the transfer statistics', { error: errorMessage(err) })),
      );
    };
    this.pruneTimer = setInterval(pruneNow, 10 * 60_000);
    pruneNow();
  }

  async stop(): Promise<void> {
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    this.pruneTimer = null;
    await this.monitor?.stop();
    await this.pruning;
  }
}
