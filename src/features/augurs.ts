/**
 * Loading Grafana's augurs (`@bsull/augurs`), which the outlook's forecasts and two detectors
 * use. The package is ESM only, so each module is loaded with a dynamic `import()` (tsc keeps it
 * as is for module node16), and its WebAssembly must be instantiated by hand from the .wasm file
 * next to it: the package's default loader would `fetch` a file: URL, which Node refuses. One
 * definition of both steps, and of "once per process, tried again after a failure".
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The augurs modules the probe uses. */
export type AugursModuleName = 'mstl' | 'outlier' | 'changepoint';

/** Instantiates an imported augurs module's WebAssembly (once per module and process). */
export function instantiated<M extends { initSync(input: { module: Buffer }): unknown }>(module: M, name: AugursModuleName): M {
  module.initSync({ module: readFileSync(join(dirname(require.resolve(`@bsull/augurs/${name}`)), `${name}_bg.wasm`)) });
  return module;
}

/** `load` run once; its answer kept, or, if it failed, run again on the next call. */
export function loadOnce<T>(load: () => Promise<T>): () => Promise<T> {
  let loading: Promise<T> | undefined;
  return () => {
    loading ??= load().catch((err: unknown) => {
      loading = undefined;
      throw err;
    });
    return loading;
  };
}
