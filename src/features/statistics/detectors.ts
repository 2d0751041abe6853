/**
 * Abnormal-traffic detectors: pure functions of counts the statistics tables hold, each with
 * its thresholds in DetectorOptions (settings statistics.detectors.* of src/config/schema.ts, which
 * holds their defaults and environment variables).
 *
 *  - fault:        an error-rate spike on a pool or a door (permission-denied not counted);
 *                  doors and pools share transfers, so the worst key is flagged first and its
 *                  transfers are taken out before the others are tested again ("explaining
 *                  away"), and a faulty pool does not make every door look faulty.
 *  - misuse:       a burst of permission-denied errors (10018) from a client network or a user.
 *  - surge:        a user moving far more bytes than their norm (mean and deviation of the same
 *                  hour of the week on previous weeks, else of the same hour of day on previous
 *                  days, else an EWMA with a deviation band of the last hours).
 *  - new-network:  a user with an established history transferring from a network never seen
 *                  for them: known long enough, with enough transfers before the network
 *                  appeared, and so many from it now that their history would have shown it
 *                  had they used it all along (a hypergeometric test).
 *  - pool-stopped: a pool that served steadily and has been silent while the rest of the site
 *                  went on.
 *  - pool-outlier: a pool whose error rate or transfer speed has been far from its peers' for
 *                  most of the last half hour (the MAD outlier test of the augurs library, given
 *                  in as `OutlierBands`, plus a binomial or ratio test on the window's totals).
 *  - level-change: the site's hourly transfers or bytes changed level and stayed there: the
 *                  series divided by its hour-of-week shape, then changepoint detection (the
 *                  augurs library's Bayesian online detector, given in as `Changepoints`).
 *
 * Time of week: where the hourly statistics hold enough past weeks (`hourOfWeek.minWeeks`), the
 * surge and the rate detectors take their expected values from the same hour of the week on
 * the previous weeks (hourOfWeekBaseline), so a Monday morning is compared with Mondays; with
 * less history they behave as before.
 *
 * The rate tests are binomial: x failures of n transfers against an expected rate p0 (the
 * key's own rate in the baseline window when it had enough transfers there, else the rate of
 * its peers now when they had as many, never below a floor); a spike needs a minimum count, a
 * ratio over p0 and a z-score. No detector alerts before it has the baseline it needs (too
 * few transfers to know a rate, a too short history, a user not yet learnt): it says nothing.
 */
import type { Counts } from '../../db/statistics';
import { DEFAULT_STATISTICS_OPTIONS } from './options';

export type AlertKind = 'fault' | 'misuse' | 'surge' | 'new-network' | 'pool-stopped' | 'pool-outlier' | 'level-change';

export interface Finding {
  kind: AlertKind;
  dimension: string;
  key: string;
  /** One line for a person: what, where, how far from normal. */
  message: string;
  evidence: Record<string, number | string | null>;
}

export interface RateTestOptions {
  /** Fewest failures that can make an alert. */
  minCount: number;
  /** The rate must be at least this many times the expected rate. */
  ratio: number;
  /** ... and this many standard deviations above it. */
  z: number;
  /** Expected rate never below this (a key with no failures in its baseline is not "0 %"). */
  floorRate: number;
  /**
   * Transfers a key needs in the baseline window for its own rate to be its baseline; else
   * its peers need as many now, or nothing is judged.
   */
  minBaselineTransfers: number;
}

export interface SurgeOptions {
  /** Bytes per minute now must be at least ratio × the baseline mean ... */
  ratio: number;
  /** ... and mean + k × deviation. */
  k: number;
  /** Bytes in the recent window below which nothing is flagged. */
  minBytes: number;
  /** Minutes of history the site needs before surges are judged. */
  minHistoryMinutes: number;
  /** Days of the same hour of day needed to use the seasonal baseline instead of the EWMA. */
  seasonalMinDays: number;
  /** EWMA smoothing factor per minute. */
  alpha: number;
}

export interface HourOfWeekOptions {
  /** Past weeks read for the same hour of the week. */
  weeks: number;
  /** Weeks (on which the site delivered in that hour) needed to use them instead of today's baselines. */
  minWeeks: number;
}

export interface PoolOutlierOptions {
  /** The window judged (minutes), in steps of stepMinutes. */
  windowMinutes: number;
  stepMinutes: number;
  /** The library's MAD sensitivity in (0, 1): higher flags more (0.7: outside 2.0 deviations, 0.5: 2.9). */
  sensitivity: number;
  /** Steps in which the pool must be outside its peers' band. */
  minOutlyingSteps: number;
  /** Transfers a pool needs in a step for that step to count, and pools needed to have peers. */
  minStepTransfers: number;
  minPools: number;
  /** On the window's totals: fewest failures, ratio over the peers' rate and z-score (binomial). */
  errorMinCount: number;
  errorRatio: number;
  errorZ: number;
  /** A pool is slow if its bytes per second of transfer time are at most the peers' median / this. */
  slowRatio: number;
}

export interface LevelChangeOptions {
  /** Hours (complete, the newest last) in which a change is looked for. */
  lookbackHours: number;
  /** Hours the new level must have lasted, and at most how old the change may be to be reported. */
  minHours: number;
  maxAgeHours: number;
  /** The new level must be at least this many times the old one (or at most 1 / this). */
  ratio: number;
  /** The changepoint detector's prior mean run length (hours) between changes. */
  hazardHours: number;
}

export interface NewNetworkOptions {
  /** A user's network is "new" only if the user was known this long before it appeared. */
  learnMinutes: number;
  /** Transfers from the new network in the recent window needed to flag it. */
  minTransfers: number;
  /** Transfers the user needs before the network first appeared (what "not seen" rests on). */
  minBaselineTransfers: number;
  /**
   * Flag it only if this is at most the chance that none of those earlier transfers came
   * from the network had the user used it all along at its share since (1e-3: one in 1000).
   */
  maxChance: number;
}

export interface StoppedOptions {
  /** Silence (while the rest of the site delivered) needed to flag a pool. */
  minSilenceSeconds: number;
  /** Transfers the pool would have served in that silence at its usual rate. */
  minExpected: number;
  /** Minutes with traffic the pool needs in its baseline. */
  minActiveMinutes: number;
}

export interface DetectorOptions {
  /** Recent window judged (minutes). */
  windowMinutes: number;
  /** Baseline window before it (minutes). */
  baselineMinutes: number;
  fault: RateTestOptions;
  misuse: RateTestOptions;
  surge: SurgeOptions;
  newNetwork: NewNetworkOptions;
  stopped: StoppedOptions;
  hourOfWeek: HourOfWeekOptions;
  poolOutlier: PoolOutlierOptions;
  levelChange: LevelChangeOptions;
}

export const DEFAULT_DETECTOR_OPTIONS: DetectorOptions = DEFAULT_STATISTICS_OPTIONS.detectors;

export interface RateTest {
  spike: boolean;
  rate: number;
  expected: number;
  z: number;
}

/** Binomial spike test: x failures of n transfers against an expected rate p0. */
export function rateSpike(x: number, n: number, p0: number, o: RateTestOptions): RateTest {
  if (n <= 0) return { spike: false, rate: 0, expected: p0, z: 0 };
  const p = Math.min(0.999, Math.max(o.floorRate, p0));
  const rate = x / n;
  const z = (rate - p) / Math.sqrt((p * (1 - p)) / n);
  return { spike: x >= o.minCount && rate >= o.ratio * p && z >= o.z, rate, expected: p, z };
}

const pct = (r: number) => `${(r * 100).toFixed(r < 0.1 ? 1 : 0)} %`;

/** failures / transfers in a window for one key. */
export interface Tally {
  transfers: number;
  failures: number;
}

function tallyOf(m: ReadonlyMap<string, Tally>, key: string): Tally {
  return m.get(key) ?? { transfers: 0, failures: 0 };
}

/** Per-dimension tallies of a window: dimension -> key -> tally. */
export type Tallies = ReadonlyMap<string, ReadonlyMap<string, Tally>>;

export type RateBaseline = 'hour-of-week' | 'own' | 'peers';

/**
 * The expected failure rate of a key: its own rate at the same hour of the week on previous
 * weeks (`weekly`, given only when the site has enough weeks) when it had minBaselineTransfers
 * there, else its own rate in the baseline window when it had as many there, else its peers'
 * rate now when they had as many; else none (too little traffic to know what is normal:
 * nothing is judged).
 */
export function expectedRate(own: Tally | undefined, peers: Tally, o: RateTestOptions, weekly?: Tally): { p0: number; baseline: RateBaseline } | null {
  if (weekly !== undefined && weekly.transfers >= o.minBaselineTransfers) return { p0: weekly.failures / weekly.transfers, baseline: 'hour-of-week' };
  if (own !== undefined && own.transfers >= o.minBaselineTransfers) return { p0: own.failures / own.transfers, baseline: 'own' };
  if (peers.transfers >= o.minBaselineTransfers) return { p0: peers.failures / peers.transfers, baseline: 'peers' };
  return null;
}

export interface RateSpike {
  dimension: string;
  key: string;
  tally: Tally;
  test: RateTest;
  baseline: RateBaseline;
}

/**
 * Rate spikes in one or more dimensions whose keys share transfers (door × pool): `cells`
 * maps the tuple of keys (one per dimension) to its tally. The key with the highest z-score
 * is flagged first; its cells are then removed and the rest tested again.
 */
export function explainedRateSpikes(
  dimensions: readonly string[],
  recent: readonly { keys: readonly string[]; tally: Tally }[],
  baseline: Tallies,
  o: RateTestOptions,
  weekly?: Tallies,
): RateSpike[] {
  let cells = [...recent];
  const found: RateSpike[] = [];
  for (;;) {
    const total: Tally = { transfers: 0, failures: 0 };
    const per = dimensions.map(() => new Map<string, Tally>());
    for (const c of cells) {
      total.transfers += c.tally.transfers;
      total.failures += c.tally.failures;
      c.keys.forEach((k, i) => {
        const t = per[i]!.get(k) ?? { transfers: 0, failures: 0 };
        t.transfers += c.tally.transfers;
        t.failures += c.tally.failures;
        per[i]!.set(k, t);
      });
    }
    let best: RateSpike | null = null;
    let bestIndex = -1;
    dimensions.forEach((dimension, i) => {
      for (const [key, t] of per[i]!) {
        const expected = expectedRate(baseline.get(dimension)?.get(key), { transfers: total.transfers - t.transfers, failures: total.failures - t.failures }, o, weekly?.get(dimension)?.get(key));
        if (!expected) continue;
        const test = rateSpike(t.failures, t.transfers, expected.p0, o);
        if (test.spike && (!best || test.z > best.test.z)) {
          best = { dimension, key, tally: t, test, baseline: expected.baseline };
          bestIndex = i;
        }
      }
    });
    if (!best) return found;
    const flagged: RateSpike = best;
    found.push(flagged);
    cells = cells.filter((c) => c.keys[bestIndex] !== flagged.key);
  }
}

const BASELINE_WORDS: Record<RateBaseline, string> = { 'hour-of-week': 'the same hour on previous weeks', own: 'its own recent history', peers: 'the rest of the site' };

/** Faults: error-rate spikes on a pool or a door, from the door × pool cells (`weekly`: the same hour of previous weeks). */
export function detectFaults(recentCells: readonly { door: string; pool: string; transfers: number; failures: number }[], baseline: Tallies, o: RateTestOptions, weekly?: Tallies): Finding[] {
  const cells = recentCells.map((c) => ({ keys: [c.door, c.pool], tally: { transfers: c.transfers, failures: c.failures } }));
  return explainedRateSpikes(['door', 'pool'], cells, baseline, o, weekly).map(({ dimension, key, tally, test, baseline: base }) => ({
    kind: 'fault',
    dimension,
    key,
    message: `${dimension} ${key}: ${tally.failures} of ${tally.transfers} transfers failed (${pct(test.rate)}; expected ${pct(test.expected)} from ${BASELINE_WORDS[base]})`,
    evidence: { failures: tally.failures, transfers: tally.transfers, rate: round(test.rate), expectedRate: round(test.expected), z: round(test.z), baseline: base },
  }));
}

/** Misuse: bursts of permission-denied errors from a client network or by a user. */
export function detectMisuse(recent: Tallies, baseline: Tallies, o: RateTestOptions, weekly?: Tallies): Finding[] {
  const out: Finding[] = [];
  for (const [dimension, keys] of recent) {
    const total: Tally = { transfers: 0, failures: 0 };
    for (const t of keys.values()) {
      total.transfers += t.transfers;
      total.failures += t.failures;
    }
    for (const [key, t] of keys) {
      const expected = expectedRate(baseline.get(dimension)?.get(key), { transfers: total.transfers - t.transfers, failures: total.failures - t.failures }, o, weekly?.get(dimension)?.get(key));
      if (!expected) continue;
      const test = rateSpike(t.failures, t.transfers, expected.p0, o);
      if (!test.spike) continue;
      out.push({
        kind: 'misuse',
        dimension,
        key,
        message: `${dimension === 'client_net' ? 'client network' : dimension} ${key}: ${t.failures} permission-denied errors in ${t.transfers} transfers (${pct(test.rate)}; expected ${pct(test.expected)})`,
        evidence: { denied: t.failures, transfers: t.transfers, rate: round(test.rate), expectedRate: round(test.expected), z: round(test.z), baseline: expected.baseline },
      });
    }
  }
  return out;
}

/** Mean and deviation of an exponentially weighted moving average over a series. */
export function ewma(values: readonly number[], alpha: number): { mean: number; sd: number } {
  if (values.length === 0) return { mean: 0, sd: 0 };
  let mean = values[0]!;
  let variance = 0;
  for (let i = 1; i < values.length; i++) {
    const d = values[i]! - mean;
    mean += alpha * d;
    variance = (1 - alpha) * (variance + alpha * d * d);
  }
  return { mean, sd: Math.sqrt(variance) };
}

export function meanSd(values: readonly number[]): { mean: number; sd: number } {
  if (values.length === 0) return { mean: 0, sd: 0 };
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  const variance = values.reduce((s, v) => s + (v - mean) ** 2, 0) / Math.max(1, values.length - 1);
  return { mean, sd: Math.sqrt(variance) };
}

export interface SurgeInput {
  key: string;
  /** Bytes in the recent window, and its length in minutes. */
  recentBytes: number;
  recentMinutes: number;
  /** Bytes per minute over the baseline window (zero-filled, oldest first). */
  history: readonly number[];
  /** Bytes in the same hour of day on previous days (one value per day the site had data). */
  seasonal: readonly number[];
  /** Bytes in the same hour of the week on previous weeks (one value per week the site had data). */
  weekly?: readonly number[];
}

type SurgeBaseline = 'hour-of-week' | 'seasonal' | 'ewma';
const SURGE_WORDS: Record<SurgeBaseline, string> = { 'hour-of-week': 'same hour on previous weeks', seasonal: 'same hour on previous days', ewma: 'moving average' };

/**
 * Users moving far more than their norm: the same hour of the week when `minWeeks` weeks of
 * it are known, else the same hour of day when seasonalMinDays days are, else the EWMA.
 */
export function detectSurges(inputs: readonly SurgeInput[], o: SurgeOptions, minWeeks = DEFAULT_STATISTICS_OPTIONS.detectors.hourOfWeek.minWeeks): Finding[] {
  const out: Finding[] = [];
  for (const u of inputs) {
    const weekly = (u.weekly?.length ?? 0) >= Math.max(1, minWeeks);
    const kind: SurgeBaseline = weekly ? 'hour-of-week' : u.seasonal.length >= o.seasonalMinDays ? 'seasonal' : 'ewma';
    if (kind === 'ewma' && u.history.length < o.minHistoryMinutes) continue;
    const base = kind === 'ewma' ? ewma(u.history, o.alpha) : meanSd((kind === 'hour-of-week' ? u.weekly! : u.seasonal).map((b) => b / 60));
    const perMinute = u.recentBytes / Math.max(1, u.recentMinutes);
    // A deviation of zero (a perfectly flat norm) would flag any wobble: allow 10 % of the mean.
    const sd = Math.max(base.sd, base.mean * 0.1);
    if (u.recentBytes < o.minBytes || perMinute < o.ratio * base.mean || perMinute < base.mean + o.k * sd) continue;
    out.push({
      kind: 'surge',
      dimension: 'user',
      key: u.key,
      message: `user ${u.key}: ${formatBytes(perMinute)}/min over the last ${u.recentMinutes} min, ${base.mean > 0 ? `${(perMinute / base.mean).toFixed(1)} × ` : 'against '}the usual ${formatBytes(base.mean)}/min (${SURGE_WORDS[kind]})`,
      evidence: { bytesPerMinute: Math.round(perMinute), baselineBytesPerMinute: Math.round(base.mean), baselineDeviation: Math.round(base.sd), baseline: kind },
    });
  }
  return out;
}

export interface NewNetworkInput {
  user: string;
  userFirstSeenMs: number;
  networks: readonly {
    network: string;
    firstSeenMs: number;
    /** Transfers from the network in the recent window (all it had: it is new). */
    recentTransfers: number;
    /** The user's transfers from the minute the network first appeared on. */
    userTransfersSince: number;
    /** The user's transfers before that minute (as far back as the statistics go) ... */
    userTransfersBefore: number;
    /** ... since this time (epoch ms). */
    userTransfersBeforeFromMs: number;
  }[];
}

/**
 * The chance that none of a user's `before` transfers came from a network that carries x of
 * their n transfers since, if the user had used it all along at that share: all x of the x
 * fall among the last n of n + before (hypergeometric; the one-sided Fisher test of a 0 cell).
 */
export function unseenChance(x: number, n: number, before: number): number {
  let p = 1;
  for (let i = 0; i < x && p > 1e-300; i++) p *= Math.max(0, n - i) / (n + before - i);
  return p;
}

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** Users with an established history transferring from networks never seen for them. */
export function detectNewNetworks(inputs: readonly NewNetworkInput[], nowMs: number, windowMinutes: number, o: NewNetworkOptions): Finding[] {
  const out: Finding[] = [];
  for (const u of inputs) {
    for (const n of u.networks) {
      if (n.firstSeenMs < u.userFirstSeenMs + o.learnMinutes * 60_000) continue; // part of what was learnt
      if (n.firstSeenMs < nowMs - windowMinutes * 60_000) continue; // no longer new
      if (n.recentTransfers < o.minTransfers) continue;
      if (n.userTransfersBefore < o.minBaselineTransfers) continue; // too little history to say "not seen"
      const chance = unseenChance(n.recentTransfers, Math.max(n.userTransfersSince, n.recentTransfers), n.userTransfersBefore);
      if (chance > o.maxChance) continue; // a network this rare could have been missed
      out.push({
        kind: 'new-network',
        dimension: 'user_net',
        key: `${n.network} ${u.user}`,
        message:
          `user ${u.user}: ${n.recentTransfers} of their ${Math.max(n.userTransfersSince, n.recentTransfers)} transfers since ${iso(n.firstSeenMs)} came from ${n.network}, ` +
          `a network none of their ${n.userTransfersBefore} transfers since ${iso(n.userTransfersBeforeFromMs)} came from (user known since ${iso(u.userFirstSeenMs)})`,
        evidence: {
          network: n.network,
          user: u.user,
          transfers: n.recentTransfers,
          userTransfersSince: n.userTransfersSince,
          userTransfersBefore: n.userTransfersBefore,
          chanceUnseen: Number(chance.toPrecision(3)),
          networkFirstSeen: new Date(n.firstSeenMs).toISOString(),
          userFirstSeen: new Date(u.userFirstSeenMs).toISOString(),
        },
      });
    }
  }
  return out;
}

export interface StoppedInput {
  pool: string;
  lastSeenMs: number;
  /** Transfers per minute before it went silent (complete minutes, zero-filled). */
  history: readonly number[];
}

/** Pools that served steadily and stopped while the rest of the site went on. */
export function detectStoppedPools(inputs: readonly StoppedInput[], siteLastSeenMs: number, o: StoppedOptions): Finding[] {
  const out: Finding[] = [];
  for (const p of inputs) {
    const silenceMs = siteLastSeenMs - p.lastSeenMs;
    if (silenceMs < o.minSilenceSeconds * 1000) continue;
    if (p.history.filter((n) => n > 0).length < o.minActiveMinutes) continue;
    const perMinute = p.history.reduce((s, n) => s + n, 0) / p.history.length;
    const expected = (perMinute * silenceMs) / 60_000;
    if (expected < o.minExpected) continue;
    out.push({
      kind: 'pool-stopped',
      dimension: 'pool',
      key: p.pool,
      message: `pool ${p.pool}: no transfer for ${Math.round(silenceMs / 1000)} s while the site went on; it usually serves ${perMinute.toFixed(1)} a minute (${Math.round(expected)} expected)`,
      evidence: { silentSeconds: Math.round(silenceMs / 1000), usualPerMinute: round(perMinute), expected: Math.round(expected), lastSeen: new Date(p.lastSeenMs).toISOString() },
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Time of week

const HOUR = 3_600_000;
export const WEEK_HOURS = 168;

/**
 * Hourly counts of one key: values[i] is the hour starting at startMs + i hours (epoch ms, on
 * the hour); NaN where nothing is known (the site delivered nothing then: no data, not a zero).
 */
export interface HourlyCounts {
  startMs: number;
  values: readonly number[];
}

/** The values at the same hour of the week as `atMs` on each of the `weeks` previous weeks that have data (newest first). */
export function sameHourOfWeek(h: HourlyCounts, atMs: number, weeks: number): number[] {
  const at = Math.floor(atMs / HOUR) * HOUR;
  const out: number[] = [];
  for (let k = 1; k <= weeks; k++) {
    const i = Math.round((at - k * WEEK_HOURS * HOUR - h.startMs) / HOUR);
    const v = i >= 0 && i < h.values.length ? h.values[i]! : NaN;
    if (Number.isFinite(v)) out.push(v);
  }
  return out;
}

/**
 * The hour-of-week baseline of a key at `atMs`: mean and deviation of its counts at the same
 * hour of the week (day of week × hour of day) on previous weeks; null with fewer than
 * minWeeks such weeks (then the detectors use today's baselines).
 */
export function hourOfWeekBaseline(h: HourlyCounts, atMs: number, o: HourOfWeekOptions): { mean: number; sd: number; weeks: number } | null {
  const values = sameHourOfWeek(h, atMs, o.weeks);
  if (values.length < Math.max(1, o.minWeeks)) return null;
  return { ...meanSd(values), weeks: values.length };
}

// ---------------------------------------------------------------------------------------
// Pools unlike their peers

/**
 * The library's MAD outlier test over a group of series (one per pool, one value per step, NaN
 * where a step has too few transfers): the band of normal values (lower and upper limit), or
 * null when the peers do not differ at all (the library's median absolute deviation is 0:
 * then every value off the median is outside the band).
 */
export type OutlierBands = (series: readonly (readonly number[])[], sensitivity: number) => { min: number; max: number } | null;

/** A pool's counts in each step of the pool-outlier window (oldest first). */
export interface PoolSteps {
  pool: string;
  steps: readonly { transfers: number; failures: number; bytes: number; durationMs: number }[];
}

function median(values: readonly number[]): number {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

const speedOf = (c: { bytes: number; durationMs: number }) => (c.durationMs > 0 && c.bytes > 0 ? (c.bytes * 1000) / c.durationMs : NaN);

/**
 * Pools whose error rate is far above, or whose speed (bytes per second of transfer time) far
 * below, their peers' in at least minOutlyingSteps steps of the window (by the MAD band), and
 * on the window's totals too (the binomial test against the peers' rate; the peers' median
 * speed / slowRatio). Rates are smoothed ((failures + 0.5) / (transfers + 1)) and speeds
 * taken as log10, so that the band is not all ties and a fast pool's speed does not dominate.
 */
export function detectPoolOutliers(pools: readonly PoolSteps[], o: PoolOutlierOptions, bands: OutlierBands): Finding[] {
  const enough = (c: { transfers: number }) => c.transfers >= Math.max(1, o.minStepTransfers);
  const live = pools.filter((p) => p.steps.filter(enough).length >= o.minOutlyingSteps);
  if (live.length < Math.max(3, o.minPools)) return [];
  const errorSeries = live.map((p) => p.steps.map((c) => (enough(c) ? (c.failures + 0.5) / (c.transfers + 1) : NaN)));
  const speedSeries = live.map((p) => p.steps.map((c) => (enough(c) ? Math.log10(speedOf(c)) : NaN)));
  const outlying = (series: number[][], side: 'above' | 'below') => {
    const band = bands(series, o.sensitivity);
    const m = median(series.flat());
    return series.map((s) => s.filter((v) => Number.isFinite(v) && (side === 'above' ? v > (band ? band.max : m) : v < (band ? band.min : m))).length);
  };
  const errorSteps = outlying(errorSeries, 'above');
  const slowSteps = outlying(speedSeries, 'below');
  const totals = live.map((p) => p.steps.reduce((t, c) => ({ transfers: t.transfers + c.transfers, failures: t.failures + c.failures, bytes: t.bytes + c.bytes, durationMs: t.durationMs + c.durationMs }), { transfers: 0, failures: 0, bytes: 0, durationMs: 0 }));
  const site = totals.reduce((t, c) => ({ transfers: t.transfers + c.transfers, failures: t.failures + c.failures }), { transfers: 0, failures: 0 });
  const out: Finding[] = [];
  live.forEach((p, i) => {
    const mine = totals[i]!;
    const reasons: string[] = [];
    const evidence: Record<string, number | string | null> = { transfers: mine.transfers, windowMinutes: o.windowMinutes };
    if (errorSteps[i]! >= o.minOutlyingSteps) {
      const peers = { transfers: site.transfers - mine.transfers, failures: site.failures - mine.failures };
      const test = rateSpike(mine.failures, mine.transfers, peers.transfers > 0 ? peers.failures / peers.transfers : 0, { minCount: o.errorMinCount, ratio: o.errorRatio, z: o.errorZ, floorRate: 0.01, minBaselineTransfers: 0 });
      if (test.spike) {
        reasons.push(`${mine.failures} of ${mine.transfers} transfers failed (${pct(test.rate)}; its peers ${pct(peers.failures / Math.max(1, peers.transfers))})`);
        Object.assign(evidence, { failures: mine.failures, rate: round(test.rate), peersRate: round(peers.failures / Math.max(1, peers.transfers)), z: round(test.z), errorSteps: errorSteps[i]! });
      }
    }
    if (slowSteps[i]! >= o.minOutlyingSteps) {
      const speed = speedOf(mine);
      const peersSpeed = median(totals.filter((_, j) => j !== i).map(speedOf));
      if (Number.isFinite(speed) && Number.isFinite(peersSpeed) && speed * Math.max(1, o.slowRatio) <= peersSpeed) {
        reasons.push(`its transfers ran at ${formatBytes(speed)}/s, its peers' at ${formatBytes(peersSpeed)}/s (median)`);
        Object.assign(evidence, { bytesPerSecond: Math.round(speed), peersBytesPerSecond: Math.round(peersSpeed), slowSteps: slowSteps[i]! });
      }
    }
    if (reasons.length === 0) return;
    out.push({ kind: 'pool-outlier', dimension: 'pool', key: p.pool, message: `pool ${p.pool}, unlike its ${live.length - 1} peers over the last ${o.windowMinutes} min: ${reasons.join('; ')}`, evidence });
  });
  return out;
}

// ---------------------------------------------------------------------------------------
// The site's level

/** The library's changepoint detector: the indices at which a new segment starts (never 0). */
export type Changepoints = (y: readonly number[], hazardHours: number) => number[];

/**
 * The site's hourly series without its shape: log(value / (hour-of-week factor × level)). The
 * factor of an hour of the week is the median, over the complete weeks of the series (counted
 * back from its end), of the value over that week's mean, so a week in which the level changed
 * moves it little; a level change stays visible in the result. Null with fewer than minWeeks
 * complete weeks.
 */
export function deseasonalise(h: HourlyCounts, minWeeks: number): number[] | null {
  const n = h.values.length;
  const blocks: { from: number; mean: number }[] = [];
  for (let from = n - WEEK_HOURS; from >= 0; from -= WEEK_HOURS) {
    const week = h.values.slice(from, from + WEEK_HOURS);
    if (week.filter(Number.isFinite).length < 0.9 * WEEK_HOURS) break;
    const mean = week.filter(Number.isFinite).reduce((a, b) => a + b, 0) / week.filter(Number.isFinite).length;
    if (!(mean > 0)) break;
    blocks.push({ from, mean });
  }
  if (blocks.length < Math.max(2, minWeeks)) return null;
  const slot = (i: number) => (((Math.round((h.startMs + i * HOUR) / HOUR) % WEEK_HOURS) + WEEK_HOURS) % WEEK_HOURS);
  const ratios = Array.from({ length: WEEK_HOURS }, () => [] as number[]);
  for (const b of blocks) for (let i = b.from; i < b.from + WEEK_HOURS; i++) if (Number.isFinite(h.values[i]!)) ratios[slot(i)]!.push(h.values[i]! / b.mean);
  const factor = ratios.map((r) => median(r));
  const level = median(blocks.map((b) => b.mean));
  const c = 0.01 * level; // an hour without transfers is not log(0)
  return h.values.map((v, i) => (Number.isFinite(v) ? Math.log((v + c) / ((Number.isFinite(factor[slot(i)]!) ? factor[slot(i)]! : 1) * level + c)) : NaN));
}

/**
 * A sustained change of the site's level in `metric` (hourly transfers or bytes, complete hours,
 * the newest last): the series without its weekly shape (deseasonalise), scaled by its noise
 * (the median step from hour to hour), is given to the changepoint detector over the last
 * lookbackHours; the newest change with at least minHours after it and at most maxAgeHours old
 * whose median level after it is ≥ ratio × (or ≤ 1 / ratio of) the median before it in the
 * lookback, with at least 3 in 4 of the hours after it on the new side of the midpoint, is
 * reported. One finding (both metrics in it) while the change is recent: one alert.
 */
export function detectLevelChange(inputs: readonly (HourlyCounts & { metric: 'transfers' | 'bytes' })[], o: LevelChangeOptions, minWeeks: number, changepoints: Changepoints): Finding[] {
  const out: Finding[] = [];
  const reasons: string[] = [];
  const evidence: Record<string, number | string | null> = {};
  for (const whole of inputs) {
    // Judged up to the last hour known (hours not delivered yet are not a fall).
    let end = whole.values.length;
    while (end > 0 && !Number.isFinite(whole.values[end - 1]!)) end--;
    const input = { ...whole, values: whole.values.slice(0, end) };
    const d = deseasonalise(input, minWeeks);
    if (!d) continue;
    const lookback = Math.min(d.length, Math.max(o.minHours * 2, o.lookbackHours));
    const y = d.slice(d.length - lookback);
    if (y.some((v) => !Number.isFinite(v))) continue; // a gap in the recent days: the probe was not counting
    const steps = y.slice(1).map((v, i) => Math.abs(v - y[i]!));
    const noise = Math.max(0.02, 1.0483 * median(steps));
    const centre = median(y);
    const z = y.map((v) => (v - centre) / noise);
    const found = changepoints(z, o.hazardHours).filter((c) => c > 0 && c <= lookback - o.minHours && c >= lookback - o.maxAgeHours);
    // The newest change that holds: a later, smaller one (noise within the new level) does not hide it.
    const judged = found.reverse().map((c) => {
      const before = median(y.slice(0, c));
      const after = median(y.slice(c));
      const mid = (before + after) / 2;
      const onNewSide = y.slice(c).filter((v) => (after > before ? v > mid : v < mid)).length;
      return { c, factor: Math.exp(after - before), consistent: onNewSide >= 0.75 * (lookback - c) };
    });
    const hit = judged.find((j) => (j.factor >= o.ratio || j.factor <= 1 / o.ratio) && j.consistent);
    if (!hit) continue;
    const { c, factor } = hit;
    const startMs = input.startMs + (input.values.length - lookback + c) * HOUR;
    reasons.push(`${input.metric} ${factor >= 1 ? 'rose' : 'fell'} to ${factor.toFixed(factor >= 1 ? 1 : 2)} × the level before`);
    Object.assign(evidence, { [`${input.metric}Factor`]: round(factor), [`${input.metric}Since`]: new Date(startMs).toISOString(), hours: lookback - c });
  }
  if (reasons.length) {
    out.push({ kind: 'level-change', dimension: 'site', key: 'all', message: `the site's hourly traffic changed level and stayed there: ${reasons.join('; ')} (against the same hours of the week, since ${[...Object.entries(evidence)].filter(([k]) => k.endsWith('Since')).map(([, v]) => v).sort()[0]})`, evidence });
  }
  return out;
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  while (Math.abs(n) >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n.toFixed(n >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
}
