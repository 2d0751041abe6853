/**
 * The two parts of the augurs library (Grafana's time-series library in Rust compiled to
 * WebAssembly, `@bsull/augurs`) the detectors use: the MAD outlier detector (pool-outlier) and
 * the Bayesian online changepoint detector with a Normal-Gamma prior (level-change). Both are
 * well-tested implementations of methods that are easy to get subtly wrong (augurs' MAD is the
 * "double MAD" with Harrell-Davis medians, so skewed peers are handled).
 *
 * The package is ESM only: each module is loaded once with a dynamic `import()` and its WASM
 * instantiated from the file next to it (src/features/augurs.ts). The detectors themselves (detectors.ts) stay pure: they get these as functions.
 */
import { instantiated, loadOnce } from '../augurs';
import type { Changepoints, OutlierBands } from './detectors';

type Outlier = typeof import('@bsull/augurs/outlier', { with: { 'resolution-mode': 'import' } });
type Changepoint = typeof import('@bsull/augurs/changepoint', { with: { 'resolution-mode': 'import' } });

export interface StatisticsLibrary {
  outlierBands: OutlierBands;
  changepoints: Changepoints;
}

/** The library's outlier and changepoint modules, loaded and instantiated once per process. */
export const loadStatisticsLibrary: () => Promise<StatisticsLibrary> = loadOnce(async () => {
  const outlier: Outlier = instantiated(await import('@bsull/augurs/outlier'), 'outlier');
  const changepoint: Changepoint = instantiated(await import('@bsull/augurs/changepoint'), 'changepoint');
  return { outlierBands: madBands(outlier), changepoints: normalGammaChangepoints(changepoint) };
});

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
