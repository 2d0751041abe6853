/**
 * Transfer statistics, the dashboard and abnormal-traffic alerts (issue 7), as one optional
 * feature of the running probe. Two halves:
 *
 *  - StatisticsRecorder (recorder.ts): writes the statistics in each delivery transaction,
 *    prunes them and counts the billing history; made whenever statistics.enabled (also for
 *    `poll --once` and with the HTTP server off).
 *  - TransferStatistics (here): what reads them while the probe serves HTTP: the `routes` of
 *    the page and its API beside /metrics, and `start(registry)`, the detectors.
 *
 * Its settings are the "statistics" section of the configuration (src/config/schema.ts); the probe
 * creates neither unless statistics.enabled (DCACHE_PROBE_STATS=off turns it all off).
 */
import type pg from 'pg';
import type client from 'prom-client';
import type { Logger } from '../../logger';
import type { ExtraRoutes } from '../../lib';
import type { AnomalyMonitor } from './monitor';
import type { StatisticsOptions } from './options';

// The dashboard (with the outlook and its forecasts) and the detectors are loaded when a
// TransferStatistics is made, that is when the probe serves HTTP: `poll --once` and a probe
// without the HTTP server only record (StatisticsRecorder) and do not pay for loading them.

export { StatisticsRecorder } from './recorder';

export class TransferStatistics {
  readonly routes: ExtraRoutes;
  monitor: AnomalyMonitor | null = null;

  constructor(
    private readonly pool: pg.Pool,
    private readonly log: Logger,
    /** The configuration's statistics section (config.statistics). */
    readonly options: StatisticsOptions,
  ) {
    const { dashboardRoutes } = require('../dashboard/routes') as typeof import('../dashboard/routes');
    this.routes = dashboardRoutes(pool, this.options);
  }

  /** `personalLabels`: metric labels may carry DNs, user names and client networks (metrics.personalLabels). */
  start(registry?: client.Registry, personalLabels = false): void {
    const { AnomalyMonitor } = require('./monitor') as typeof import('./monitor');
    this.monitor = new AnomalyMonitor(this.pool, this.log, this.options, registry, personalLabels);
    this.monitor.start();
  }

  async stop(): Promise<void> {
    await this.monitor?.stop();
  }
}
