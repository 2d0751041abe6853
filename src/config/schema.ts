/**
 * Configuration: one typed object, validated once at start-up.
 *
 * Sources, later ones winning: built-in defaults < config file (YAML or JSON) < environment
 * variables (DCACHE_PROBE_*) < command-line flags. Every setting has one dotted key
 * ("collector.url") used in the file, and one environment variable; an error always names the
 * key, the value as written and where it came from (the file's path, the variable or the flag),
 * and every mistake is reported at once (an unknown key with the closest known one). The
 * transfer statistics and the anomaly detectors' thresholds are settings like every other
 * (section "statistics"; their environment variables keep their DCACHE_PROBE_STATS_* and
 * DCACHE_PROBE_ANOMALY_* names).
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { z } from 'zod';
import { errorMessage } from '../lib';

/** The measured best bundle size (see docs/PERFORMANCE.md); always kept under maxBundleBytes. */
export const DEFAULT_BUNDLE_SIZE = 500;
/** The old Gratia library kept bundles under ~1.8 MB; the old Java collector refused ~2 MB. */
export const MAX_BUNDLE_BYTES_LIMIT = 1_800_000;

const positiveInt = z.coerce.number().int().positive();
/** A string that must be given: absent and empty both say "is required (<what it is>)". */
const required = (what: string) => {
  const message = `is required (${what})`;
  return z.string({ error: (issue) => (issue.input === undefined ? message : undefined) }).min(1, message);
};
const nonNegativeNumber = z.coerce.number().nonnegative();
/** true/false as written anywhere (1/0, yes/no, on/off too); anything else is a mistake to report, never "false". */
const flag = z.preprocess((v) => {
  if (typeof v !== 'string') return v;
  if (/^(1|true|yes|on)$/i.test(v.trim())) return true;
  if (/^(0|false|no|off)$/i.test(v.trim())) return false;
  return v;
}, z.boolean());

/** The HTTP server's operational routes: open without credentials unless metrics.openPaths says otherwise. */
export const OPERATIONAL_PATHS = ['/metrics', '/healthz', '/readyz'] as const;

/** An address or a network ("192.0.2.7", "10.0.0.0/8", "2001:db8::/32"), or null if it is neither. */
export function networkOf(text: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | null {
  const [address = '', prefixText, ...rest] = text.trim().split('/');
  const version = isIP(address);
  if (!version || rest.length) return null;
  const max = version === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (!(prefix >= 0 && prefix <= max)) return null;
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** A comma-separated list (or a YAML/JSON list) whose entries all pass `valid`; one message names the first bad entry. */
const listOf = (valid: (entry: string) => boolean, what: string) =>
  z.preprocess(
    (v) => (typeof v === 'string' ? v.split(',').map((e) => e.trim()).filter(Boolean) : v),
    z.array(z.string()).superRefine((list, ctx) => {
      const bad = list.find((e) => !valid(e));
      if (bad !== undefined) ctx.addIssue({ code: 'custom', message: `"${bad}" is not ${what}` });
    }),
  );

/** The form a database URL must have, shown with every database URL problem. */
export const DATABASE_URL_FORM =
  'postgres://user@host:port/database (postgresql:// too; a Unix socket as postgres://user@%2Fvar%2Frun%2Fpostgresql/database or postgres:///database?host=/var/run/postgresql)';

/**
 * What is wrong with a database URL ("this one …"), or undefined when pg can connect with it:
 * the postgres:// or postgresql:// scheme, a host (or a socket directory) and a database.
 */
export function databaseUrlProblem(url: string): string | undefined {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined || !url.slice(scheme.length + 1).startsWith('//')) return 'has no scheme';
  if (scheme !== 'postgres' && scheme !== 'postgresql') return `is ${scheme}://`;
  let u: URL;
  try {
    // As pg does: "user@/database?host=/socket/dir" has an empty host.
    u = new URL(url.replace('@/', '@dcache-probe-no-host/'));
  } catch {
    return 'cannot be parsed';
  }
  const host = u.hostname === 'dcache-probe-no-host' ? '' : u.hostname;
  if (!host && !u.searchParams.get('host')) return 'names no host (nor a socket directory in ?host=)';
  if (u.pathname.length <= 1 && !u.searchParams.get('dbname')) return 'names no database';
  return undefined;
}

/** The message of a bad database URL (database.url, and the --db-url of demo and simulate). */
export function databaseUrlMessage(problem: string): string {
  return `must be a PostgreSQL URL, ${DATABASE_URL_FORM}; this one ${problem}`;
}

/** The schema's check of database.url (a refinement, so "is required" stays the message of an empty value). */
const databaseUrl = (what: string) =>
  required(what).superRefine((url, ctx) => {
    const problem = url === '' ? undefined : databaseUrlProblem(url);
    if (problem) ctx.addIssue({ code: 'custom', message: databaseUrlMessage(problem) });
  });

/** The default Gratia ProbeName, the old probe's form: "dCache-transfer:" and the host's fully qualified name. */
export function defaultProbeName(host: string): string {
  return `dCache-transfer:${host}`;
}

/** A threshold or period of the statistics and detectors: a non-negative number (0 is allowed). */
const threshold = (n: number) => nonNegativeNumber.default(n);

/** The binomial rate test of the fault and misuse detectors (src/features/statistics/detectors.ts, RateTestOptions). */
const rateTest = (d: { minCount: number; ratio: number; z: number; floorRate: number; minBaselineTransfers: number }) =>
  z
    .object({ minCount: threshold(d.minCount), ratio: threshold(d.ratio), z: threshold(d.z), floorRate: threshold(d.floorRate), minBaselineTransfers: threshold(d.minBaselineTransfers) })
    .prefault({});

/** Units of a byte count: SI (k, M, G, T, P, E: powers of 1000) and binary (Ki … Ei: powers of 1024), "B" optional. */
const BYTE_UNITS: Record<string, number> = { '': 1, k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };

/** A byte count as written in a setting ("5e14", "500T", "1.5 PiB", "2000000"), or undefined if it is none. */
export function parseBytes(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\s*([kKMGTPE]i?)?B?\s*$/.exec(text);
  const unit = m ? BYTE_UNITS[m[2] ?? ''] : undefined;
  if (!m || unit === undefined) return undefined;
  const bytes = Number(m[1]) * unit;
  return Number.isFinite(bytes) ? Math.round(bytes) : undefined;
}

/** A number of bytes (see parseBytes); a number is taken as it is. */
const bytesSetting = (fallback: number) =>
  z
    .union([z.number(), z.string()])
    .default(fallback)
    .transform((v, ctx) => {
      const bytes = typeof v === 'number' ? v : parseBytes(v);
      if (bytes === undefined || !Number.isFinite(bytes) || bytes < 0) {
        ctx.addIssue({ code: 'custom', message: `must be a number of bytes (2000000000000, 2e12, 2T, 1.5PiB), got "${v}"`, input: v });
        return z.NEVER;
      }
      return bytes;
    });

/**
 * "class=bytes,class=bytes" as a map from storage class to bytes (the YAML file may give the
 * map itself). Every bad entry is named, with what is wrong with it.
 */
export function parseCapacities(value: string | Record<string, unknown>): { capacities: Record<string, number>; problems: string[] } {
  const entries: [string, unknown][] =
    typeof value === 'string'
      ? value
          .split(',')
          .map((e) => e.trim())
          .filter(Boolean)
          .map((e) => {
            const at = e.lastIndexOf('=');
            return at < 0 ? [e, undefined] : [e.slice(0, at).trim(), e.slice(at + 1).trim()];
          })
      : Object.entries(value);
  const capacities: Record<string, number> = {};
  const problems: string[] = [];
  for (const [name, raw] of entries) {
    const entry = typeof value === 'string' ? `"${name}${raw === undefined ? '' : `=${String(raw)}`}"` : `"${name}"`;
    const bytes = typeof raw === 'number' ? raw : typeof raw === 'string' ? parseBytes(raw) : undefined;
    if (name === '') problems.push(`entry ${entry} names no storage class (class=bytes)`);
    else if (raw === undefined) problems.push(`entry ${entry} has no "=bytes" (class=bytes, e.g. atlas:default@osm=500T)`);
    else if (bytes === undefined || !Number.isFinite(bytes) || bytes < 0) problems.push(`entry ${entry}: "${String(raw)}" is not a number of bytes (2e12, 2T, 1.5PiB)`);
    else if (name in capacities) problems.push(`entry ${entry}: storage class "${name}" is given twice`);
    else capacities[name] = bytes;
  }
  return { capacities, problems };
}

const capacitiesSetting = z
  .union([z.string(), z.record(z.string(), z.union([z.number(), z.string()]))])
  .default('')
  .transform((v, ctx) => {
    const { capacities, problems } = parseCapacities(v);
    for (const message of problems) ctx.addIssue({ code: 'custom', message, input: v });
    return problems.length ? z.NEVER : capacities;
  });

/**
 * Transfer statistics, the dashboard and the abnormal-traffic detectors (docs/DASHBOARD.md;
 * the meaning of each detector's threshold is in src/features/statistics/detectors.ts). The defaults here
 * are the only ones (DEFAULT_STATISTICS_OPTIONS and DEFAULT_DETECTOR_OPTIONS are read from them).
 */
const statisticsSchema = z.object({
  /** False: no statistics, no dashboard, no detectors. */
  enabled: flag.default(true),
  minuteRetentionHours: threshold(48),
  hourRetentionDays: threshold(60),
  /** Per-day totals (stats_day) are kept this long: years, they are small. */
  dayRetentionDays: threshold(3650),
  alertRetentionDays: threshold(30),
  /** At `run`'s start, count this many days of billing history before the installation (0: never). */
  historyDays: threshold(90),
  /** The history builder pauses this long between hours (ms), so that dCache's writers keep their pace. */
  historyPauseMs: threshold(200),
  /** The detectors run this often (seconds); 0 turns them off. */
  detectIntervalSeconds: threshold(15),
  /** An alert no longer found for this long is closed (seconds). */
  clearAfterSeconds: threshold(120),
  /**
   * The capacity outlook (docs/OUTLOOK.md): the free space left now, in bytes, at the site and
   * per storage class; the outlook says on which day the forecast fills it. 0 / empty: none.
   */
  capacity: z.object({ siteBytes: bytesSetting(0), storageClasses: capacitiesSetting }).prefault({}),
  detectors: z
    .object({
      windowMinutes: threshold(5),
      baselineMinutes: threshold(120),
      fault: rateTest({ minCount: 10, ratio: 3, z: 5, floorRate: 0.01, minBaselineTransfers: 200 }),
      misuse: rateTest({ minCount: 20, ratio: 5, z: 5, floorRate: 0.005, minBaselineTransfers: 200 }),
      surge: z
        .object({ ratio: threshold(5), k: threshold(4), minBytes: threshold(10e9), minHistoryMinutes: threshold(60), seasonalMinDays: threshold(3), alpha: threshold(0.05) })
        .prefault({}),
      newNetwork: z.object({ learnMinutes: threshold(1440), minTransfers: threshold(10), minBaselineTransfers: threshold(50), maxChance: threshold(0.001) }).prefault({}),
      stopped: z.object({ minSilenceSeconds: threshold(300), minExpected: threshold(30), minActiveMinutes: threshold(10) }).prefault({}),
      /** The same hour of the week on previous weeks (surge, fault, misuse, level-change). */
      hourOfWeek: z.object({ weeks: threshold(8), minWeeks: threshold(3) }).prefault({}),
      poolOutlier: z
        .object({
          windowMinutes: threshold(30),
          stepMinutes: z.coerce.number().positive().default(5),
          /** The augurs MAD detector's sensitivity, in (0, 1). */
          sensitivity: z.coerce.number().gt(0).lt(1).default(0.7),
          minOutlyingSteps: threshold(5),
          minStepTransfers: threshold(20),
          minPools: threshold(4),
          errorMinCount: threshold(20),
          errorRatio: threshold(3),
          errorZ: threshold(5),
          slowRatio: threshold(4),
        })
        .prefault({}),
      levelChange: z.object({ lookbackHours: threshold(168), minHours: threshold(4), maxAgeHours: threshold(24), ratio: threshold(1.6), hazardHours: z.coerce.number().gt(1).default(250) }).prefault({}),
    })
    .prefault({}),
});

export const configSchema = z.object({
  database: z.object({
    url: databaseUrl('a postgres:// URL of the dCache billing database'),
    billingSchema: z.string().min(1).default('public'),
    /** Zone of legacy `timestamp without time zone` columns; default: the database's TimeZone. */
    timeZone: z.string().min(1).optional(),
    /** A query that has not answered by then is abandoned and its connection replaced. */
    queryTimeoutSeconds: z.coerce.number().positive().default(60),
    /** The listener's heartbeat period; a heartbeat unanswered for as long means a dead connection. */
    heartbeatSeconds: z.coerce.number().positive().default(10),
  }),
  collector: z.object({
    url: z.url({ protocol: /^https?$/, error: (issue) => (issue.input === undefined ? 'is required (the Gratia collector, http(s)://host:port)' : 'must be an http:// or https:// URL') }),
    timeoutSeconds: z.coerce.number().positive().default(30),
    caFile: z.string().min(1).optional(),
    certFile: z.string().min(1).optional(),
    keyFile: z.string().min(1).optional(),
    retryBaseMs: positiveInt.default(500),
    retryMaxMs: positiveInt.default(60_000),
    /** How long one bundle is retried before its claim is released and the queue backs off. */
    retryBudgetSeconds: z.coerce.number().positive().default(60),
  }),
  probe: z.object({
    /** The CLI gives the fully qualified host name (src/config/fqdn.ts); this short-name default is the fallback. */
    name: z.string().min(1).default(defaultProbeName(hostname())),
    siteName: required('the Gratia SiteName'),
    grid: z.string().min(1).default('OSG'),
    dcacheServerHost: z.string().min(1).default(hostname()),
    /** Gratia's EnableProbe: false makes `run` and `poll` exit without delivering. */
    enabled: flag.default(true),
    /** Gratia's StopFileName: while this file exists, nothing is delivered (rows stay queued). */
    stopFile: z.string().min(1).optional(),
  }),
  identity: z.object({
    /** uid -> LocalUserId (as the old probe looked users up on its host). */
    passwdFile: z.string().min(1).default('/etc/passwd'),
    /** gid -> LocalUserId where the uid is unknown (Gratia's UnixGidListFileName). */
    groupFile: z.string().min(1).optional(),
    /** LocalUserId -> VOName / ReportableVOName (Gratia's UserVOMapFile). */
    userVoMapFile: z.string().min(1).optional(),
    suppressUnknownVo: flag.default(false),
    suppressNoDn: flag.default(false),
    suppressGridLocal: flag.default(false),
    quarantineUnknownVo: flag.default(false),
  }),
  pipeline: z.object({
    bundleSize: positiveInt.max(5000).default(DEFAULT_BUNDLE_SIZE),
    maxBundleBytes: positiveInt.max(MAX_BUNDLE_BYTES_LIMIT).default(MAX_BUNDLE_BYTES_LIMIT),
    doorGraceSeconds: nonNegativeNumber.default(120),
    pollIntervalSeconds: z.coerce.number().positive().default(30),
    /**
     * How long a claimed batch stays the probe's without a renewal (renewed every third of it
     * while the collector is asked): a killed or stopped probe's rows are claimable again after
     * at most this long.
     */
    leaseSeconds: z.coerce.number().min(3).max(3600).default(30),
    workers: positiveInt.max(16).default(2),
    /**
     * The good citizen (src/pipeline/pacing.ts): while catching up, yield when our work slows
     * dCache's billing inserts; full speed while dCache is idle.
     */
    goodCitizen: flag.default(true),
    /** At most this many rows claimed per second (0: no limit), for sites that want one. */
    maxRowsPerSecond: nonNegativeNumber.default(0),
    dedupWindowHours: z.coerce.number().positive().default(48),
    reportTape: flag.default(true),
    /** Gratia's OnlySendInterSiteTransfers: leave out DCap (site-local) transfers. */
    onlyInterSiteTransfers: flag.default(false),
    /**
     * capture: the triggers capture every row (the default). poll: for databases without our
     * triggers, read billinginfo/storageinfo by datestamp windows (see docs: it can miss rows
     * inserted later than pollOverlapSeconds + pollSettleSeconds after their datestamp).
     */
    mode: z.enum(['capture', 'poll']).default('capture'),
    /** Poll mode: each window starts this far before the previous window's end. */
    pollOverlapSeconds: z.coerce.number().nonnegative().default(3600),
    /** Poll mode: a window ends this far before now, so rows being inserted have committed. */
    pollSettleSeconds: z.coerce.number().nonnegative().default(60),
    /** Gratia's Summarize: one record per hour and group instead of one per transfer. */
    summarize: flag.default(false),
    /** Summarize mode: an hour is sent this long after it ended (late rows have arrived). */
    summarySettleMinutes: z.coerce.number().nonnegative().default(15),
  }),
  log: z.object({
    level: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
    format: z.enum(['text', 'json']).default('text'),
  }),
  metrics: z.object({
    /** Port of the HTTP server with /metrics, /healthz and /readyz; 0 turns it off. */
    port: z.coerce.number().int().min(0).max(65535).default(9464),
    /** Address it listens on (0.0.0.0 in a container; then the dashboard needs credentials). */
    host: z.string().min(1).default('127.0.0.1'),
    /** Credentials of the dashboard and /api/ (src/service/http-auth.ts): a file holding one token. */
    tokenFile: z.string().min(1).optional(),
    /** ... and/or a file of `user:$scrypt$…` lines (made by `dcache-probe hash-password`). */
    usersFile: z.string().min(1).optional(),
    /** Behind an authenticating reverse proxy: the request header naming the user it let in. */
    proxyUserHeader: z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be an HTTP header name, e.g. X-Remote-User').optional(),
    /** The proxies whose proxyUserHeader is believed (addresses or networks); no one else's is. */
    trustedProxies: listOf((e) => networkOf(e) !== null, 'an IP address or network (192.0.2.7, 10.0.0.0/8, 2001:db8::/32)').default([]),
    /** Which operational routes answer without credentials ("none": all need them). */
    openPaths: z
      .preprocess((v) => (typeof v === 'string' && v.trim() === 'none' ? [] : v), listOf((e) => (OPERATIONAL_PATHS as readonly string[]).includes(e), `one of ${OPERATIONAL_PATHS.join(', ')} (or "none")`))
      .default([...OPERATIONAL_PATHS]),
    /** Allow personal data (DNs, user names, client networks) as metric label values. */
    personalLabels: flag.default(false),
  }),
  statistics: statisticsSchema,
});

export type Config = z.infer<typeof configSchema>;

/** Every section of the configuration, in the schema's order. */
export const CONFIG_SECTIONS = Object.keys(configSchema.shape) as (keyof Config)[];

/** One setting: its dotted key, environment variable and command-line flag. */
export interface Setting {
  key: string;
  env: string;
  flag: string;
  description: string;
}

function setting(key: string, flagName: string, description: string): Setting {
  const env = 'DCACHE_PROBE_' + key.split('.').pop()!.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
  return { key, env, flag: flagName, description };
}

/**
 * A setting of the statistics (section "statistics"): its environment variable is the one it
 * has had since issue 7 (DCACHE_PROBE_STATS_* and DCACHE_PROBE_ANOMALY_*), and its flag is that
 * variable's name in lower case with dashes ("--anomaly-fault-min-count").
 */
function statisticsSetting(path: string, env: string, description: string): Setting {
  return { key: `statistics.${path}`, env, flag: env.replace(/^DCACHE_PROBE_/, '').toLowerCase().replace(/_/g, '-'), description };
}

const STATISTICS_SETTINGS: readonly Setting[] = [
  statisticsSetting('enabled', 'DCACHE_PROBE_STATS', 'off: no transfer statistics, dashboard or detectors (true/false)'),
  statisticsSetting('minuteRetentionHours', 'DCACHE_PROBE_STATS_MINUTE_RETENTION_HOURS', 'hours per-minute statistics are kept'),
  statisticsSetting('hourRetentionDays', 'DCACHE_PROBE_STATS_HOUR_RETENTION_DAYS', 'days per-hour statistics are kept'),
  statisticsSetting('dayRetentionDays', 'DCACHE_PROBE_STATS_DAY_RETENTION_DAYS', 'days per-day statistics are kept'),
  statisticsSetting('alertRetentionDays', 'DCACHE_PROBE_STATS_ALERT_RETENTION_DAYS', 'days closed alerts are kept'),
  statisticsSetting('historyDays', 'DCACHE_PROBE_STATS_HISTORY_DAYS', 'days of billing history before the installation counted at start (0: none)'),
  statisticsSetting('historyPauseMs', 'DCACHE_PROBE_STATS_HISTORY_PAUSE_MS', 'pause of the history builder between hours, and of the removal count between days (ms)'),
  statisticsSetting('detectIntervalSeconds', 'DCACHE_PROBE_ANOMALY_INTERVAL_SECONDS', 'seconds between detector runs (0: off)'),
  statisticsSetting('clearAfterSeconds', 'DCACHE_PROBE_ANOMALY_CLEAR_AFTER_SECONDS', 'an alert not found again for this long is closed'),
  statisticsSetting('capacity.siteBytes', 'DCACHE_PROBE_STATS_CAPACITY_SITE_BYTES', 'free space left at the site now (bytes; 2e15, 2P, 1.5PiB); the outlook dates when the forecast fills it (0: none)'),
  statisticsSetting('capacity.storageClasses', 'DCACHE_PROBE_STATS_CAPACITY_STORAGE_CLASSES', 'free space left per storage class now: class=bytes,class=bytes (e.g. atlas:default@osm=500T)'),
  statisticsSetting('detectors.windowMinutes', 'DCACHE_PROBE_ANOMALY_WINDOW_MINUTES', 'recent window judged (minutes)'),
  statisticsSetting('detectors.baselineMinutes', 'DCACHE_PROBE_ANOMALY_BASELINE_MINUTES', 'baseline window before it (minutes)'),
  ...(['fault', 'misuse'] as const).flatMap((kind) => {
    const K = kind.toUpperCase();
    const what = kind === 'fault' ? 'failures (errors other than permission denied) on a pool or door' : 'permission-denied errors from a client network or user';
    return [
      statisticsSetting(`detectors.${kind}.minCount`, `DCACHE_PROBE_ANOMALY_${K}_MIN_COUNT`, `fewest ${what} that can raise an alert`),
      statisticsSetting(`detectors.${kind}.ratio`, `DCACHE_PROBE_ANOMALY_${K}_RATIO`, 'rate must be this many times the expected rate'),
      statisticsSetting(`detectors.${kind}.z`, `DCACHE_PROBE_ANOMALY_${K}_Z`, '... and this many standard deviations above it (binomial)'),
      statisticsSetting(`detectors.${kind}.floorRate`, `DCACHE_PROBE_ANOMALY_${K}_FLOOR_RATE`, 'expected rate is never taken below this'),
      statisticsSetting(`detectors.${kind}.minBaselineTransfers`, `DCACHE_PROBE_ANOMALY_${K}_MIN_BASELINE_TRANSFERS`, "transfers a key needs in the baseline window for its own rate to be used (else its peers')"),
    ];
  }),
  statisticsSetting('detectors.surge.ratio', 'DCACHE_PROBE_ANOMALY_SURGE_RATIO', "a user's bytes/min must be this many times their norm"),
  statisticsSetting('detectors.surge.k', 'DCACHE_PROBE_ANOMALY_SURGE_K', '... and this many deviations above it'),
  statisticsSetting('detectors.surge.minBytes', 'DCACHE_PROBE_ANOMALY_SURGE_MIN_BYTES', 'bytes in the recent window below which no surge is raised'),
  statisticsSetting('detectors.surge.minHistoryMinutes', 'DCACHE_PROBE_ANOMALY_SURGE_MIN_HISTORY_MINUTES', 'minutes of history needed before surges are judged'),
  statisticsSetting('detectors.surge.seasonalMinDays', 'DCACHE_PROBE_ANOMALY_SURGE_SEASONAL_MIN_DAYS', 'days of the same hour of day needed for the seasonal baseline'),
  statisticsSetting('detectors.surge.alpha', 'DCACHE_PROBE_ANOMALY_SURGE_ALPHA', 'EWMA smoothing factor per minute (without a seasonal baseline)'),
  statisticsSetting('detectors.newNetwork.learnMinutes', 'DCACHE_PROBE_ANOMALY_NEW_NETWORK_LEARN_MINUTES', 'a network is new only if the user was known this long before it'),
  statisticsSetting('detectors.newNetwork.minTransfers', 'DCACHE_PROBE_ANOMALY_NEW_NETWORK_MIN_TRANSFERS', 'transfers from the new network in the window needed'),
  statisticsSetting('detectors.newNetwork.minBaselineTransfers', 'DCACHE_PROBE_ANOMALY_NEW_NETWORK_MIN_BASELINE_TRANSFERS', "the user's transfers in the baseline window before the network appeared needed"),
  statisticsSetting('detectors.newNetwork.maxChance', 'DCACHE_PROBE_ANOMALY_NEW_NETWORK_MAX_CHANCE', 'flag only if the chance that a network in use all along was missing from that history is at most this'),
  statisticsSetting('detectors.stopped.minSilenceSeconds', 'DCACHE_PROBE_ANOMALY_STOPPED_MIN_SILENCE_SECONDS', 'silence of a pool while the site delivered'),
  statisticsSetting('detectors.stopped.minExpected', 'DCACHE_PROBE_ANOMALY_STOPPED_MIN_EXPECTED', 'transfers it would have served in that silence'),
  statisticsSetting('detectors.stopped.minActiveMinutes', 'DCACHE_PROBE_ANOMALY_STOPPED_MIN_ACTIVE_MINUTES', 'minutes with traffic it needs in the baseline'),
  statisticsSetting('detectors.hourOfWeek.weeks', 'DCACHE_PROBE_ANOMALY_HOUR_OF_WEEK_WEEKS', 'past weeks read for the same hour of the week'),
  statisticsSetting('detectors.hourOfWeek.minWeeks', 'DCACHE_PROBE_ANOMALY_HOUR_OF_WEEK_MIN_WEEKS', "weeks of the same hour of the week needed to use them instead of today's baselines"),
  statisticsSetting('detectors.poolOutlier.windowMinutes', 'DCACHE_PROBE_ANOMALY_POOL_OUTLIER_WINDOW_MINUTES', 'window in which pools are compared with their peers (minutes)'),
  statisticsSetting('detectors.poolOutlier.stepMinutes', 'DCACHE_PROBE_ANOMALY_POOL_OUTLIER_STEP_MINUTES', 'steps of that window (minutes)'),
  statisticsSetting('detectors.poolOutlier.sensitivity', 'DCACHE_PROBE_ANOMALY_POOL_OUTLIER_SENSITIVITY', 'MAD outlier sensitivity, in (0, 1): higher flags more'),
  statisticsSetting('detectors.poolOutlier.minOutlyingSteps', 'DCACHE_PROBE_ANOMALY_POOL_OUTLIER_MIN_OUTLYING_STEPS', "steps in which a pool must be outside its peers' band"),
  statisticsSetting('detectors.poolOutlier.minStepTransfers', 'DCACHE_PROBE_ANOMALY_POOL_OUTLIER_MIN_STEP_TRANSFERS', 'transfers a pool needs in a step for the step to count'),
  statisticsSetting('detectors.poolOutlier.minPools', 'DCACHE_PROBE_ANOMALY_POOL_OUTLIER_MIN_POOLS', 'pools with traffic needed to compare them'),
  statisticsSetting('detectors.poolOutlier.errorMinCount', 'DCACHE_PROBE_ANOMALY_POOL_OUTLIER_ERROR_MIN_COUNT', 'fewest failures in the window for an error-rate outlier'),
  statisticsSetting('detectors.poolOutlier.errorRatio', 'DCACHE_PROBE_ANOMALY_POOL_OUTLIER_ERROR_RATIO', "its rate must be this many times its peers'"),
  statisticsSetting('detectors.poolOutlier.errorZ', 'DCACHE_PROBE_ANOMALY_POOL_OUTLIER_ERROR_Z', '... and this many standard deviations above it (binomial)'),
  statisticsSetting('detectors.poolOutlier.slowRatio', 'DCACHE_PROBE_ANOMALY_POOL_OUTLIER_SLOW_RATIO', "a pool is slow at its peers' median speed / this"),
  statisticsSetting('detectors.levelChange.lookbackHours', 'DCACHE_PROBE_ANOMALY_LEVEL_CHANGE_LOOKBACK_HOURS', "hours of the site's hourly traffic searched for a change"),
  statisticsSetting('detectors.levelChange.minHours', 'DCACHE_PROBE_ANOMALY_LEVEL_CHANGE_MIN_HOURS', 'hours the new level must have lasted'),
  statisticsSetting('detectors.levelChange.maxAgeHours', 'DCACHE_PROBE_ANOMALY_LEVEL_CHANGE_MAX_AGE_HOURS', 'a change older than this is no longer reported'),
  statisticsSetting('detectors.levelChange.ratio', 'DCACHE_PROBE_ANOMALY_LEVEL_CHANGE_RATIO', 'the new level must be this many times the old (or 1 / this)'),
  statisticsSetting('detectors.levelChange.hazardHours', 'DCACHE_PROBE_ANOMALY_LEVEL_CHANGE_HAZARD_HOURS', "the changepoint detector's prior mean hours between changes"),
];

/** Every setting; the table the CLI, the environment reader and the README are built from. */
export const SETTINGS: readonly Setting[] = [
  { ...setting('database.url', 'db-url', 'postgres:// URL of the dCache billing database'), env: 'DCACHE_PROBE_DB_URL' },
  setting('database.billingSchema', 'billing-schema', 'schema of the billing tables'),
  { ...setting('database.timeZone', 'db-time-zone', 'zone of legacy timestamp-without-time-zone columns'), env: 'DCACHE_PROBE_DB_TIME_ZONE' },
  { ...setting('database.queryTimeoutSeconds', 'query-timeout', 'seconds before an unanswered query is abandoned'), env: 'DCACHE_PROBE_DB_QUERY_TIMEOUT' },
  { ...setting('database.heartbeatSeconds', 'heartbeat', "seconds between the listener's heartbeats"), env: 'DCACHE_PROBE_DB_HEARTBEAT' },
  { ...setting('collector.url', 'collector-url', 'collector URL, e.g. https://gratia.example:443 (path defaults to /gratia-servlets/rmi)'), env: 'DCACHE_PROBE_COLLECTOR_URL' },
  { ...setting('collector.timeoutSeconds', 'collector-timeout', 'seconds before one collector request is abandoned'), env: 'DCACHE_PROBE_COLLECTOR_TIMEOUT' },
  { ...setting('collector.caFile', 'ca-file', 'CA bundle that signs the collector certificate'), env: 'DCACHE_PROBE_CA_FILE' },
  { ...setting('collector.certFile', 'cert-file', 'client certificate (PEM) for HTTPS collectors'), env: 'DCACHE_PROBE_CERT_FILE' },
  { ...setting('collector.keyFile', 'key-file', 'client key (PEM) for HTTPS collectors'), env: 'DCACHE_PROBE_KEY_FILE' },
  setting('collector.retryBaseMs', 'retry-base-ms', 'first retry delay (doubles, with jitter)'),
  setting('collector.retryMaxMs', 'retry-max-ms', 'longest retry delay'),
  setting('collector.retryBudgetSeconds', 'retry-budget', 'seconds one bundle is retried before it is released'),
  setting('probe.name', 'probe-name', "Gratia ProbeName (default dCache-transfer:<this host's fully qualified name>)"),
  setting('probe.siteName', 'site-name', 'Gratia SiteName'),
  setting('probe.grid', 'grid', 'Gratia Grid for non-DCap transfers'),
  setting('probe.dcacheServerHost', 'dcache-server-host', 'host name appended to pool names in Source/Destination'),
  { ...setting('probe.enabled', 'enabled', 'false: deliver nothing and exit (Gratia EnableProbe)'), env: 'DCACHE_PROBE_ENABLED' },
  { ...setting('probe.stopFile', 'stop-file', 'while this file exists, deliver nothing (Gratia StopFileName)'), env: 'DCACHE_PROBE_STOP_FILE' },
  setting('identity.passwdFile', 'passwd-file', 'passwd-format file: uid -> LocalUserId'),
  setting('identity.groupFile', 'group-file', 'group-format file: gid -> LocalUserId when the uid is unknown'),
  setting('identity.userVoMapFile', 'user-vo-map', 'user-vo-map file: LocalUserId -> VOName, ReportableVOName'),
  setting('identity.suppressUnknownVo', 'suppress-unknown-vo', 'leave out records without a VO (true/false)'),
  setting('identity.suppressNoDn', 'suppress-no-dn', 'leave out records without a DN (true/false)'),
  setting('identity.suppressGridLocal', 'suppress-grid-local', 'leave out Local-grid (DCap) records (true/false)'),
  setting('identity.quarantineUnknownVo', 'quarantine-unknown-vo', 'hold records without a VO in the quarantine (true/false)'),
  setting('pipeline.bundleSize', 'bundle-size', 'records per collector request'),
  setting('pipeline.maxBundleBytes', 'max-bundle-bytes', 'upper bound of one request body'),
  setting('pipeline.doorGraceSeconds', 'door-grace', 'seconds a mover waits for its door row'),
  setting('pipeline.pollIntervalSeconds', 'poll-interval', 'seconds between fallback polls'),
  setting('pipeline.leaseSeconds', 'lease', "seconds a claimed batch is held without renewal (a killed probe's rows return after this)"),
  setting('pipeline.workers', 'workers', 'bundles delivered in parallel'),
  setting('pipeline.goodCitizen', 'good-citizen', "while catching up, yield when the probe's work slows dCache's inserts (true/false)"),
  setting('pipeline.maxRowsPerSecond', 'max-rows-per-second', 'at most this many rows delivered per second (0: no limit)'),
  setting('pipeline.dedupWindowHours', 'dedup-window', 'hours a delivered transaction is remembered'),
  setting('pipeline.reportTape', 'report-tape', 'report storageinfo tape store/restore rows (true/false)'),
  setting('pipeline.onlyInterSiteTransfers', 'only-inter-site', 'leave out DCap transfers (true/false)'),
  setting('pipeline.mode', 'mode', 'capture (triggers) or poll (datestamp windows, for databases without our triggers)'),
  setting('pipeline.pollOverlapSeconds', 'poll-overlap', 'poll mode: seconds each window reaches back before the last one ended'),
  setting('pipeline.pollSettleSeconds', 'poll-settle', 'poll mode: seconds a window ends before now'),
  setting('pipeline.summarize', 'summarize', 'send one record per hour and group (true/false; Gratia Summarize)'),
  setting('pipeline.summarySettleMinutes', 'summary-settle', 'summarize mode: minutes after an hour ends before it is sent'),
  { ...setting('log.level', 'log-level', 'error, warn, info or debug'), env: 'DCACHE_PROBE_LOG_LEVEL' },
  { ...setting('log.format', 'log-format', 'text or json'), env: 'DCACHE_PROBE_LOG_FORMAT' },
  { ...setting('metrics.port', 'metrics-port', 'port of /metrics, /healthz, /readyz (0: off)'), env: 'DCACHE_PROBE_METRICS_PORT' },
  { ...setting('metrics.host', 'metrics-host', 'address the metrics server listens on'), env: 'DCACHE_PROBE_METRICS_HOST' },
  { ...setting('metrics.tokenFile', 'http-token-file', 'file with the token that opens the dashboard and /api/'), env: 'DCACHE_PROBE_HTTP_TOKEN_FILE' },
  { ...setting('metrics.usersFile', 'http-users-file', 'file of user:scrypt-hash lines that open the dashboard and /api/ (dcache-probe hash-password)'), env: 'DCACHE_PROBE_HTTP_USERS_FILE' },
  { ...setting('metrics.proxyUserHeader', 'http-proxy-user-header', 'header in which an authenticating reverse proxy names the user'), env: 'DCACHE_PROBE_HTTP_PROXY_USER_HEADER' },
  { ...setting('metrics.trustedProxies', 'http-trusted-proxies', 'addresses or networks of the proxies whose user header is believed (comma-separated)'), env: 'DCACHE_PROBE_HTTP_TRUSTED_PROXIES' },
  { ...setting('metrics.openPaths', 'http-open-paths', 'routes open without credentials: a comma-separated subset of /metrics,/healthz,/readyz, or none'), env: 'DCACHE_PROBE_HTTP_OPEN_PATHS' },
  { ...setting('metrics.personalLabels', 'metrics-personal-labels', 'allow DNs, user names and client networks as metric labels (true/false)'), env: 'DCACHE_PROBE_METRICS_PERSONAL_LABELS' },
  ...STATISTICS_SETTINGS,
];

export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly code = 'EINVALIDCONFIG';
  /** Each mistake found, one line each (the message lists them all). */
  readonly problems: readonly string[];

  constructor(message: string, problems: readonly string[] = [message]) {
    super(message);
    this.problems = problems;
  }

  /** One error for several mistakes, all of them in the message. */
  static of(problems: readonly string[]): ConfigError {
    return new ConfigError(problems.length === 1 ? `invalid configuration: ${problems[0]}` : `invalid configuration, ${problems.length} problems:\n  ${problems.join('\n  ')}`, problems);
  }
}

/** Where each provided value came from, to name it in errors. */
type Origin = string;
interface Provided {
  value: unknown;
  origin: Origin;
}

function setPath(target: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    node = (node[part] ??= {}) as Record<string, unknown>;
  }
  node[parts[parts.length - 1]!] = value;
}

/** Edit distance (insertions, deletions, substitutions, swaps of neighbours) of two strings. */
export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The known key a mistyped one most likely meant, or undefined when none is close: compared
 * without case, "_" and "-", as a whole and by its last part (a key put in the wrong section
 * or at the top level).
 */
export function closestKey(key: string, known: readonly string[]): string | undefined {
  const norm = (k: string) => k.toLowerCase().replace(/[_-]/g, '');
  const last = (k: string) => k.slice(k.lastIndexOf('.') + 1);
  let best: { key: string; distance: number } | undefined;
  for (const k of known) {
    const whole = editDistance(norm(key), norm(k));
    const byName = editDistance(norm(last(key)), norm(last(k))) + 1;
    const distance = Math.min(whole, byName);
    // Close enough: a third of the name's letters (at least two) may differ.
    if (distance <= Math.max(2, Math.floor(last(k).length / 3)) && (!best || distance < best.distance)) best = { key: k, distance };
  }
  return best?.key;
}

/** The settings of a parsed config file by dotted key, and every key it has that we do not know. */
export function flattenFile(content: unknown, file: string): { values: Map<string, Provided>; problems: string[] } {
  const known = SETTINGS.map((s) => s.key);
  const knownSet = new Set(known);
  const sections = new Set(known.map((k) => k.split('.')[0]!));
  const values = new Map<string, Provided>();
  const problems: string[] = [];
  const walk = (node: unknown, prefix: string): void => {
    for (const [name, value] of Object.entries(node as Record<string, unknown>)) {
      const key = prefix ? `${prefix}.${name}` : name;
      if (knownSet.has(key)) values.set(key, { value, origin: file });
      else if (value !== null && typeof value === 'object' && !Array.isArray(value)) walk(value, key);
      else if (!prefix && sections.has(key)) problems.push(`${key}: must be a mapping of its settings (name: value), got ${shownValue(key, value)} [${file}]`);
      else {
        const near = closestKey(key, known);
        problems.push(`${key}: unknown setting${near ? `; did you mean ${near}?` : ' (README.md, "Configuration", lists them)'} [${file}]`);
      }
    }
  };
  if (content === null || typeof content !== 'object' || Array.isArray(content)) problems.push(`${file}: must be a mapping of settings (section: {name: value}), got ${shownValue('', content)}`);
  else walk(content, '');
  return { values, problems };
}

export function readConfigFile(file: string): { values: Map<string, Provided>; problems: string[] } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${file}: cannot read the config file: ${errorMessage(err)}`);
  }
  // The YAML parser is loaded only for a config file (every run of the program would pay for it).
  const { parseDocument } = require('yaml') as typeof import('yaml');
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length) {
    const problems = doc.errors.map((e) => e.message.replace(/\s+/g, ' ').trim());
    throw new ConfigError(`${file}: not valid YAML/JSON:\n  ${problems.join('\n  ')}`, problems.map((p) => `${file}: ${p}`));
  }
  return flattenFile(doc.toJS() ?? {}, file);
}

/** Keys whose values are never shown; a URL's password is replaced by *** instead. */
const SECRET_KEY = /password|secret|token/i;

/** A value as written, for a message: strings quoted, URLs without their password, secrets hidden. */
export function shownValue(key: string, value: unknown): string {
  if (SECRET_KEY.test(key)) return '(hidden)';
  if (typeof value === 'string') return JSON.stringify(key === 'database.url' || /:\/\//.test(value) ? redactUrl(value) : value);
  if (value === undefined) return 'nothing';
  return JSON.stringify(value) ?? String(value);
}

/** A zod issue in words for a person (the schema's own messages, where it has them, come first). */
function describeIssue(issue: z.core.$ZodRawIssue): string | undefined {
  const bound = (inclusive: boolean | undefined, at: string, beyond: string, n: unknown) => `must be ${inclusive === false ? beyond : at} ${String(n)}`;
  switch (issue.code) {
    case 'invalid_type': {
      const expected: Record<string, string> = { number: 'a number', int: 'a whole number', boolean: 'true or false', string: 'text', object: 'a mapping of settings' };
      return `must be ${expected[issue.expected] ?? issue.expected}`;
    }
    case 'invalid_value':
      return `must be one of ${issue.values.map((v) => String(v)).join(', ')}`;
    case 'too_small':
      return issue.origin === 'string' ? 'must not be empty' : bound(issue.inclusive, 'at least', 'greater than', issue.minimum);
    case 'too_big':
      return issue.origin === 'string' ? `must be at most ${String(issue.maximum)} characters` : bound(issue.inclusive, 'at most', 'less than', issue.maximum);
    default:
      return undefined;
  }
}

export interface ConfigSources {
  /** Settings translated from the old probe's ProbeConfig (see probe-config.ts), lowest layer. */
  probeConfig?: { file: string; values: Map<string, { value: unknown; attribute: string }> };
  /** Path of a YAML/JSON config file, if any. */
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** Values from command-line flags, by dotted key. */
  flags?: Record<string, unknown>;
  /** Defaults supplied by the command (e.g. the demo's site name), below every other source. */
  commandDefaults?: Record<string, unknown>;
}

/** Every value given, by dotted key, with where it came from (later sources win), and the file's mistakes. */
export function providedSettings(sources: ConfigSources): { provided: Map<string, Provided>; problems: string[] } {
  const provided = new Map<string, Provided>();
  const problems: string[] = [];
  for (const [key, value] of Object.entries(sources.commandDefaults ?? {})) provided.set(key, { value, origin: 'default' });
  for (const [key, { value, attribute }] of sources.probeConfig?.values ?? []) provided.set(key, { value, origin: `${sources.probeConfig!.file} (attribute ${attribute})` });
  if (sources.file) {
    const file = readConfigFile(sources.file);
    for (const [k, v] of file.values) provided.set(k, v);
    problems.push(...file.problems);
  }
  const env = sources.env ?? {};
  for (const s of SETTINGS) {
    const value = env[s.env];
    if (value !== undefined && value !== '') provided.set(s.key, { value, origin: `environment variable ${s.env}` });
  }
  for (const [key, value] of Object.entries(sources.flags ?? {})) {
    const s = SETTINGS.find((x) => x.key === key);
    if (value !== undefined) provided.set(key, { value, origin: `flag --${s?.flag ?? key}` });
  }
  return { provided, problems };
}

/**
 * Builds and validates the configuration. Throws one ConfigError listing every mistake, each
 * with the key, the value as written and its origin.
 * `sections` limits validation to what a command needs (e.g. `migrate` needs no collector).
 */
export function loadConfig(sources: ConfigSources, sections: readonly (keyof Config)[] = CONFIG_SECTIONS): Config {
  const { provided, problems } = providedSettings(sources);
  const raw: Record<string, unknown> = {};
  for (const section of Object.keys(configSchema.shape)) raw[section] = {};
  for (const [key, { value }] of provided) setPath(raw, key, value);

  const schema = configSchema.pick(Object.fromEntries(sections.map((s) => [s, true])) as { [K in keyof Config]?: true });
  const result = schema.safeParse(raw, { error: describeIssue });
  if (!result.success) {
    for (const issue of result.error.issues) {
      const key = issue.path.join('.');
      const s = SETTINGS.find((x) => x.key === key);
      const given = provided.get(key);
      if (given) problems.push(`${key}: ${issue.message}, got ${shownValue(key, given.value)} [${given.origin}]`);
      else problems.push(`${key}: ${issue.message} [${s ? `not set (config file key ${key}, environment variable ${s.env} or flag --${s.flag})` : 'not set'}]`);
    }
  }
  if (problems.length) throw ConfigError.of(problems);
  // Sections not asked for are filled with their defaults where they have them, so callers
  // get one complete type; they are not used by the command that left them out.
  return { ...(raw as unknown as Config), ...result.data } as Config;
}

/** A database URL with its password replaced, for logs and messages (also one that is not a valid URL). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) {
      u.password = '***';
      return u.toString();
    }
  } catch {
    // not a URL: look for a password below
  }
  // "user:password@host…", with or without a scheme: from the user's ":" to the last "@".
  const [, scheme = '', rest = ''] = /^([a-z][a-z0-9+.-]*:\/\/)?(.*)$/is.exec(url)!;
  const at = rest.lastIndexOf('@');
  const colon = rest.slice(0, Math.max(0, at)).indexOf(':');
  return at < 0 || colon < 0 ? url : `${scheme}${rest.slice(0, colon)}:***${rest.slice(at)}`;
}

/** The collector endpoint: the path defaults to Gratia's servlet. */
export function collectorEndpoint(url: string): URL {
  const u = new URL(url);
  if (u.pathname === '/' || u.pathname === '') u.pathname = '/gratia-servlets/rmi';
  return u;
}
