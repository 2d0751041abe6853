/**
 * Daily byte histories made up for the outlook's back-test (docs/OUTLOOK.md) and the demo:
 * synthetic series whose structure is known (trend, weekly and yearly seasons, a level change,
 * or none at all), the demo's own simulated traffic summed per day, and the shape of the
 * history `dcache-probe demo --history-days N` writes (siteHistory; site-history.ts writes
 * it as billing rows). Deterministic for a seed, so the back-test's table can be reproduced.
 */
import { rng, TransferGenerator } from './simulator';
import { DAY_MS } from '../../lib';

/** A standard normal draw (Box-Muller) from a uniform source. */
export function gaussian(random: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

/** Weekday factors, Monday first: weekends are quieter. */
export const WEEK: readonly number[] = [1.1, 1.15, 1.12, 1.1, 1.0, 0.75, 0.78];


/** The weekday factor of the UTC day that contains `ms` (WEEK). */
export function weekFactor(ms: number): number {
  return WEEK[(new Date(ms).getUTCDay() + 6) % 7]!;
}

export interface SyntheticOptions {
  days: number;
  seed: number;
  /** Mean bytes per day at the start. */
  level?: number;
  /** Relative noise (standard deviation over the level). */
  noise?: number;
}

function series(options: SyntheticOptions, at: (day: number, level: number) => number): number[] {
  const normal = gaussian(rng(options.seed));
  const level = options.level ?? 1e12;
  const noise = options.noise ?? 0.08;
  return Array.from({ length: options.days }, (_, d) => Math.max(0, at(d, level) + level * noise * normal()));
}

/** (a) A linear trend (+60 % a year) with a weekly season and noise. */
export function trendWeekly(options: SyntheticOptions): number[] {
  return series(options, (d, level) => level * (1 + (0.6 * d) / 365) * WEEK[d % 7]!);
}

/** (b) A weekly season whose level steps up by half at `changeAt` (a new VO starts writing). */
export function levelChange(options: SyntheticOptions & { changeAt: number }): number[] {
  return series(options, (d, level) => level * (d >= options.changeAt ? 1.5 : 1) * WEEK[d % 7]!);
}

/** (c) Noise around a constant level: nothing to find. */
export function pureNoise(options: SyntheticOptions): number[] {
  return series(options, (_, level) => level);
}

/** (d) Trend, weekly and yearly seasons (a summer dip, a winter peak), for histories of years. */
export function trendWeeklyYearly(options: SyntheticOptions): number[] {
  return series(options, (d, level) => level * (1 + (0.4 * d) / 365) * WEEK[d % 7]! * (1 + 0.25 * Math.cos((2 * Math.PI * d) / 365.25)));
}

/**
 * The demo's traffic (src/tools/demo/simulator.ts) as a daily history: `transfersPerDay` of
 * its transfers a day, their bytes summed into written (new files) and read. The demo writes
 * at a steady rate, so this history has no trend and no season: heavy-tailed noise only.
 */
export function demoHistory(options: { days: number; seed: number; transfersPerDay?: number }): { written: number[]; read: number[] } {
  const generator = new TransferGenerator({ seed: options.seed, now: () => 0 });
  const perDay = options.transfersPerDay ?? 400;
  const written: number[] = [];
  const read: number[] = [];
  for (let d = 0; d < options.days; d++) {
    let w = 0;
    let r = 0;
    for (let i = 0; i < perDay; i++) {
      const { mover, reportable } = generator.next();
      if (!reportable || mover.errorcode !== 0) continue;
      if (mover.isnew) w += Number(mover.transfersize) > 0 ? Number(mover.transfersize) : 0;
      else r += Number(mover.transfersize) > 0 ? Number(mover.transfersize) : 0;
    }
    written.push(w);
    read.push(r);
  }
  return { written, read };
}

/** The level change of the demo's history: from this share of its days on, a VO writes more. */
export const SITE_CHANGE_AT = 2 / 3;
/** ... by this factor of the site's volume (the demo's history: atlas starts a campaign). */
export const SITE_CHANGE_FACTOR = 1.3;

export interface SiteHistoryShape {
  /** UTC midnight of the first day. */
  firstDayMs: number;
  days: number;
  seed: number;
  /** Mean bytes per day at the start (before the weekly factor). */
  level: number;
  /** Relative noise (default 0.05). */
  noise?: number;
  /** Growth per year (default +30 %). */
  trendPerYear?: number;
  /** First day (index) of the level change; default: two thirds in, for histories of 3 weeks or more. */
  changeAt?: number | null;
}

/** The day from which the level is changed, or null (too short a history to show one). */
export function siteChangeAt(shape: Pick<SiteHistoryShape, 'days' | 'changeAt'>): number | null {
  if (shape.changeAt !== undefined) return shape.changeAt;
  return shape.days >= 21 ? Math.floor(shape.days * SITE_CHANGE_AT) : null;
}

/**
 * The demo's history, bytes per day: a trend, the weekly season on the real weekdays (so that
 * the week the live demo continues is the same week), a level change, and noise.
 */
export function siteHistory(shape: SiteHistoryShape): number[] {
  const trend = shape.trendPerYear ?? 0.3;
  const changeAt = siteChangeAt(shape);
  return series({ days: shape.days, seed: shape.seed, level: shape.level, noise: shape.noise ?? 0.05 }, (d, level) =>
    level * (1 + (trend * d) / 365) * weekFactor(shape.firstDayMs + d * DAY_MS) * (changeAt !== null && d >= changeAt ? SITE_CHANGE_FACTOR : 1),
  );
}
