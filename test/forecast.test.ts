/**
 * The outlook's forecasting core (src/features/outlook/, docs/OUTLOOK.md): the pure parts on
 * small hand-made series, the library loaded from our CommonJS build, and the honest back-test:
 * rolling-origin evaluation on seeded synthetic histories whose structure is known, against
 * seasonal naive. No database; a few seconds of CPU.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backtest, maseScale, originsOf, type BacktestScore } from '../src/features/outlook/backtest';
import { cleanHistory, conformalQuantile, forecastDaily, methodFor, monthlyTotals, seasonalNaive, totalOf, type DailyForecast } from '../src/features/outlook/forecast';
import { levelChange, pureNoise, trendWeekly } from '../src/tools/demo/history';

describe('the history as the model takes it', () => {
  it('drops leading missing days, interpolates interior ones, carries the last day over trailing ones, keeps zeros', () => {
    assert.deepEqual(cleanHistory([Number.NaN, null, 2, Number.NaN, Number.NaN, 8, 0, -1, undefined]), { values: [2, 4, 6, 8, 0, 0, 0], dropped: 2, imputed: 4 });
    assert.deepEqual(cleanHistory([Number.NaN]), { values: [], dropped: 1, imputed: 0 });
  });

  it('chooses the method by the days of history', () => {
    assert.equal(methodFor(5).name, 'mean of 5 days');
    assert.equal(methodFor(14).name, 'MSTL(7) + AutoETS');
    assert.equal(methodFor(729).name, 'MSTL(7) + AutoETS');
    assert.equal(methodFor(730).name, 'MSTL(7, 365) + AutoETS');
  });
});

describe('seasonal naive', () => {
  it("repeats the last week, its spread growing with the square root of the weeks ahead", () => {
    const f = seasonalNaive([1, 2, 3, 4, 5, 6, 7, 2, 3, 4, 5, 6, 7, 8], 15);
    assert.equal(f.method, 'seasonal naive (7)');
    assert.deepEqual(f.point, [2, 3, 4, 5, 6, 7, 8, 2, 3, 4, 5, 6, 7, 8, 2]);
    assert.ok(Math.abs(f.spread80[7]! / f.spread80[0]! - Math.SQRT2) < 1e-12);
    assert.ok(Math.abs(f.spread80[14]! / f.spread80[0]! - Math.sqrt(3)) < 1e-12);
  });
});

/** A forecast of `days` days, each with spread `spread` at 80 % (as if from a model). */
function flat(days: number, spread: (h: number) => number): DailyForecast {
  const spread80 = Array.from({ length: days }, (_, h) => spread(h));
  return {
    method: 'test', historyDays: 0, imputedDays: 0, calibration: null,
    point: Array(days).fill(10), lower80: [], upper80: [], lower95: [], upper95: [],
    spread80, spread95: spread80.map((s) => (s * 1.959963984540054) / 1.2815515655446004),
  };
}

describe('totals of forecast days', () => {
  it('is between independent days (√n) and days that all err alike (n), as the spread grows', () => {
    const independent = totalOf(flat(28, () => 1));
    assert.ok(Math.abs(independent.upper80 - 280 - Math.sqrt(28)) < 1e-9);
    const growing = totalOf(flat(28, (h) => Math.sqrt(1 + h)));
    const width = growing.upper80 - growing.point;
    assert.ok(width > Math.sqrt(28 * 1) && width < Array.from({ length: 28 }, (_, h) => Math.sqrt(1 + h)).reduce((a, b) => a + b, 0));
  });

  it('groups days by calendar month (UTC), marking months the forecast covers only in part', () => {
    const months = monthlyTotals(flat(70, () => 1), '2028-01-20');
    assert.deepEqual(months.map((m) => [m.month, m.days, m.partial, m.point]), [['2028-01', 12, true, 120], ['2028-02', 29, false, 290], ['2028-03', 29, true, 290]]);
    assert.throws(() => monthlyTotals(flat(3, () => 1), '20 January'), RangeError);
  });

  it('takes the conformal quantile with the finite-sample correction', () => {
    assert.equal(conformalQuantile([5, 1, 4, 2, 3, 6, 7, 8, 9, 10], 0.8), 9); // ⌈11 · 0.8⌉ = 9th
  });
});

describe('the forecast', () => {
  it('loads the library from the CommonJS build and gives nested intervals, clamped at zero', async () => {
    const y = trendWeekly({ days: 120, seed: 3 });
    const f = await forecastDaily(y, 30);
    assert.equal(f.method, 'MSTL(7) + AutoETS');
    assert.equal(f.point.length, 30);
    assert.ok(f.calibration && f.calibration.origins === 4 && f.calibration.points === 112);
    for (let h = 0; h < 30; h++) {
      assert.ok(f.lower95[h]! <= f.lower80[h]! && f.lower80[h]! <= f.point[h]! && f.point[h]! <= f.upper80[h]! && f.upper80[h]! <= f.upper95[h]!, `day ${h}`);
      assert.ok(f.lower95[h]! >= 0);
    }
  });

  it('says what it did with little history, a constant one, and none', async () => {
    assert.equal((await forecastDaily([3, 4, 5], 2)).method, 'mean of 3 days');
    const zeros = await forecastDaily(Array(40).fill(0), 3);
    assert.equal(zeros.method, 'constant (40 equal days)');
    assert.deepEqual(zeros.upper95, [0, 0, 0]);
    await assert.rejects(forecastDaily([Number.NaN], 3), RangeError);
    await assert.rejects(forecastDaily([1, 2], 0), RangeError);
  });
});

describe('the rolling-origin back-test', () => {
  const OPTIONS = { horizon: 28, origins: 8, step: 14 };
  const SEEDS = [1, 2, 3, 4];

  it('places origins so that the last leaves exactly one horizon, and scales MASE by the in-sample seasonal-naive error', () => {
    assert.deepEqual(originsOf(400, OPTIONS), [274, 288, 302, 316, 330, 344, 358, 372]);
    assert.throws(() => originsOf(100, OPTIONS), RangeError);
    assert.equal(maseScale([1, 2, 3, 4, 5, 6, 7, 3, 4], 7), 2);
  });

  /** Scores over the seeds, averaged (each seed scores the same number of days). */
  async function score(series: (seed: number) => number[]): Promise<BacktestScore & { worstCoverage80: number }> {
    const scores = await Promise.all(SEEDS.map((seed) => backtest(series(seed), (history, horizon) => forecastDaily(history, horizon), OPTIONS)));
    const avg = (pick: (s: BacktestScore) => number) => scores.reduce((sum, s) => sum + pick(s), 0) / scores.length;
    return {
      ...scores[0]!,
      mase: avg((s) => s.mase), baselineMase: avg((s) => s.baselineMase), relativeMae: avg((s) => s.relativeMae),
      coverage80: avg((s) => s.coverage80), coverage95: avg((s) => s.coverage95),
      worstCoverage80: Math.min(...scores.map((s) => s.coverage80)),
    };
  }

  function assertCalibrated(s: BacktestScore): void {
    assert.ok(s.coverage80 >= 0.65 && s.coverage80 <= 0.92, `80 % interval holds ${s.coverage80}`);
    assert.ok(s.coverage95 >= 0.85 && s.coverage95 <= 0.99, `95 % interval holds ${s.coverage95}`);
  }

  it('(a) trend + weekly season: beats seasonal naive clearly, intervals hold about 80 %', async () => {
    const s = await score((seed) => trendWeekly({ days: 400, seed }));
    assert.ok(s.mase < 1, `MASE ${s.mase}`);
    assert.ok(s.mase < s.baselineMase && s.relativeMae < 0.85, `MAE against seasonal naive ${s.relativeMae}`);
    assertCalibrated(s);
  });

  it('(b) weekly season with a level step in the history: beats seasonal naive, intervals hold about 80 %', async () => {
    const s = await score((seed) => levelChange({ days: 400, seed, changeAt: 200 }));
    assert.ok(s.mase < 1, `MASE ${s.mase}`);
    assert.ok(s.mase < s.baselineMase && s.relativeMae < 0.92, `MAE against seasonal naive ${s.relativeMae}`);
    assertCalibrated(s);
  });

  it('(c) pure noise: no better than the noise floor (seasonal naive errs by √2 the noise), intervals still hold', async () => {
    const s = await score((seed) => pureNoise({ days: 400, seed }));
    // With nothing to find, the model's error is the noise and seasonal naive's the difference of
    // two noises: a ratio of 1/√2 ≈ 0.71 is all there is to gain; much below would be a leak.
    assert.ok(s.relativeMae > 0.62 && s.relativeMae < 0.85, `MAE against seasonal naive ${s.relativeMae}`);
    assertCalibrated(s);
  });
});
