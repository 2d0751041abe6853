/**
 * `dcache-probe stats-history`: counts the billing history from before the capture's
 * installation into the statistics (per hour and per day; src/features/statistics/history.ts),
 * by hand: further back than statistics.historyDays, or again after an interruption; then the
 * removals of every complete UTC day from the same start up to yesterday (for the outlook's
 * growth; src/features/statistics/removals.ts). Safe to rerun: hours and days already counted
 * are skipped.
 */
import type { Command } from 'commander';
import { ConfigError } from '../config/schema';
import { DAY_MS } from '../lib';
import { configFrom, guarded, parseTime, withConfigOptions } from './options';

/** "90d" (days before `nowMs`), or a time. */
export function parseSince(value: string, option: string, nowMs: number): number {
  const days = /^(\d+(?:\.\d+)?)d$/.exec(value.trim());
  if (days) return nowMs - Number(days[1]) * DAY_MS;
  return parseTime(value, option).getTime();
}

export function registerStatsHistory(program: Command): void {
  withConfigOptions(
    program.command('stats-history').description('count the billing history from before the installation into the transfer statistics (per hour and per day)'),
    ['database', 'log', 'statistics', 'pipeline'],
  )
    .option('--since <time|days>', 'first datestamp counted: a time (ISO 8601) or a number of days before the installation ("90d")', '90d')
    .option('--until <time>', "end of the range (default, and at the latest: the capture's installation)")
    .option('--pause-ms <ms>', 'pause between hours (default: statistics.historyPauseMs)')
    .action((options) =>
      guarded(async () => {
        const config = configFrom(options, ['database', 'log', 'statistics', 'pipeline']);
        const [{ installationTimeMs }, { createPool, withClient }, { buildHistory }, { countRemovals }, { createLogger }] = await Promise.all([
          import('../db/backfill.js'),
          import('../db/pool.js'),
          import('../features/statistics/history.js'),
          import('../features/statistics/removals.js'),
          import('../logger.js'),
        ]);
        const log = createLogger(config.log);
        const pauseMs = options.pauseMs === undefined ? config.statistics.historyPauseMs : Number(options.pauseMs);
        if (!Number.isFinite(pauseMs) || pauseMs < 0) throw new ConfigError(`--pause-ms: "${options.pauseMs}" is not a number of milliseconds`);
        const pool = createPool({ url: config.database.url, timeZone: config.database.timeZone, max: 1 });
        const stop = new AbortController();
        const onSignal = () => stop.abort();
        process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
        try {
          // (Not installed: buildHistory says so.)
          const installedMs = await withClient(pool, installationTimeMs).catch(() => Date.now());
          const sinceMs = parseSince(String(options.since), '--since', installedMs);
          const result = await buildHistory(pool, {
            sinceMs,
            untilMs: options.until ? parseTime(String(options.until), '--until').getTime() : undefined,
            pauseMs,
            hourRetentionDays: config.statistics.hourRetentionDays,
            reportTape: config.pipeline.reportTape,
            onlyInterSiteTransfers: config.pipeline.onlyInterSiteTransfers,
            statementTimeoutMs: config.database.queryTimeoutSeconds * 1000 || undefined,
            signal: stop.signal,
            log,
          });
          process.stdout.write(
            `${new Date(result.sinceMs).toISOString()} .. ${new Date(result.untilMs).toISOString()} (installation ${new Date(result.installedAtMs).toISOString()}): ` +
              `counted ${result.hoursCounted} hours (${result.rowsCounted} billing rows), ${result.hoursSkipped} counted before` +
              `${result.complete ? '' : '; interrupted, run it again to continue'}\n`,
          );
          if (result.complete) {
            const removals = await countRemovals(pool, { sinceMs, pauseMs, statementTimeoutMs: config.database.queryTimeoutSeconds * 1000 || undefined, signal: stop.signal, log });
            process.stdout.write(
              `removals ${removals.sinceDay} .. ${removals.untilDay} (UTC days, up to yesterday): counted ${removals.daysCounted} days (${removals.removalsCounted} removals), ${removals.daysSkipped} counted before` +
                `${removals.complete ? '' : '; interrupted, run it again to continue'}\n`,
            );
          }
        } finally {
          process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
          await pool.end();
        }
      }),
    );
}
