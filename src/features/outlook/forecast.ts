/**
 * The capacity outlook's forecasting core (issue 14, docs/OUTLOOK.md): a daily series of bytes
 * in, point forecasts with 80 % and 95 % prediction intervals out, and the method named.
 *
 * Why a library: seasonal decomposition with several periods and an automatically chosen ETS
 * model, with intervals, is easy to get subtly wrong; Grafana's augurs (Rust compiled to
 * WebAssembly, `@bsull/augurs`) does MSTL + AutoETS and is maintained. It is ESM only, so it is
 * loaded once with a dynamic `import()` (which tsc keeps as is for module node16) and its WASM
 * is instantiated from the file next to it with `initSync` (its default loader would `fetch` a
 * file: URL, which Node cannot).
 *
 * Everything else here is pure: the cleaning of the history, the choice of method by how much
 * history there is, the seasonal-naive baseline, and sums over days (months) with intervals.
 * No database, no clock: callers pass the series and, for months, the first forecast day.
 *
 * A series of bytes is never negative: a negative day is missing and every bound is clamped at
 * zero. A signed series (the outlook's growth, written minus removed, `signed: true`) keeps its
 * negative days and is not clamped.
 */
import { instantiated, loadOnce } from '../augurs';
import { DAY_MS } from '../../lib';

type Augurs = typeof import('@bsull/augurs/mstl', { with: { 'resolution-mode': 'import' } });

/** Standard normal quantiles of the two-sided levels we report. */
const Z80 = 1.2815515655446004;
const Z95 = 1.959963984540054;

/** Days of history from which the yearly season is modelled (two full years), and the weekly one. */
export const YEARLY_MIN_DAYS = 730;
export const WEEKLY_MIN_DAYS = 14;

/** A forecast of `point.length` days, the first being the day after the history's last. */
export interface DailyForecast {
  /** What produced it, in words a page can show ("MSTL(7) + AutoETS"). */
  method: string;
  /** Days of history the model saw (leading missing days dropped). */
  historyDays: number;
  /** Of those, days that were missing and filled in (see cleanHistory). */
  imputedDays: number;
  point: number[];
  lower80: number[];
  upper80: number[];
  lower95: number[];
  upper95: number[];
  /**
   * The 80 % and 95 % half-widths before clamping at zero, per day (the spread the sums use).
   * Kept because clamping makes intervals asymmetric and the spread unrecoverable from them.
   */
  spread80: number[];
  spread95: number[];
  /** How the intervals were calibrated on the history's own recent past, or null if not. */
  calibration: Calibration | null;
  /** A signed series (ForecastOptions.signed): nothing was clamped at zero, nor are its totals. */
  signed?: true;
}

/**
 * The empirical calibration of the intervals (split conformal on normalised errors): the model
 * is refitted at a few recent origins of the history itself, and its errors on the days after
 * each, divided by the model's own standard deviation for that day, give the factors by which
 * the library's 80 % and 95 % half-widths must be multiplied to hold 80 % and 95 % of them.
 */
export interface Calibration {
  origins: number;
  /** Held-out days the factors were measured on. */
  points: number;
  /** Days ahead forecast from each origin. */
  horizon: number;
  scale80: number;
  scale95: number;
  /**
   * Sums of days err more alike than days do (a level or trend that is off stays off): the
   * root mean square, over the origins, of each origin's horizon-total error over its modelled
   * standard deviation (see totalOf). At least 1: with a handful of origins it only widens.
   */
  scaleTotal: number;
}

/** Where the calibration looks: up to 4 origins, 14 days apart, 28 days ahead (less if the horizon is shorter). */
export const CALIBRATION = { origins: 4, step: 14, horizon: 28 } as const;

/** The augurs MSTL module, loaded and instantiated once per process (src/features/augurs.ts). */
export const loadAugurs: () => Promise<Augurs> = loadOnce(async () => instantiated(await import('@bsull/augurs/mstl'), 'mstl'));

export interface CleanHistory {
  values: number[];
  /** Leading days dropped because they were missing (before the first known day). */
  dropped: number;
  /** Interior or trailing days that were missing and filled in. */
  imputed: number;
}

/** A missing day: not a finite number, or negative (bytes cannot be; a signed series can). Zero is a real zero. */
export function isMissing(value: number | null | undefined, signed = false): boolean {
  return value === null || value === undefined || !Number.isFinite(value) || (!signed && value < 0);
}

/**
 * The history as the model takes it. A missing day (NaN, null, negative: the probe was not
 * counting) is not a zero (a day without transfers, kept as is). Leading missing days are
 * dropped; interior ones are filled by linear interpolation between the known days around them;
 * trailing ones carry the last known day forward (the caller sees how many in `imputed`).
 */
export function cleanHistory(daily: readonly (number | null | undefined)[], signed = false): CleanHistory {
  const first = daily.findIndex((v) => !isMissing(v, signed));
  if (first < 0) return { values: [], dropped: daily.length, imputed: 0 };
  const values = daily.slice(first).map((v) => (isMissing(v, signed) ? Number.NaN : (v as number)));
  let imputed = 0;
  let lastKnown = 0;
  for (let i = 1; i < values.length; i++) {
    if (!Number.isNaN(values[i]!)) {
      lastKnown = i;
      continue;
    }
    let next = i;
    while (next < values.length && Number.isNaN(values[next]!)) next++;
    const from = values[lastKnown]!;
    for (let j = i; j < next; j++) {
      values[j] = next < values.length ? from + ((values[next]! - from) * (j - lastKnown)) / (next - lastKnown) : from;
      imputed++;
    }
    i = next - 1;
  }
  return { values, dropped: first, imputed };
}

/** The method for a history of `days` (after cleaning). */
export function methodFor(days: number): { periods: number[]; name: string } | { periods: null; name: string } {
  if (days >= YEARLY_MIN_DAYS) return { periods: [7, 365], name: 'MSTL(7, 365) + AutoETS' };
  if (days >= WEEKLY_MIN_DAYS) return { periods: [7], name: 'MSTL(7) + AutoETS' };
  return { periods: null, name: `mean of ${days} day${days === 1 ? '' : 's'}` };
}

function fromSpread(method: string, history: CleanHistory, point: readonly number[], sd80: readonly number[], sd95: readonly number[] = sd80, calibration: Calibration | null = null, signed = false): DailyForecast {
  const clamp = signed ? (x: number) => x : (x: number) => Math.max(0, x);
  return {
    method,
    historyDays: history.values.length,
    imputedDays: history.imputed,
    point: point.map(clamp),
    lower80: point.map((p, i) => clamp(p - Z80 * sd80[i]!)),
    upper80: point.map((p, i) => clamp(p + Z80 * sd80[i]!)),
    lower95: point.map((p, i) => clamp(p - Z95 * sd95[i]!)),
    upper95: point.map((p, i) => clamp(p + Z95 * sd95[i]!)),
    spread80: sd80.map((s) => Z80 * s),
    spread95: sd95.map((s) => Z95 * s),
    calibration,
    ...(signed ? { signed: true as const } : {}),
  };
}

/** Standard deviation of a forecast from its interval at a given z (symmetric, unclamped). */
function sdFrom(point: readonly number[], upper: readonly number[] | undefined, z: number): number[] {
  return point.map((p, i) => Math.max(0, ((upper?.[i] ?? p) - p) / z));
}

/** Too little history for a season or a trend: the mean, with the spread of the days seen. */
function meanForecast(history: CleanHistory, horizon: number, name: string, signed = false): DailyForecast {
  const y = history.values;
  const mean = y.reduce((s, v) => s + v, 0) / y.length;
  const variance = y.length > 1 ? y.reduce((s, v) => s + (v - mean) ** 2, 0) / (y.length - 1) : 0;
  const sd = Math.sqrt(variance * (1 + 1 / y.length)); // a new day's spread plus the mean's own
  return fromSpread(name, history, Array(horizon).fill(mean), Array(horizon).fill(sd), undefined, null, signed);
}

export interface ForecastOptions {
  /**
   * Calibrate the intervals on the history's own recent past (see Calibration; default true).
   * Costs up to CALIBRATION.origins more fits. Off: the intervals as the library gives them.
   */
  calibrate?: boolean;
  /** The series may be negative (growth): negative days are kept, nothing is clamped at zero. */
  signed?: boolean;
}

/** A fitted model's forecast: point and standard deviation per day (unclamped, normal). */
interface ModelForecast {
  point: number[];
  sd: number[];
}

function fitAndPredict(augurs: Augurs, periods: number[], y: readonly number[], horizon: number): ModelForecast {
  const model = augurs.MSTL.ets(periods);
  try {
    model.fit(Float64Array.from(y));
    const f = model.predict(horizon, 0.8);
    // The library's intervals are normal (symmetric): one level gives the spread of every level.
    return { point: f.point, sd: sdFrom(f.point, f.intervals?.upper, Z80) };
  } finally {
    model.free();
  }
}

/** The q-quantile with the split-conformal finite-sample correction (the ⌈(n+1)q⌉-th smallest). */
export function conformalQuantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.ceil((sorted.length + 1) * q));
  return sorted[rank - 1] ?? Number.NaN;
}

/** Refits at recent origins of the history (same method) and measures the interval factors. */
function calibrate(augurs: Augurs, periods: number[], minDays: number, y: readonly number[], horizon: number): Calibration | null {
  const h = Math.min(horizon, CALIBRATION.horizon);
  const errors: number[] = [];
  const fits: { origin: number; f: ModelForecast }[] = [];
  for (let k = 0; k < CALIBRATION.origins; k++) {
    const origin = y.length - h - k * CALIBRATION.step;
    if (origin < minDays) break;
    const f = fitAndPredict(augurs, periods, y.slice(0, origin), h);
    for (let i = 0; i < h; i++) if (f.sd[i]! > 0) errors.push(Math.abs(y[origin + i]! - f.point[i]!) / f.sd[i]!);
    fits.push({ origin, f });
  }
  if (fits.length < 2 || errors.length < 20) return null;
  const scale80 = conformalQuantile(errors, 0.8) / Z80;
  // Each origin's horizon total against the total's σ as totalOf computes it from the
  // day-calibrated spreads.
  const totalErrors = fits.map(({ origin, f }) => {
    let error = 0;
    for (let i = 0; i < h; i++) error += y[origin + i]! - f.point[i]!;
    const sigma = totalSigma(f.sd.map((s) => s * scale80), 0, h);
    return sigma > 0 ? (error / sigma) ** 2 : 0;
  });
  const scaleTotal = Math.max(1, Math.sqrt(totalErrors.reduce((a, b) => a + b, 0) / totalErrors.length));
  return { origins: fits.length, points: errors.length, horizon: h, scale80, scale95: conformalQuantile(errors, 0.95) / Z95, scaleTotal };
}

/**
 * Forecasts the `horizon` days after a daily history (oldest first; missing days as NaN or
 * null, see cleanHistory). Two full years of history: MSTL with weekly and yearly seasons;
 * two weeks: weekly only; less: the mean. The trend of the deseasonalised series is AutoETS
 * (chosen by AICc among error/trend forms, damped trends included). The intervals are then
 * calibrated on the history's own recent past (Calibration), where there is enough of it.
 * Forecasts and interval bounds are clamped at zero (not for a signed series, options.signed).
 */
export async function forecastDaily(daily: readonly (number | null | undefined)[], horizon: number, options: ForecastOptions = {}): Promise<DailyForecast> {
  if (!Number.isInteger(horizon) || horizon < 1) throw new RangeError(`horizon must be a positive whole number of days, not ${horizon}`);
  const signed = options.signed === true;
  const history = cleanHistory(daily, signed);
  if (history.values.length === 0) throw new RangeError('no known day in the history: nothing to forecast from');
  const method = methodFor(history.values.length);
  if (method.periods === null) return meanForecast(history, horizon, method.name, signed);
  // Every day the same (often all zeros: a VO that never wrote): nothing to model, and the
  // library's fit would only add rounding noise to it.
  if (history.values.every((v) => v === history.values[0])) return meanForecast(history, horizon, `constant (${history.values.length} equal days)`, signed);
  const augurs = await loadAugurs();
  const f = fitAndPredict(augurs, method.periods, history.values, horizon);
  const minDays = method.periods.includes(365) ? YEARLY_MIN_DAYS : WEEKLY_MIN_DAYS;
  const calibration = options.calibrate === false ? null : calibrate(augurs, method.periods, minDays, history.values, horizon);
  const sd80 = calibration ? f.sd.map((s) => s * calibration.scale80) : f.sd;
  const sd95 = calibration ? f.sd.map((s) => s * calibration.scale95) : f.sd;
  return fromSpread(method.name, history, f.point, sd80, sd95, calibration, signed);
}

/**
 * The seasonal-naive baseline: each day as the same weekday of the history's last week (the
 * last day when the history is shorter than the period). Its spread is that of the history's
 * seasonal differences, growing with the square root of the number of periods ahead (Hyndman &
 * Athanasopoulos, Forecasting: Principles and Practice, 5.5).
 */
export function seasonalNaive(daily: readonly (number | null | undefined)[], horizon: number, period = 7): DailyForecast {
  const history = cleanHistory(daily);
  const y = history.values;
  if (y.length === 0) throw new RangeError('no known day in the history: nothing to forecast from');
  const m = y.length >= period ? period : 1;
  const residuals = y.slice(m).map((v, i) => v - y[i]!);
  const sigma = residuals.length ? Math.sqrt(residuals.reduce((s, r) => s + r * r, 0) / residuals.length) : 0;
  const point = Array.from({ length: horizon }, (_, h) => y[y.length - m + (h % m)]!);
  const sd = Array.from({ length: horizon }, (_, h) => sigma * Math.sqrt(Math.floor(h / m) + 1));
  return fromSpread(`seasonal naive (${m})`, history, point, sd);
}

/** A sum of forecast days (a month, the next 28 days) with its intervals. */
export interface ForecastTotal {
  days: number;
  point: number;
  lower80: number;
  upper80: number;
  lower95: number;
  upper95: number;
}

/**
 * The sum of days `from` (inclusive) to `to` (exclusive) of a forecast. The interval of a sum
 * is not the sum of the intervals (that assumes every day errs the same way) nor the square
 * root of the summed variances (that assumes the days err independently). Each day's error is
 * split in two: the one-step-ahead spread (σ₁, the day's own noise, taken as independent from
 * day to day) and the growth of the spread beyond it (√(σₕ² − σ₁²), the uncertainty of level
 * and trend, which every later day shares, taken as perfectly correlated). So
 *   Var(sum) = n·σ₁² + (Σ √(σₕ² − σ₁²))²,
 * widened by the calibration's scaleTotal when the history's own recent totals erred more than
 * that. docs/OUTLOOK.md reports how well this covers the back-test's 28-day sums.
 */
export function totalOf(forecast: DailyForecast, from = 0, to = forecast.point.length): ForecastTotal {
  const days = Math.max(0, Math.min(to, forecast.point.length) - from);
  let point = 0;
  for (let i = from; i < from + days; i++) point += forecast.point[i]!;
  const widen = forecast.calibration?.scaleTotal ?? 1;
  const w80 = widen * totalSigma(forecast.spread80, from, from + days); // spreads are z·σ: the same formula, scaled
  const w95 = widen * totalSigma(forecast.spread95, from, from + days);
  const clamp = forecast.signed ? (x: number) => x : (x: number) => Math.max(0, x);
  return { days, point, lower80: clamp(point - w80), upper80: point + w80, lower95: clamp(point - w95), upper95: point + w95 };
}

/** σ of the sum of days [from, to) from the per-day σ (see totalOf). */
function totalSigma(sd: readonly number[], from: number, to: number): number {
  const noise = sd[0] ?? 0;
  let correlated = 0;
  for (let i = from; i < to; i++) correlated += Math.sqrt(Math.max(0, sd[i]! ** 2 - noise ** 2));
  return Math.sqrt((to - from) * noise ** 2 + correlated ** 2);
}

/** A calendar month's total of a forecast (UTC), possibly partial at either end. */
export interface MonthTotal extends ForecastTotal {
  /** YYYY-MM */
  month: string;
  /** Whether the forecast covers only part of the month. */
  partial: boolean;
}

/**
 * The forecast's totals per calendar month, given the date of its first day (YYYY-MM-DD, UTC).
 * A month the forecast covers only in part is marked partial (its total is of the days covered).
 */
export function monthlyTotals(forecast: DailyForecast, firstDay: string): MonthTotal[] {
  const start = Date.parse(`${firstDay}T00:00:00Z`);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(firstDay) || Number.isNaN(start)) throw new RangeError(`not a date (YYYY-MM-DD): ${firstDay}`);
  const months: MonthTotal[] = [];
  let from = 0;
  while (from < forecast.point.length) {
    const day = new Date(start + from * DAY_MS);
    const month = day.toISOString().slice(0, 7);
    const daysInMonth = new Date(Date.UTC(day.getUTCFullYear(), day.getUTCMonth() + 1, 0)).getUTCDate();
    const to = Math.min(forecast.point.length, from + daysInMonth - day.getUTCDate() + 1);
    months.push({ month, partial: day.getUTCDate() !== 1 || to - from < daysInMonth, ...totalOf(forecast, from, to) });
    from = to;
  }
  return months;
}
