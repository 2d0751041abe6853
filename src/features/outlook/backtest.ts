/**
 * Rolling-origin evaluation of a forecaster (docs/OUTLOOK.md): the honest test of the outlook.
 * The series is cut at several origins; at each, the forecaster sees only the days before it
 * and forecasts the next `horizon` days, which are then compared with what happened, next to
 * the seasonal-naive baseline from the same origin. Pure apart from awaiting the forecaster.
 *
 * Scores: MASE (mean absolute error over the in-sample MAE of the seasonal-naive one-step
 * forecast, Hyndman & Koehler 2006), for the model and for the baseline; the ratio of their
 * absolute errors on the same held-out days (below 1: the model beats seasonal naive); and the
 * share of held-out days inside the 80 % and 95 % intervals, and of horizon sums inside the
 * sum's 80 % interval.
 */
import { cleanHistory, seasonalNaive, totalOf, type DailyForecast } from './forecast';

export type Forecaster = (history: readonly number[], horizon: number) => Promise<DailyForecast> | DailyForecast;

export interface BacktestOptions {
  /** Days forecast from each origin. */
  horizon: number;
  /** How many origins; the last leaves exactly `horizon` days after it. */
  origins: number;
  /** Days between consecutive origins. */
  step: number;
  /** Season of the MASE scale and of the baseline (7: weekly). */
  period?: number;
}

export interface BacktestScore {
  method: string;
  origins: number;
  /** Held-out days scored. */
  points: number;
  /** Mean over origins of the model's MASE. */
  mase: number;
  /** The same for the seasonal-naive baseline. */
  baselineMase: number;
  /** Σ|model error| / Σ|seasonal-naive error| over the same days. */
  relativeMae: number;
  /** Mean over origins of the symmetric MAPE, in % (0..200). */
  smape: number;
  coverage80: number;
  coverage95: number;
  /** The baseline's 80 % coverage, for comparison. */
  baselineCoverage80: number;
  /** Share of origins whose horizon total fell inside the total's 80 % interval. */
  totalCoverage80: number;
}

/** The in-sample MAE of the seasonal-naive one-step forecast: MASE's denominator. */
export function maseScale(history: readonly number[], period = 7): number {
  const m = history.length > period ? period : 1;
  let sum = 0;
  for (let i = m; i < history.length; i++) sum += Math.abs(history[i]! - history[i - m]!);
  return history.length > m ? sum / (history.length - m) : Number.NaN;
}

/** The origins (indices of the first held-out day), oldest first. */
export function originsOf(length: number, options: BacktestOptions): number[] {
  const last = length - options.horizon;
  const origins = Array.from({ length: options.origins }, (_, k) => last - (options.origins - 1 - k) * options.step);
  if (origins[0]! < 2) throw new RangeError(`series of ${length} days too short for ${options.origins} origins ${options.step} days apart with a ${options.horizon}-day horizon`);
  return origins;
}

function smapeOf(actual: readonly number[], forecast: readonly number[]): number {
  let sum = 0;
  for (let i = 0; i < actual.length; i++) {
    const denominator = Math.abs(actual[i]!) + Math.abs(forecast[i]!);
    sum += denominator === 0 ? 0 : (200 * Math.abs(actual[i]! - forecast[i]!)) / denominator;
  }
  return sum / actual.length;
}

const mean = (xs: readonly number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;

/** Evaluates `forecaster` on `series` (cleaned as the forecaster would: cleanHistory). */
export async function backtest(series: readonly number[], forecaster: Forecaster, options: BacktestOptions): Promise<BacktestScore> {
  const y = cleanHistory(series).values;
  const period = options.period ?? 7;
  const mases: number[] = [];
  const baselineMases: number[] = [];
  const smapes: number[] = [];
  let modelAbs = 0;
  let baselineAbs = 0;
  let points = 0;
  let in80 = 0;
  let in95 = 0;
  let baselineIn80 = 0;
  let totalsIn80 = 0;
  let method = '';
  const origins = originsOf(y.length, options);
  for (const origin of origins) {
    const history = y.slice(0, origin);
    const actual = y.slice(origin, origin + options.horizon);
    const forecast = await forecaster(history, options.horizon);
    const baseline = seasonalNaive(history, options.horizon, period);
    method = forecast.method;
    const scale = maseScale(history, period);
    let abs = 0;
    let absBaseline = 0;
    actual.forEach((a, h) => {
      abs += Math.abs(a - forecast.point[h]!);
      absBaseline += Math.abs(a - baseline.point[h]!);
      if (a >= forecast.lower80[h]! && a <= forecast.upper80[h]!) in80++;
      if (a >= forecast.lower95[h]! && a <= forecast.upper95[h]!) in95++;
      if (a >= baseline.lower80[h]! && a <= baseline.upper80[h]!) baselineIn80++;
    });
    const total = totalOf(forecast);
    const actualTotal = actual.reduce((s, a) => s + a, 0);
    if (actualTotal >= total.lower80 && actualTotal <= total.upper80) totalsIn80++;
    mases.push(abs / actual.length / scale);
    baselineMases.push(absBaseline / actual.length / scale);
    smapes.push(smapeOf(actual, forecast.point));
    modelAbs += abs;
    baselineAbs += absBaseline;
    points += actual.length;
  }
  return {
    method,
    origins: origins.length,
    points,
    mase: mean(mases),
    baselineMase: mean(baselineMases),
    relativeMae: baselineAbs === 0 ? (modelAbs === 0 ? 1 : Number.POSITIVE_INFINITY) : modelAbs / baselineAbs,
    smape: mean(smapes),
    coverage80: in80 / points,
    coverage95: in95 / points,
    baselineCoverage80: baselineIn80 / points,
    totalCoverage80: totalsIn80 / origins.length,
  };
}
