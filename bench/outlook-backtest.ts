/**
 * `tsc -p bench/tsconfig.json && node dist/bench/outlook-backtest.js [--seeds N] [--uncalibrated]`
 *
 * The outlook's back-test table (docs/OUTLOOK.md): rolling-origin evaluation of the forecast
 * (src/features/outlook/forecast.ts) against seasonal naive, on synthetic histories of known
 * structure and on the demo's simulated traffic, each with N seeds (default 5), scores pooled
 * over seeds. CPU only, no database; about a minute on one core. Prints a Markdown table.
 */
import { parseArgs } from 'node:util';
import { backtest, type BacktestOptions, type BacktestScore } from '../src/features/outlook/backtest';
import { forecastDaily } from '../src/features/outlook/forecast';
import { demoHistory, levelChange, pureNoise, siteHistory, trendWeekly, trendWeeklyYearly } from '../src/tools/demo/history';

interface Case {
  name: string;
  series: (seed: number) => number[];
  options: BacktestOptions;
}

const SHORT: BacktestOptions = { horizon: 28, origins: 8, step: 14 };

const CASES: Case[] = [
  { name: '(a) trend + weekly season, 400 d', series: (seed) => trendWeekly({ days: 400, seed }), options: SHORT },
  { name: '(b) weekly season + level step ×1.5 at day 200, 400 d', series: (seed) => levelChange({ days: 400, seed, changeAt: 200 }), options: SHORT },
  { name: "(b') the same step at day 300, inside the first origins' horizons", series: (seed) => levelChange({ days: 400, seed, changeAt: 300 }), options: SHORT },
  { name: '(c) pure noise, 400 d', series: (seed) => pureNoise({ days: 400, seed }), options: SHORT },
  { name: '(d) trend + weekly + yearly season, 1100 d', series: (seed) => trendWeeklyYearly({ days: 1100, seed }), options: SHORT },
  { name: 'demo traffic, bytes written, 400 d', series: (seed) => demoHistory({ days: 400, seed }).written, options: SHORT },
  { name: 'demo traffic, bytes read, 400 d', series: (seed) => demoHistory({ days: 400, seed }).read, options: SHORT },
  {
    name: 'demo --history-days 400 (trend, weekly season, level change at day 266)',
    series: (seed) => siteHistory({ firstDayMs: Date.UTC(2025, 0, 1), days: 400, seed, level: 1e12 }),
    options: SHORT,
  },
  { name: '(a) at 91 d ahead (3 months), 500 d', series: (seed) => trendWeekly({ days: 500, seed }), options: { horizon: 91, origins: 4, step: 28 } },
  { name: '(d) at 182 d ahead (6 months), 1300 d', series: (seed) => trendWeeklyYearly({ days: 1300, seed }), options: { horizon: 182, origins: 3, step: 56 } },
  { name: '(d) at 365 d ahead (12 months), 1500 d', series: (seed) => trendWeeklyYearly({ days: 1500, seed }), options: { horizon: 365, origins: 2, step: 91 } },
];

/** Scores of several seeds pooled: means of the per-seed figures (equal points per seed). */
function pool(scores: BacktestScore[]): BacktestScore {
  const avg = (pick: (s: BacktestScore) => number) => scores.reduce((sum, s) => sum + pick(s), 0) / scores.length;
  return {
    method: [...new Set(scores.map((s) => s.method))].join(' / '),
    origins: scores.reduce((n, s) => n + s.origins, 0),
    points: scores.reduce((n, s) => n + s.points, 0),
    mase: avg((s) => s.mase),
    baselineMase: avg((s) => s.baselineMase),
    relativeMae: avg((s) => s.relativeMae),
    smape: avg((s) => s.smape),
    coverage80: avg((s) => s.coverage80),
    coverage95: avg((s) => s.coverage95),
    baselineCoverage80: avg((s) => s.baselineCoverage80),
    totalCoverage80: avg((s) => s.totalCoverage80),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { seeds: { type: 'string', default: '5' }, uncalibrated: { type: 'boolean', default: false } } });
  const seeds = Array.from({ length: Number(values.seeds) }, (_, i) => 101 + i);
  const calibrate = !values.uncalibrated;
  const started = Date.now();
  const f = (pct: number) => `${(100 * pct).toFixed(0)} %`;
  console.log(`| history | method | horizon × origins × seeds | MASE model | MASE seasonal naive | MAE model / seasonal naive | sMAPE | in 80 % interval | in 95 % interval | horizon total in its 80 % interval | seasonal naive in its 80 % |`);
  console.log(`| --- | --- | --- | --: | --: | --: | --: | --: | --: | --: | --: |`);
  for (const c of CASES) {
    const scores: BacktestScore[] = [];
    for (const seed of seeds) scores.push(await backtest(c.series(seed), (history, horizon) => forecastDaily(history, horizon, { calibrate }), c.options));
    const s = pool(scores);
    console.log(
      `| ${c.name} | ${s.method} | ${c.options.horizon} d × ${c.options.origins} × ${seeds.length} | ${s.mase.toFixed(2)} | ${s.baselineMase.toFixed(2)} | ${s.relativeMae.toFixed(2)} | ${s.smape.toFixed(1)} % | ${f(s.coverage80)} | ${f(s.coverage95)} | ${f(s.totalCoverage80)} | ${f(s.baselineCoverage80)} |`,
    );
  }
  console.log(`\n(${((Date.now() - started) / 1000).toFixed(1)} s, intervals ${calibrate ? 'calibrated' : 'as the library gives them'}, seeds ${seeds.join(', ')})`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
