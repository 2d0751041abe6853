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
 *  - surge:        a user moving far more bytes than their norm (seasonal mean and deviation of
 *                  the same hour of day, or an EWMA with a deviation band of the last hours).
 *  - new-network:  a user with an established history transferring from a network never seen
 *                  for them: known long enough, with enough transfers before the network
 *                  appeared, and so many from it now that their history would have shown it
 *                  had they used it all along (a hypergeometric test).
 *  - pool-stopped: a pool that served steadily and has been silent while the rest of the site
 *                  went on.
 *
 * The rate tests are binomial: x failures of n transfers against an expected rate p0 (the
 * key's own rate in the baseline window when it had enough transfers there, else the rate of
 * its peers now when they had as many, never below a floor); a spike needs a minimum count, a
 * ratio over p0 and a z-score. No detector alerts before it has the baseline it needs (too
 * few transfers to know a rate, a too short history, a user not yet learnt): it says nothing.
 */
import type { Counts } from '../../db/statistics';
import { DEFAULT_STATISTICS_OPTIONS } from './options';

export type AlertKind = 'fault' | 'misuse' | 'surge' | 'new-network' | 'pool-stopped';

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

/**
 * The expected failure rate of a key: its own rate in the baseline window when it had
 * minBaselineTransfers there, else its peers' rate now when they had as many; else none (too
 * little traffic to know what is normal: nothing is judged).
 */
export function expectedRate(own: Tally | undefined, peers: Tally, o: RateTestOptions): { p0: number; baseline: 'own' | 'peers' } | null {
  if (own !== undefined && own.transfers >= o.minBaselineTransfers) return { p0: own.failures / own.transfers, baseline: 'own' };
  if (peers.transfers >= o.minBaselineTransfers) return { p0: peers.failures / peers.transfers, baseline: 'peers' };
  return null;
}

export interface RateSpike {
  dimension: string;
  key: string;
  tally: Tally;
  test: RateTest;
  baseline: 'own' | 'peers';
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
        const expected = expectedRate(baseline.get(dimension)?.get(key), { transfers: total.transfers - t.transfers, failures: total.failures - t.failures }, o);
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

/** Faults: error-rate spikes on a pool or a door, from the door × pool cells. */
export function detectFaults(recentCells: readonly { door: string; pool: string; transfers: number; failures: number }[], baseline: Tallies, o: RateTestOptions): Finding[] {
  const cells = recentCells.map((c) => ({ keys: [c.door, c.pool], tally: { transfers: c.transfers, failures: c.failures } }));
  return explainedRateSpikes(['door', 'pool'], cells, baseline, o).map(({ dimension, key, tally, test, baseline: base }) => ({
    kind: 'fault',
    dimension,
    key,
    message: `${dimension} ${key}: ${tally.failures} of ${tally.transfers} transfers failed (${pct(test.rate)}; expected ${pct(test.expected)} from ${base === 'own' ? 'its own recent history' : 'the rest of the site'})`,
    evidence: { failures: tally.failures, transfers: tally.transfers, rate: round(test.rate), expectedRate: round(test.expected), z: round(test.z), baseline: base },
  }));
}

/** Misuse: bursts of permission-denied errors from a client network or by a user. */
export function detectMisuse(recent: Tallies, baseline: Tallies, o: RateTestOptions): Finding[] {
  const out: Finding[] = [];
  for (const [dimension, keys] of recent) {
    const total: Tally = { transfers: 0, failures: 0 };
    for (const t of keys.values()) {
      total.transfers += t.transfers;
      total.failures += t.failures;
    }
    for (const [key, t] of keys) {
      const expected = expectedRate(baseline.get(dimension)?.get(key), { transfers: total.transfers - t.transfers, failures: total.failures - t.failures }, o);
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
}

/** Users moving far more than their norm. */
export function detectSurges(inputs: readonly SurgeInput[], o: SurgeOptions): Finding[] {
  const out: Finding[] = [];
  for (const u of inputs) {
    const seasonal = u.seasonal.length >= o.seasonalMinDays;
    if (!seasonal && u.history.length < o.minHistoryMinutes) continue;
    const base = seasonal ? meanSd(u.seasonal.map((b) => b / 60)) : ewma(u.history, o.alpha);
    const perMinute = u.recentBytes / Math.max(1, u.recentMinutes);
    // A deviation of zero (a perfectly flat norm) would flag any wobble: allow 10 % of the mean.
    const sd = Math.max(base.sd, base.mean * 0.1);
    if (u.recentBytes < o.minBytes || perMinute < o.ratio * base.mean || perMinute < base.mean + o.k * sd) continue;
    out.push({
      kind: 'surge',
      dimension: 'user',
      key: u.key,
      message: `user ${u.key}: ${formatBytes(perMinute)}/min over the last ${u.recentMinutes} min, ${base.mean > 0 ? `${(perMinute / base.mean).toFixed(1)} × ` : 'against '}the usual ${formatBytes(base.mean)}/min (${seasonal ? 'same hour on previous days' : 'moving average'})`,
      evidence: { bytesPerMinute: Math.round(perMinute), baselineBytesPerMinute: Math.round(base.mean), baselineDeviation: Math.round(base.sd), baseline: seasonal ? 'seasonal' : 'ewma' },
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
