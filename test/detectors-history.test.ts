/**
 * The detectors that know the site (issue 14), on a simulated history of 28 days of hourly
 * counts with a day-of-week and hour-of-day shape (quiet nights and weekends, a Monday-morning
 * peak, a door whose weekly job fails 15 % of its transfers every Tuesday at 10:00, day-to-day
 * noise): each detector is run on seeded scenarios in the last week, half with an injected
 * fault (pool or door error spikes, user surges, a pool that fails or slows unlike its peers,
 * a sustained change of the site's level), and its precision and recall are reported
 * (t.diagnostic) and held above floors; then seven clean simulated days, every hour, must raise
 * no alert at all. All in memory (the pure detectors, with the augurs library for the MAD
 * band and the changepoints), about 10 s. Last, the monitor on rows written straight into
 * stats_hour and stats_minute: it reads the weeks, the pools' steps and the site's hours.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { rng } from '../src/tools/demo/simulator';
import { Score, between, binomial as binomialDraw, gaussian, poisson as poissonDraw } from './helpers/scoring';
import {
  DEFAULT_DETECTOR_OPTIONS as D,
  detectFaults,
  detectLevelChange,
  detectPoolOutliers,
  detectSurges,
  hourOfWeekBaseline,
  sameHourOfWeek,
  type Finding,
  type PoolSteps,
  type SurgeInput,
  type Tally,
} from '../src/features/statistics/detectors';
import { loadStatisticsLibrary, type StatisticsLibrary } from '../src/features/statistics/library';
import { findAnomalies } from '../src/features/statistics/monitor';
import { DEFAULT_STATISTICS_OPTIONS } from '../src/features/statistics/options';
import { upsertBatchRows, type StatRow } from '../src/db/statistics';
import { withDatabaseAndPool } from './helpers/fixture';
import type pg from 'pg';

const HOUR = 3_600_000;
const MINUTE = 60_000;
/** Monday 2026-01-05 00:00 UTC: the simulated history's first hour. */
const T0 = Date.UTC(2026, 0, 5);
const DAYS = 28;

// --- samplers --------------------------------------------------------------------------
type R = () => number;
const logNormal = (r: R, sigma: number) => Math.exp(sigma * gaussian(r));
const poisson = (r: R, lambda: number) => poissonDraw(r, lambda, 30);
const binomial = (r: R, n: number, p: number) => binomialDraw(r, n, p, 20);

// --- the site --------------------------------------------------------------------------
/** The site's shape at an hour: weekdays busy, weekends and nights quiet, Monday mornings busiest. */
function shape(tMs: number): number {
  const d = new Date(tMs);
  const dow = d.getUTCDay();
  const hour = d.getUTCHours();
  const day = [0.5, 1, 1, 1, 1, 0.95, 0.6][dow]!;
  const hod = 0.35 + 0.65 * Math.exp(-(((hour - 13) / 4.5) ** 2));
  return day * hod * (dow === 1 && hour >= 8 && hour <= 10 ? 1.8 : 1);
}
const isTuesdayTen = (tMs: number) => new Date(tMs).getUTCDay() === 2 && new Date(tMs).getUTCHours() === 10;

const DOORS = ['GFTP-door', 'WebDAV-door', 'Xrootd-door', 'DCap-door', 'NFS-door', 'SRM-door'];
const POOLS = Array.from({ length: 8 }, (_, i) => `pool_${i + 1}`);

/** One simulated site: its day-to-day noise, the shares and error rates of doors and pools. */
class Site {
  readonly dayNoise: number[];
  readonly doorShare: number[];
  readonly poolShare: number[];
  readonly doorRate: number[];
  readonly poolRate: number[];
  constructor(
    readonly r: R,
    readonly perHour = 24_000,
  ) {
    this.dayNoise = Array.from({ length: DAYS + 7 }, () => logNormal(r, 0.07));
    const norm = (v: number[]) => v.map((x) => x / v.reduce((a, b) => a + b, 0));
    this.doorShare = norm(DOORS.map(() => between(r, 0.5, 1.5)));
    this.poolShare = norm(POOLS.map(() => between(r, 0.6, 1.4)));
    this.doorRate = DOORS.map(() => between(r, 0.005, 0.03));
    this.poolRate = POOLS.map(() => between(r, 0.005, 0.03));
  }
  /** Transfers per hour expected at an hour. */
  rate(tMs: number): number {
    return this.perHour * shape(tMs) * this.dayNoise[Math.floor((tMs - T0) / (24 * HOUR))]!;
  }
  /** Failure probability of a door × pool cell at a time (the SRM door's weekly job fails 15 %). */
  failure(door: number, pool: number, tMs: number): number {
    if (DOORS[door] === 'SRM-door' && isTuesdayTen(tMs)) return 0.15;
    return (this.doorRate[door]! + this.poolRate[pool]!) / 2;
  }
  /** Door × pool cells of `minutes` minutes at tMs; `fault` adds to a door's or pool's failure probability. */
  cells(tMs: number, minutes: number, fault?: { dimension: 'door' | 'pool'; index: number; add: number }) {
    const out: { door: string; pool: string; transfers: number; failures: number }[] = [];
    DOORS.forEach((door, d) =>
      POOLS.forEach((pool, p) => {
        const n = poisson(this.r, ((this.rate(tMs) * minutes) / 60) * this.doorShare[d]! * this.poolShare[p]!);
        const hit = fault && ((fault.dimension === 'door' && fault.index === d) || (fault.dimension === 'pool' && fault.index === p));
        out.push({ door, pool, transfers: n, failures: binomial(this.r, n, Math.min(0.99, this.failure(d, p, tMs) + (hit ? fault.add : 0))) });
      }),
    );
    return out;
  }
}

/** Per-dimension tallies of cells. */
function talliesOf(cells: readonly { door: string; pool: string; transfers: number; failures: number }[]): Map<string, Map<string, Tally>> {
  const out = new Map([['door', new Map<string, Tally>()], ['pool', new Map<string, Tally>()]]);
  for (const c of cells) {
    for (const [dim, key] of [['door', c.door], ['pool', c.pool]] as const) {
      const t = out.get(dim)!.get(key) ?? { transfers: 0, failures: 0 };
      out.get(dim)!.set(key, { transfers: t.transfers + c.transfers, failures: t.failures + c.failures });
    }
  }
  return out;
}

/** The inputs of the fault detector at tMs as the monitor reads them (5 min, the 120 min before, the same hour on previous weeks). */
function faultInputs(site: Site, tMs: number, fault?: { dimension: 'door' | 'pool'; index: number; add: number }) {
  const recent = site.cells(tMs, D.windowMinutes, fault);
  const baseline = talliesOf(Array.from({ length: D.baselineMinutes / 10 }, (_, i) => site.cells(tMs - (D.windowMinutes + D.baselineMinutes - i * 10) * MINUTE, 10)).flat());
  const hour = Math.floor(tMs / HOUR) * HOUR;
  const weeks: ReturnType<Site['cells']> = [];
  for (let k = 1; k <= D.hourOfWeek.weeks; k++) if (hour - k * 168 * HOUR >= T0) weeks.push(...site.cells(hour - k * 168 * HOUR, 60));
  const weekCount = Array.from({ length: D.hourOfWeek.weeks }, (_, k) => hour - (k + 1) * 168 * HOUR).filter((t) => t >= T0).length;
  return { recent, baseline, weekly: weekCount >= D.hourOfWeek.minWeeks ? talliesOf(weeks) : undefined };
}

// --- users (surges) --------------------------------------------------------------------
interface User {
  name: string;
  /** Bytes per hour at an hour. */
  bytes(tMs: number): number;
}
function users(r: R): User[] {
  const regular = Array.from({ length: 12 }, (_, i) => {
    const level = between(r, 50e9, 400e9);
    return { name: `user-${i}`, bytes: (t: number) => level * shape(t) };
  });
  // Two users whose big weekly job runs on Monday mornings only.
  const monday = Array.from({ length: 2 }, (_, i) => ({
    name: `monday-${i}`,
    bytes: (t: number) => (new Date(t).getUTCDay() === 1 && new Date(t).getUTCHours() >= 8 && new Date(t).getUTCHours() <= 10 ? 1.5e12 : 5e9),
  }));
  return [...regular, ...monday];
}

/** The surge detector's input for a user at tMs, as the monitor reads it; `factor` multiplies the recent window. */
function surgeInput(r: R, u: User, tMs: number, factor = 1): SurgeInput {
  const hour = Math.floor(tMs / HOUR) * HOUR;
  const noisy = (t: number) => u.bytes(t) * logNormal(r, 0.15);
  const back = (step: number, n: number) => Array.from({ length: n }, (_, k) => hour - (k + 1) * step * HOUR).filter((t) => t >= T0).map(noisy);
  return {
    key: u.name,
    recentBytes: ((u.bytes(tMs) * D.windowMinutes) / 60) * logNormal(r, 0.15) * factor,
    recentMinutes: D.windowMinutes,
    history: Array.from({ length: D.baselineMinutes }, (_, k) => (u.bytes(tMs - (D.baselineMinutes - k) * MINUTE) / 60) * logNormal(r, 0.3)),
    seasonal: back(24, 28),
    weekly: back(168, D.hourOfWeek.weeks),
  };
}

// --- pools unlike their peers ----------------------------------------------------------
function poolSteps(site: Site, r: R, tMs: number, speeds: readonly number[], outlier?: { index: number; add?: number; slow?: number }): PoolSteps[] {
  const o = D.poolOutlier;
  const n = Math.floor(o.windowMinutes / o.stepMinutes);
  return POOLS.map((pool, p) => ({
    pool,
    steps: Array.from({ length: n }, (_, s) => {
      const t = tMs - (n - s) * o.stepMinutes * MINUTE;
      const transfers = poisson(r, ((site.rate(t) * o.stepMinutes) / 60) * site.poolShare[p]!);
      const hit = outlier?.index === p;
      const failures = binomial(r, transfers, Math.min(0.99, site.poolRate[p]! + (hit ? (outlier.add ?? 0) : 0)));
      const bytes = transfers * 1.5e9 * logNormal(r, 0.1);
      const speed = speeds[p]! * logNormal(r, 0.1) / (hit && outlier.slow ? outlier.slow : 1);
      return { transfers, failures, bytes, durationMs: (bytes / speed) * 1000 };
    }),
  }));
}
const poolSpeeds = (r: R) => POOLS.map(() => 80e6 * logNormal(r, 0.35));

// --- the site's hourly series (level changes) ------------------------------------------
function siteSeries(site: Site, r: R, hours: number, change?: { at: number; factor: number }) {
  const transfers: number[] = [];
  const bytes: number[] = [];
  for (let i = 0; i < hours; i++) {
    const f = change && i >= change.at ? change.factor : 1;
    const n = poisson(r, site.rate(T0 + i * HOUR) * logNormal(r, 0.05) * f);
    transfers.push(n);
    bytes.push(n * 1.5e9 * logNormal(r, 0.05));
  }
  return { transfers, bytes };
}
function levelInputs(series: { transfers: number[]; bytes: number[] }, end: number) {
  const from = Math.max(0, end - D.hourOfWeek.weeks * 168);
  return [
    { metric: 'transfers' as const, startMs: T0 + from * HOUR, values: series.transfers.slice(from, end) },
    { metric: 'bytes' as const, startMs: T0 + from * HOUR, values: series.bytes.slice(from, end) },
  ];
}

// --- scoring (test/helpers/scoring.ts) ------------------------------------------------

/** A random time in the last week of the history (the first three are its past weeks). */
const lastWeek = (r: R) => T0 + (21 * 24 + Math.floor(r() * 7 * 24)) * HOUR + Math.floor(r() * 55 + 5) * MINUTE;
const keysOf = (findings: readonly Finding[]) => findings.map((f) => `${f.kind}:${f.dimension}:${f.key}`);

let lib: StatisticsLibrary;

describe('detectors that know the site: 28 simulated days with a weekly shape', () => {
  before(async () => {
    lib = await loadStatisticsLibrary();
  });

  it('hour-of-week baseline: a Monday-morning peak seen every Monday is not a surge; the same volume on a Sunday night is', () => {
    // A user who moves 1.5 TB an hour on Monday mornings, 5 GB an hour otherwise, for 4 weeks.
    const monday = users(rng(1)).find((u) => u.name === 'monday-0')!;
    const hours = 4 * 168;
    const history = { startMs: T0, values: Array.from({ length: hours }, (_, i) => monday.bytes(T0 + i * HOUR)) };
    const mondayNine = T0 + 4 * 168 * HOUR + 9 * HOUR; // the fifth Monday, 09:00
    const sundayNight = T0 + 4 * 168 * HOUR - 2 * HOUR; // the Sunday before, 22:00
    assert.deepEqual(sameHourOfWeek(history, mondayNine, 8), [1.5e12, 1.5e12, 1.5e12, 1.5e12]);
    assert.equal(hourOfWeekBaseline(history, mondayNine, { weeks: 8, minWeeks: 3 })!.mean, 1.5e12);
    assert.equal(hourOfWeekBaseline(history, sundayNight, { weeks: 8, minWeeks: 3 })!.mean, 5e9);
    assert.equal(hourOfWeekBaseline(history, mondayNine, { weeks: 8, minWeeks: 5 }), null, 'four weeks are not five: no baseline');
    const peak = (atMs: number): SurgeInput => ({
      key: 'monday-0',
      recentBytes: (1.5e12 * 5) / 60,
      recentMinutes: 5,
      history: Array(120).fill(5e9 / 60),
      seasonal: Array.from({ length: 7 }, (_, k) => monday.bytes(atMs - (k + 1) * 24 * HOUR)),
      weekly: sameHourOfWeek(history, atMs, 8),
    });
    assert.deepEqual(detectSurges([peak(mondayNine)], D.surge), [], 'a normal Monday morning');
    const sunday = detectSurges([peak(sundayNight)], D.surge);
    assert.equal(sunday.length, 1, 'the same volume on a Sunday night');
    assert.equal(sunday[0]!.evidence.baseline, 'hour-of-week');
    // With fewer weeks than minWeeks, the same hour of the previous days is the baseline, as before.
    assert.equal(detectSurges([{ ...peak(sundayNight), weekly: [5e9] }], D.surge)[0]!.evidence.baseline, 'seasonal');
  });

  it('fault: the same hour of previous weeks is the expected rate, so a weekly job that fails is not a fault', () => {
    const site = new Site(rng(7));
    const tuesday = T0 + (3 * 168 + 24 + 10) * HOUR + 10 * MINUTE; // the fourth Tuesday, 10:10
    const input = faultInputs(site, tuesday);
    assert.ok(input.weekly, 'three weeks of history');
    assert.deepEqual(keysOf(detectFaults(input.recent, input.baseline, D.fault, input.weekly)), []);
    assert.deepEqual(keysOf(detectFaults(input.recent, input.baseline, D.fault)), ['fault:door:SRM-door'], "today's baseline (the hours before) flags it");
    const broken = faultInputs(site, tuesday, { dimension: 'pool', index: 2, add: 0.3 });
    const found = detectFaults(broken.recent, broken.baseline, D.fault, broken.weekly);
    assert.deepEqual(keysOf(found), ['fault:pool:pool_3']);
    assert.match(found[0]!.message, /expected .* from the same hour on previous weeks/);
  });

  it('fault on a pool or a door: precision and recall over 300 scenarios in the last week', (t) => {
    const score = new Score();
    const today = new Score();
    const r = rng(1401);
    for (let s = 0; s < 300; s++) {
      const site = new Site(r);
      const at = lastWeek(r);
      const fault = r() < 0.5 ? { dimension: (r() < 0.5 ? 'door' : 'pool') as 'door' | 'pool', index: 0, add: between(r, 0.08, 0.6) } : undefined;
      if (fault) fault.index = Math.floor(r() * (fault.dimension === 'door' ? DOORS.length : POOLS.length));
      const input = faultInputs(site, at, fault);
      const truth = fault ? [`fault:${fault.dimension}:${(fault.dimension === 'door' ? DOORS : POOLS)[fault.index]}`] : [];
      score.add(keysOf(detectFaults(input.recent, input.baseline, D.fault, input.weekly)), truth);
      today.add(keysOf(detectFaults(input.recent, input.baseline, D.fault)), truth);
    }
    score.check(t, 'fault (hour-of-week baseline)', { precision: 0.95, recall: 0.85 });
    t.diagnostic(`fault with today's baselines only: precision ${today.precision.toFixed(3)} recall ${today.recall.toFixed(3)}`);
  });

  it('surge: precision and recall over 300 scenarios in the last week (a third on Monday mornings)', (t) => {
    const score = new Score();
    const today = new Score();
    const r = rng(1402);
    for (let s = 0; s < 300; s++) {
      const people = users(r);
      const at = s % 3 === 0 ? T0 + (21 * 24 + 8 + Math.floor(r() * 3)) * HOUR + 30 * MINUTE : lastWeek(r);
      const victim = r() < 0.5 ? people[Math.floor(r() * people.length)]! : undefined;
      const factor = between(r, 8, 40);
      const inputs = people.map((u) => surgeInput(r, u, at, u === victim ? factor : 1)).filter((u) => u.recentBytes >= D.surge.minBytes);
      // A surge below the detector's volume floor is not one to find.
      const truth = victim && inputs.some((u) => u.key === victim.name) ? [`surge:user:${victim.name}`] : [];
      score.add(keysOf(detectSurges(inputs, D.surge, D.hourOfWeek.minWeeks)), truth);
      today.add(keysOf(detectSurges(inputs.map((u) => ({ ...u, weekly: [] })), D.surge)), truth);
    }
    t.diagnostic(`surge with today's baselines only: precision ${today.precision.toFixed(3)} recall ${today.recall.toFixed(3)}`);
    score.check(t, 'surge (hour-of-week baseline)', { precision: 0.95, recall: 0.9 });
  });

  it('pool-outlier: a pool failing or slow unlike its peers (MAD band of the library), 300 scenarios', (t) => {
    const errors = new Score();
    const slow = new Score();
    const r = rng(1403);
    for (let s = 0; s < 300; s++) {
      const site = new Site(r);
      const at = lastWeek(r);
      const speeds = poolSpeeds(r);
      const kind = r();
      const index = Math.floor(r() * POOLS.length);
      const outlier = kind < 1 / 3 ? { index, add: between(r, 0.08, 0.4) } : kind < 2 / 3 ? { index, slow: between(r, 6, 20) } : undefined;
      const found = detectPoolOutliers(poolSteps(site, r, at, speeds, outlier), D.poolOutlier, lib.outlierBands);
      const truth = outlier ? [`pool-outlier:pool:${POOLS[index]}`] : [];
      (outlier?.slow ? slow : errors).add(keysOf(found), truth);
    }
    errors.check(t, 'pool-outlier, error rate', { precision: 0.95, recall: 0.85 });
    slow.check(t, 'pool-outlier, slow', { precision: 0.95, recall: 0.85 });
  });

  it('level-change: one alert per sustained change of the site level, run every hour, 40 scenarios', (t) => {
    const score = new Score();
    const delays: number[] = [];
    const r = rng(1404);
    for (let s = 0; s < 40; s++) {
      const site = new Site(r);
      const at = 21 * 24 + Math.floor(r() * 6 * 24);
      const factor = r() < 0.5 ? between(r, 0.3, 0.55) : between(r, 1.8, 3);
      const change = s % 2 === 0 ? { at, factor } : undefined;
      const series = siteSeries(site, r, Math.min(DAYS * 24, at + 30), change);
      let open = false;
      const openings: number[] = [];
      for (let end = at - 6; end <= Math.min(DAYS * 24, at + 30); end++) {
        const findings = detectLevelChange(levelInputs(series, end), D.levelChange, D.hourOfWeek.minWeeks, lib.changepoints);
        const found = findings.length > 0;
        if (found && !open) openings.push(end);
        open = found;
      }
      const hit = change ? openings.find((e) => e >= at + D.levelChange.minHours && e <= at + D.levelChange.maxAgeHours) : undefined;
      if (hit !== undefined) delays.push(hit - at);
      if (openings.some((e) => e !== hit)) t.diagnostic(`level-change: scenario ${s} (${change ? `×${factor.toFixed(2)} at hour ${at}` : "clean"}) opened at hours ${openings.join(", ")}`);
      score.add(openings.map((e) => (e === hit ? 'change' : `extra ${e}`)), change ? ['change'] : []);
    }
    t.diagnostic(`level-change: found ${delays.length} hours after the change: ${delays.sort((a, b) => a - b).join(', ')}`);
    score.check(t, 'level-change', { precision: 0.95, recall: 0.85 });
  });

  it('level-change: hours not delivered yet (a collector outage) are not a fall; hours without transfers are', () => {
    const site = new Site(rng(21));
    const series = siteSeries(site, rng(22), 25 * 24);
    const blank = (v: number[], fill: number) => [...v.slice(0, -6), ...Array(6).fill(fill)];
    const inputs = (fill: number) => levelInputs({ transfers: blank(series.transfers, fill), bytes: blank(series.bytes, fill) }, 25 * 24);
    assert.deepEqual(keysOf(detectLevelChange(inputs(NaN), D.levelChange, D.hourOfWeek.minWeeks, lib.changepoints)), []);
    const fell = detectLevelChange(inputs(0), D.levelChange, D.hourOfWeek.minWeeks, lib.changepoints);
    assert.deepEqual(keysOf(fell), ['level-change:site:all']);
    assert.match(fell[0]!.message, /transfers fell to 0\.0\d × the level before; bytes fell/);
    assert.equal(detectLevelChange(levelInputs(series, 2 * 168 + 24), D.levelChange, D.hourOfWeek.minWeeks, lib.changepoints).length, 0, 'two weeks are too few');
  });

  it('seven clean simulated days, every hour: no alert from any detector', (t) => {
    const r = rng(1405);
    const site = new Site(r);
    const people = users(r);
    const speeds = poolSpeeds(r);
    const series = siteSeries(site, r, DAYS * 24);
    const alerts: string[] = [];
    let todays = 0;
    for (let h = 21 * 24; h < DAYS * 24; h++) {
      const at = T0 + h * HOUR + 10 * MINUTE;
      const f = faultInputs(site, at);
      alerts.push(...keysOf(detectFaults(f.recent, f.baseline, D.fault, f.weekly)).map((k) => `${new Date(at).toISOString()} ${k}`));
      todays += detectFaults(f.recent, f.baseline, D.fault).length;
      const heavy = people.map((u) => surgeInput(r, u, at)).filter((u) => u.recentBytes >= D.surge.minBytes);
      alerts.push(...keysOf(detectSurges(heavy, D.surge, D.hourOfWeek.minWeeks)).map((k) => `${new Date(at).toISOString()} ${k}`));
      alerts.push(...keysOf(detectPoolOutliers(poolSteps(site, r, at, speeds), D.poolOutlier, lib.outlierBands)).map((k) => `${new Date(at).toISOString()} ${k}`));
      alerts.push(...keysOf(detectLevelChange(levelInputs(series, h), D.levelChange, D.hourOfWeek.minWeeks, lib.changepoints)).map((k) => `${new Date(at).toISOString()} ${k}`));
    }
    t.diagnostic(`7 clean days: ${alerts.length} alerts with the hour-of-week baselines; ${todays} fault findings with today's baselines (the SRM door's Tuesday job)`);
    assert.deepEqual(alerts, []);
    assert.ok(todays >= 1, "today's baselines flag the weekly job");
  });
});

describe('the monitor reads the weeks from stats_hour', () => {
  let pool: pg.Pool;
  withDatabaseAndPool('modern', (_db, p) => (pool = p));

  const row = (bucketMs: number, dimension: string, key: string, transfers: number, bytes: number): StatRow => ({ bucketMs, dimension, key, transfers, bytes, errors: 0, denied: 0, durationMs: transfers * 1000 });
  const monday = (t: number) => new Date(t).getUTCDay() === 1 && new Date(t).getUTCHours() >= 8 && new Date(t).getUTCHours() <= 10;
  const userBytes = (t: number) => (monday(t) ? 1.5e12 : 5e9);

  /**
   * Four weeks of hour rows (the site and a Monday-morning user), then the minutes of the last
   * two hours before nowMs; `level` multiplies the site's last hours. `history`: the hours are
   * the history builder's, which counts the site but no users (docs/DASHBOARD.md, "History").
   */
  async function write(nowMs: number, level?: { hours: number; factor: number }, history = false) {
    await pool.query('TRUNCATE dcache_probe.stats_minute, dcache_probe.stats_hour, dcache_probe.stats_seen, dcache_probe.stats_alert');
    const lastHour = Math.floor(nowMs / HOUR) * HOUR;
    const hour: StatRow[] = [];
    const r = rng(9);
    for (let t = lastHour - 4 * 168 * HOUR; t < lastHour; t += HOUR) {
      const f = level && t >= lastHour - level.hours * HOUR ? level.factor : 1;
      const n = Math.round(24_000 * shape(t) * f * logNormal(r, 0.05));
      hour.push(row(t, 'all', '', n, n * 1.5e9));
      if (!history) hour.push(row(t, 'user', 'monday-0', 10, userBytes(t)));
    }
    const minute: StatRow[] = [];
    for (let t = Math.floor(nowMs / MINUTE) * MINUTE - 125 * MINUTE; t <= nowMs; t += MINUTE) minute.push(row(t, 'all', '', 400, 400 * 1.5e9), row(t, 'user', 'monday-0', 1, 1.5e12 / 60));
    const sorted = (rows: StatRow[]) => rows.sort((a, b) => a.bucketMs - b.bucketMs || (a.dimension < b.dimension ? -1 : a.dimension > b.dimension ? 1 : 0));
    await upsertBatchRows(pool as unknown as pg.ClientBase, { minute: sorted(minute), hour: sorted(hour), day: [], seen: [] });
  }
  const kinds = (findings: readonly Finding[]) => findings.map((f) => `${f.kind} ${f.dimension} ${f.key}`);

  it('a Monday-morning volume seen every Monday is no surge on Monday at 09:30, and is one on Sunday at 22:30', async () => {
    const mondayMorning = T0 + 4 * 168 * HOUR + 9 * HOUR + 30 * MINUTE;
    await write(mondayMorning);
    assert.deepEqual(kinds(await findAnomalies(pool, DEFAULT_STATISTICS_OPTIONS, mondayMorning)), []);
    const sundayNight = T0 + 4 * 168 * HOUR - 90 * MINUTE;
    await write(sundayNight);
    const found = await findAnomalies(pool, DEFAULT_STATISTICS_OPTIONS, sundayNight);
    assert.deepEqual(kinds(found), ['surge user monday-0']);
    assert.equal(found[0]!.evidence.baseline, 'hour-of-week');
  });

  it("hours counted from the billing history, which hold no users, are not a user's norm of zero: no surge", async () => {
    const mondayMorning = T0 + 4 * 168 * HOUR + 9 * HOUR + 30 * MINUTE;
    await write(mondayMorning, undefined, true);
    assert.deepEqual(kinds(await findAnomalies(pool, DEFAULT_STATISTICS_OPTIONS, mondayMorning)), []);
  });

  it("a sustained change of the site's hourly level is one level-change finding", async () => {
    const now = T0 + 4 * 168 * HOUR + 3 * 24 * HOUR + 15 * HOUR + 20 * MINUTE; // a Thursday afternoon
    await write(now, { hours: 8, factor: 0.4 });
    const found = (await findAnomalies(pool, DEFAULT_STATISTICS_OPTIONS, now)).filter((f) => f.kind === 'level-change');
    assert.deepEqual(kinds(found), ['level-change site all']);
    assert.match(found[0]!.message, /transfers fell to 0\.[34]\d × the level before/);
    await write(now);
    assert.deepEqual(kinds((await findAnomalies(pool, DEFAULT_STATISTICS_OPTIONS, now)).filter((f) => f.kind === 'level-change')), [], 'no change, no finding');
  });

  it('a pool slow unlike its peers for half an hour is a pool-outlier (the minutes read in aligned 5-minute steps)', async () => {
    await pool.query('TRUNCATE dcache_probe.stats_minute, dcache_probe.stats_hour, dcache_probe.stats_seen, dcache_probe.stats_alert');
    const now = T0 + 10 * HOUR + 33 * MINUTE + 20_000;
    const r = rng(11);
    const minute: StatRow[] = [];
    for (let t = Math.floor(now / MINUTE) * MINUTE - 40 * MINUTE; t <= now; t += MINUTE) {
      for (const name of POOLS) {
        const speed = (name === 'pool_3' ? 5e6 : 80e6) * logNormal(r, 0.2);
        const bytes = 30 * 1.5e9;
        minute.push({ bucketMs: t, dimension: 'pool', key: name, transfers: 30, bytes, errors: 0, denied: 0, durationMs: Math.round((bytes / speed) * 1000) });
      }
      minute.push(row(t, 'all', '', 240, 240 * 1.5e9));
    }
    minute.sort((a, b) => a.bucketMs - b.bucketMs || (a.dimension < b.dimension ? -1 : a.dimension > b.dimension ? 1 : a.key < b.key ? -1 : 1));
    await upsertBatchRows(pool as unknown as pg.ClientBase, { minute, hour: [], day: [], seen: [] });
    const found = await findAnomalies(pool, DEFAULT_STATISTICS_OPTIONS, now);
    assert.deepEqual(kinds(found), ['pool-outlier pool pool_3']);
    assert.match(found[0]!.message, /pool pool_3, unlike its 7 peers over the last 30 min: its transfers ran at [\d.]+ MB\/s, its peers' at [\d.]+ MB\/s/);
  });
});
