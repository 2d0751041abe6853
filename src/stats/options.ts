/**
 * Settings of the statistics and the detectors. They are read from DCACHE_PROBE_STATS_* and
 * DCACHE_PROBE_ANOMALY_* environment variables (the table below is the single list, and
 * docs/DASHBOARD.md follows it), and the demo and tests pass overrides in code.
 */
import { DEFAULT_DETECTOR_OPTIONS, type DetectorOptions } from './detectors';

export interface StatisticsOptions {
  /** Minute rows are kept this long (hours). */
  minuteRetentionHours: number;
  /** Hour rows are kept this long (days). */
  hourRetentionDays: number;
  /** Closed alerts are kept this long (days). */
  alertRetentionDays: number;
  /** The detectors run this often (seconds); 0 turns them off. */
  detectIntervalSeconds: number;
  /** An alert no longer found for this long is closed (seconds). */
  clearAfterSeconds: number;
  detectors: DetectorOptions;
}

export const DEFAULT_STATISTICS_OPTIONS: StatisticsOptions = {
  minuteRetentionHours: 48,
  hourRetentionDays: 60,
  alertRetentionDays: 30,
  detectIntervalSeconds: 15,
  clearAfterSeconds: 120,
  detectors: DEFAULT_DETECTOR_OPTIONS,
};

/** Every setting: its path in StatisticsOptions, its environment variable, what it means. */
export const STATISTICS_SETTINGS: { path: string; env: string; description: string }[] = [
  ['minuteRetentionHours', 'DCACHE_PROBE_STATS_MINUTE_RETENTION_HOURS', 'hours per-minute statistics are kept'],
  ['hourRetentionDays', 'DCACHE_PROBE_STATS_HOUR_RETENTION_DAYS', 'days per-hour statistics are kept'],
  ['alertRetentionDays', 'DCACHE_PROBE_STATS_ALERT_RETENTION_DAYS', 'days closed alerts are kept'],
  ['detectIntervalSeconds', 'DCACHE_PROBE_ANOMALY_INTERVAL_SECONDS', 'seconds between detector runs (0: off)'],
  ['clearAfterSeconds', 'DCACHE_PROBE_ANOMALY_CLEAR_AFTER_SECONDS', 'an alert not found again for this long is closed'],
  ['detectors.windowMinutes', 'DCACHE_PROBE_ANOMALY_WINDOW_MINUTES', 'recent window judged (minutes)'],
  ['detectors.baselineMinutes', 'DCACHE_PROBE_ANOMALY_BASELINE_MINUTES', 'baseline window before it (minutes)'],
  ...(['fault', 'misuse'] as const).flatMap((kind) => {
    const K = kind.toUpperCase();
    const what = kind === 'fault' ? 'failures (errors other than permission denied) on a pool or door' : 'permission-denied errors from a client network or user';
    return [
      [`detectors.${kind}.minCount`, `DCACHE_PROBE_ANOMALY_${K}_MIN_COUNT`, `fewest ${what} that can raise an alert`],
      [`detectors.${kind}.ratio`, `DCACHE_PROBE_ANOMALY_${K}_RATIO`, 'rate must be this many times the expected rate'],
      [`detectors.${kind}.z`, `DCACHE_PROBE_ANOMALY_${K}_Z`, '... and this many standard deviations above it (binomial)'],
      [`detectors.${kind}.floorRate`, `DCACHE_PROBE_ANOMALY_${K}_FLOOR_RATE`, 'expected rate is never taken below this'],
      [`detectors.${kind}.minBaselineTransfers`, `DCACHE_PROBE_ANOMALY_${K}_MIN_BASELINE_TRANSFERS`, "transfers a key needs in the baseline window for its own rate to be used (else its peers')"],
    ] as [string, string, string][];
  }),
  ['detectors.surge.ratio', 'DCACHE_PROBE_ANOMALY_SURGE_RATIO', "a user's bytes/min must be this many times their norm"],
  ['detectors.surge.k', 'DCACHE_PROBE_ANOMALY_SURGE_K', '... and this many deviations above it'],
  ['detectors.surge.minBytes', 'DCACHE_PROBE_ANOMALY_SURGE_MIN_BYTES', 'bytes in the recent window below which no surge is raised'],
  ['detectors.surge.minHistoryMinutes', 'DCACHE_PROBE_ANOMALY_SURGE_MIN_HISTORY_MINUTES', 'minutes of history needed before surges are judged'],
  ['detectors.surge.seasonalMinDays', 'DCACHE_PROBE_ANOMALY_SURGE_SEASONAL_MIN_DAYS', 'days of the same hour of day needed for the seasonal baseline'],
  ['detectors.surge.alpha', 'DCACHE_PROBE_ANOMALY_SURGE_ALPHA', 'EWMA smoothing factor per minute (without a seasonal baseline)'],
  ['detectors.newNetwork.learnMinutes', 'DCACHE_PROBE_ANOMALY_NEW_NETWORK_LEARN_MINUTES', 'a network is new only if the user was known this long before it'],
  ['detectors.newNetwork.minTransfers', 'DCACHE_PROBE_ANOMALY_NEW_NETWORK_MIN_TRANSFERS', 'transfers from the new network in the window needed'],
  ['detectors.newNetwork.minBaselineTransfers', 'DCACHE_PROBE_ANOMALY_NEW_NETWORK_MIN_BASELINE_TRANSFERS', "the user's transfers in the baseline window before the network appeared needed"],
  ['detectors.newNetwork.maxChance', 'DCACHE_PROBE_ANOMALY_NEW_NETWORK_MAX_CHANCE', 'flag only if the chance that a network in use all along was missing from that history is at most this'],
  ['detectors.stopped.minSilenceSeconds', 'DCACHE_PROBE_ANOMALY_STOPPED_MIN_SILENCE_SECONDS', 'silence of a pool while the site delivered'],
  ['detectors.stopped.minExpected', 'DCACHE_PROBE_ANOMALY_STOPPED_MIN_EXPECTED', 'transfers it would have served in that silence'],
  ['detectors.stopped.minActiveMinutes', 'DCACHE_PROBE_ANOMALY_STOPPED_MIN_ACTIVE_MINUTES', 'minutes with traffic it needs in the baseline'],
].map(([path, env, description]) => ({ path: path!, env: env!, description: description! }));

export type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

function merge<T>(base: T, over: DeepPartial<T> | undefined): T {
  if (!over) return base;
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    const b = out[k];
    out[k] = b !== null && typeof b === 'object' && typeof v === 'object' ? merge(b, v as DeepPartial<typeof b>) : v;
  }
  return out as T;
}

/**
 * The options: defaults, then the environment, then `overrides`. A variable that is not a
 * non-negative number is an error naming it.
 */
export function statisticsOptions(env: NodeJS.ProcessEnv = process.env, overrides?: DeepPartial<StatisticsOptions>): StatisticsOptions {
  const fromEnv: Record<string, unknown> = {};
  for (const s of STATISTICS_SETTINGS) {
    const raw = env[s.env];
    if (raw === undefined || raw.trim() === '') continue;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < 0) throw new Error(`${s.env}: "${raw}" is not a non-negative number`);
    const parts = s.path.split('.');
    let node = fromEnv;
    for (const p of parts.slice(0, -1)) node = (node[p] ??= {}) as Record<string, unknown>;
    node[parts[parts.length - 1]!] = value;
  }
  return merge(merge(DEFAULT_STATISTICS_OPTIONS, fromEnv as DeepPartial<StatisticsOptions>), overrides);
}
