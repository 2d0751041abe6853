/**
 * The settings of the statistics and the detectors, as the statistics code sees them. They are
 * part of the one configuration (section "statistics" of src/config/schema.ts: defaults, validation,
 * file keys, DCACHE_PROBE_STATS_* / DCACHE_PROBE_ANOMALY_* variables and flags); this module
 * only names their type and their defaults for the code and tests that need no Config.
 */
import { configSchema, type Config } from '../../config/schema';

export type StatisticsOptions = Config['statistics'];

/** The defaults, as the schema gives them. */
export const DEFAULT_STATISTICS_OPTIONS: StatisticsOptions = configSchema.shape.statistics.parse({});
