/**
 * Scoring the detectors' evaluations: true and false positives over simulated scenarios, and
 * the random draws the scenarios are made of (seeded: pass rng() of src/tools/demo/simulator.ts).
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';

/** A standard normal draw (Box-Muller). */
export function gaussian(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

/** A uniform draw in [a, b). */
export const between = (r: () => number, a: number, b: number) => a + (b - a) * r();

/**
 * A Poisson draw: Knuth's method, or the normal approximation above `normalAbove` (a speed
 * bound; each evaluation keeps the one its figures were measured with, so its seeded draws stay).
 */
export function poisson(r: () => number, lambda: number, normalAbove: number): number {
  if (lambda > normalAbove) return Math.max(0, Math.round(lambda + Math.sqrt(lambda) * gaussian(r)));
  const l = Math.exp(-lambda);
  let k = 0;
  let p = 1;
  do {
    k++;
    p *= r();
  } while (p > l);
  return k - 1;
}

/** A binomial draw: n trials, or the normal approximation when n·p and n·(1−p) both exceed `normalAbove`. */
export function binomial(r: () => number, n: number, p: number, normalAbove = Infinity): number {
  if (n * p > normalAbove && n * (1 - p) > normalAbove) return Math.min(n, Math.max(0, Math.round(n * p + Math.sqrt(n * p * (1 - p)) * gaussian(r))));
  let x = 0;
  for (let i = 0; i < n; i++) if (r() < p) x++;
  return x;
}

/** Counts true/false positives over scenarios; reports and checks precision and recall. */
export class Score {
  tp = 0;
  fp = 0;
  fn = 0;
  add(found: Iterable<string>, truth: Iterable<string>): void {
    const f = new Set(found);
    const t = new Set(truth);
    for (const k of f) if (t.has(k)) this.tp++;
      else this.fp++;
    for (const k of t) if (!f.has(k)) this.fn++;
  }
  get precision(): number {
    return this.tp + this.fp === 0 ? 1 : this.tp / (this.tp + this.fp);
  }
  get recall(): number {
    return this.tp + this.fn === 0 ? 1 : this.tp / (this.tp + this.fn);
  }
  check(t: TestContext, name: string, floors: { precision: number; recall: number }): void {
    t.diagnostic(`${name}: precision ${this.precision.toFixed(3)} recall ${this.recall.toFixed(3)} (tp ${this.tp}, fp ${this.fp}, fn ${this.fn})`);
    assert.ok(this.precision >= floors.precision, `${name} precision ${this.precision} < ${floors.precision}`);
    assert.ok(this.recall >= floors.recall, `${name} recall ${this.recall} < ${floors.recall}`);
  }
}
