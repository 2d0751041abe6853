/**
 * The two parts of the augurs library (Grafana's time-series library in Rust compiled to
 * WebAssembly, `@bsull/augurs`) the detectors use: the MAD outlier detector (pool-outlier) and
 * the Bayesian online changepoint detector with a Normal-Gamma prior (level-change). Both are
 * well-tested implementations of methods that are easy to get subtly wrong (augurs' MAD is the
 * "double MAD" with Harrell-Davis medians, so skewed peers are handled).
 *
 * The package is ESM only: each module is loaded once with a dynamic `import()` and its WASM
 * instantiated from the file next to it with `initSync` (as src/features/outlook/forecast.ts
 * does). The detectors themselves (detectors.ts) stay pure: they get these as functions.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Changepoints, OutlierBands } from './detectors';

type Outlier = typeof import('@bsull/augurs/outlier', { with: { 'resolution-mode': 'import' } });
type Changepoint = typeof import('@bsull/augurs/changepoint', { with: { 'resolution-mode': 'import' } });

export interface StatisticsLibrary {
  outlierBands: OutlierBands;
  changepoints: Changepoints;
}

let loading: Promise<StatisticsLibrary> | undefined;

/** The library's outlier and changepoint modules, loaded and instantiated once per process. */
export function loadStatisticsLibrary(): Promise<StatisticsLibrary> {
  loading ??= (async () => {
    const outlier: Outlier = await import('@bsull/augurs/outlier');
    outlier.initSync({ module: readFileSync(join(dirname(require.resolve('@bsull/augurs/outlier')), 'outlier_bg.wasm')) });
    const changepoint: Changepoint = await import('@bsull/augurs/changepoint');
    changepoint.initSync({ module: readFileSync(join(dirname(require.resolve('@bsull/augurs/changepoint')), 'changepoint_bg.wasm')) });
    return { outlierBands: madBands(outlier), changepoints: normalGammaChangepoints(changepoint) };
  })().catch((err: unknown) => {
    loading = undefined; // a later call may try again
    throw err;
  });
  return loading;
}

/** The MAD detector's normal band; null when the peers' deviation is 0 (the library refuses to divide by it). */
function madBands(outlier: Outlier): OutlierBands {
  return (series, sensitivity) => {
    const detector = outlier.OutlierDetector.mad({ sensitivity });
    try {
      const band = detector.detect(series.map((s) => Float64Array.from(s))).clusterBand;
      return band && band.min.length ? { min: band.min[0]!, max: band.max[0]! } : null;
    } catch (err) {
      if (/division by zero/.test(String(err))) return null;
      throw err;
    } finally {
      detector.free();
    }
  };
}

/**
 * Start indices of the new segments the Normal-Gamma detector finds. The library answers 0 and,
 * for each change, the last index of the old segment (a step at 100 is reported as 99).
 */
function normalGammaChangepoints(changepoint: Changepoint): Changepoints {
  return (y, hazardHours) => {
    const detector = changepoint.ChangepointDetector.normalGamma({ hazardLambda: hazardHours });
    try {
      return detector.detectChangepoints(Float64Array.from(y)).indices.filter((i) => i > 0).map((i) => i + 1);
    } finally {
      detector.free();
    }
  };
}
