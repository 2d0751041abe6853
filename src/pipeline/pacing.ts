/**
 * The good citizen: a catch-up that yields to dCache's own billing inserts, and an optional
 * limit. The drain's workers (src/pipeline/drain.ts) ask the Pacer before every claim.
 *
 * Why this signal: what matters is dCache's insert rate, and the database counts it for us,
 * for free: the capture queue's id sequence (src/db/captured-count.ts) grows by one per row
 * dCache inserts, before it commits. A busy machine, a slow disk or a lock make it grow more
 * slowly; we cannot tell which from the rate alone, and need not: we only ask whether *our*
 * work slows it.
 *
 * Why this controller: the probe works for `duty` of each period and pauses for the rest (the
 * pause sized from the time it really worked, batches in flight included, so that long batches
 * do not raise the real duty), and compares the insert rate while it works (until its last
 * batch ended) with the rate while it pauses (from then on). If its work slows dCache (rate
 * while working < `threshold` × rate while pausing), it halves its duty; else it raises it by a
 * step, back to full. A rate fixed by the load (dCache not saturated) shows no difference, and
 * the duty stays full (the work phases then double, up to 8 s, so that the measuring pause
 * costs about 1%); an idle dCache (almost no inserts while the probe works) means no pauses at
 * all: a catch-up runs at full speed. Pauses happen only while the probe is behind (the
 * youngest row of its last batch waited longer than `behindMs`, 10 s): a probe that keeps up
 * with live traffic never pauses, so live latency is untouched. The decisions are pure functions of
 * the samples (decide, step, nextDuty, pauseMs); the Pacer only sleeps and reads the sequence.
 *
 * The limit (pipeline.maxRowsPerSecond, for sites that want one) is a token bucket of claimed
 * rows, one second deep: independent of the above, and on whether or not goodCitizen is.
 */
import type { BatchResult } from './delivery';

/** The controller's constants (not settings: they describe the mechanism, not a site's wish). */
export interface PacingTuning {
  /** One work + pause period, ms. */
  periodMs: number;
  /** Shortest pause, measured from the end of the last batch in flight, ms. */
  minPauseMs: number;
  /** Longest pause, ms (how long the probe may not notice that dCache went idle). */
  maxPauseMs: number;
  /** At full duty and calm, the work phase doubles up to this many times (then one measuring pause per 8 s). */
  maxCalmPeriods: number;
  /** Lowest duty: a catch-up always progresses. */
  minDuty: number;
  /** Work slows dCache when the rate while working is below this × the rate while pausing. */
  threshold: number;
  /** Duty added per period when our work does not slow dCache. */
  increase: number;
  /** Duty multiplied by this when it does. */
  decrease: number;
  /** Below this insert rate (rows/s, while the probe works) dCache is idle: no pauses. */
  idleRowsPerS: number;
  /**
   * The probe is behind (catching up) when the youngest row of its last batch waited longer:
   * well above live latency and its hiccups (a checkpoint, a collector slow for a few seconds),
   * so that a probe that only just keeps up with live traffic is never paced (measured: paced at
   * 1 s, a probe at its limit under live 5,000 rows/s fell further behind on this 2-CPU machine).
   */
  behindMs: number;
}

export const PACING: PacingTuning = {
  periodMs: 1000,
  minPauseMs: 100,
  maxPauseMs: 5000,
  maxCalmPeriods: 3,
  minDuty: 0.05,
  threshold: 0.9,
  increase: 0.1,
  decrease: 0.5,
  idleRowsPerS: 20,
  behindMs: 10_000,
};

/** The capture sequence read at a moment. */
export interface Sample {
  atMs: number;
  count: number;
}

/** Rows/s between two samples (0 when no time passed). */
export function rateBetween(a: Sample, b: Sample): number {
  const s = (b.atMs - a.atMs) / 1000;
  return s > 0 ? Math.max(0, b.count - a.count) / s : 0;
}

/** The new duty after one period: halved if our work slowed dCache, else a step back up. */
export function nextDuty(duty: number, workRate: number, pauseRate: number, t: PacingTuning = PACING): number {
  if (workRate < t.threshold * pauseRate) return Math.max(t.minDuty, duty * t.decrease);
  return Math.min(1, duty + t.increase);
}

/** Where the period is. */
export type Phase =
  /** The next claim starts a work phase (needs a sample first). */
  | { kind: 'start' }
  /** Claims go ahead until `untilMs`. */
  | { kind: 'work'; from: Sample; untilMs: number }
  /**
   * No claims. `settled` is sampled once no batch of ours is in flight: the work lasted from
   * `work` to it, and the pause is measured from it.
   */
  | { kind: 'pause'; work: Sample; settled: Sample | null };

export interface PacingState {
  duty: number;
  /** Periods in a row at full duty in which our work did not slow dCache: each doubles the next work phase (up to maxCalmPeriods doublings). */
  calm: number;
  phase: Phase;
}

export function initialState(): PacingState {
  return { duty: 1, calm: 0, phase: { kind: 'start' } };
}

/** How long a work phase lasts: duty × period, longer while calm (the measuring pauses then cost less). */
export function workMs(state: PacingState, t: PacingTuning = PACING): number {
  return state.duty * t.periodMs * 2 ** Math.min(state.calm, t.maxCalmPeriods);
}

/**
 * How long to pause after working `workedMs` (from the work phase's start to the end of its last
 * batch): what makes the time worked `duty` of the period, so that batches longer than the work
 * phase do not raise the real duty; at least minPauseMs (to measure), at most maxPauseMs.
 */
export function pauseMs(duty: number, workedMs: number, t: PacingTuning = PACING): number {
  return Math.min(t.maxPauseMs, Math.max(t.minPauseMs, (workedMs * (1 - duty)) / duty));
}

/** What a worker about to claim does now. */
export type Decision = { kind: 'go' } | { kind: 'sample' } | { kind: 'wait'; ms: number } | { kind: 'wait-for-batches' };

/** What a worker about to claim does at `nowMs`, with `inFlight` batches of the other workers running (pure). */
export function decide(state: PacingState, nowMs: number, inFlight: number, t: PacingTuning = PACING): Decision {
  const p = state.phase;
  switch (p.kind) {
    case 'start':
      return { kind: 'sample' };
    case 'work':
      return nowMs < p.untilMs ? { kind: 'go' } : { kind: 'sample' };
    case 'pause': {
      if (!p.settled) return inFlight > 0 ? { kind: 'wait-for-batches' } : { kind: 'sample' };
      const end = p.settled.atMs + pauseMs(state.duty, p.settled.atMs - p.work.atMs, t);
      return nowMs < end ? { kind: 'wait', ms: end - nowMs } : { kind: 'sample' };
    }
  }
}

/** The state after the sample a 'sample' decision asked for (pure). */
export function step(state: PacingState, sample: Sample, t: PacingTuning = PACING): PacingState {
  const p = state.phase;
  const work = (duty: number, calm: number): PacingState => {
    const next = { duty, calm, phase: { kind: 'start' } as Phase };
    return { ...next, phase: { kind: 'work', from: sample, untilMs: sample.atMs + workMs(next, t) } };
  };
  switch (p.kind) {
    case 'start':
      return work(state.duty, state.calm);
    case 'work':
      // No claim asked for a long while (no drain ran): that was no work; start afresh.
      if (sample.atMs - p.untilMs > t.periodMs) return work(state.duty, state.calm);
      return { ...state, phase: { kind: 'pause', work: p.from, settled: null } };
    case 'pause': {
      if (!p.settled) {
        // dCache idle while we worked: nothing to yield to; full speed, and look again after a period.
        if (rateBetween(p.work, sample) < t.idleRowsPerS) return work(1, 0);
        return { ...state, phase: { ...p, settled: sample } };
      }
      const duty = nextDuty(state.duty, rateBetween(p.work, p.settled), rateBetween(p.settled, sample), t);
      return work(duty, duty === 1 && state.duty === 1 ? state.calm + 1 : 0);
    }
  }
}

/** Whether a batch says the probe is behind: the youngest row it delivered waited longer than behindMs. */
export function isBehind(r: BatchResult, t: PacingTuning = PACING): boolean {
  if (r.claimed === 0) return false;
  if (r.latenciesMs.length === 0) return true; // summarize mode, or only duplicates/skips: no latency to go by
  let youngest = Infinity;
  for (const ms of r.latenciesMs) if (ms < youngest) youngest = ms;
  return youngest > t.behindMs;
}

/** A token bucket of rows, one second deep; `tokens` may go below 0 (a batch bigger than what is left). */
export interface Bucket {
  tokens: number;
  atMs: number;
}

/** How long to wait before the next claim, and the bucket refilled to `nowMs` (pure). */
export function bucketWait(b: Bucket, nowMs: number, rowsPerS: number): { bucket: Bucket; waitMs: number } {
  const tokens = Math.min(rowsPerS, b.tokens + ((nowMs - b.atMs) / 1000) * rowsPerS);
  const bucket = { tokens, atMs: nowMs };
  return { bucket, waitMs: tokens >= 0 ? 0 : Math.ceil((-tokens / rowsPerS) * 1000) };
}

export interface PacerOptions {
  /** pipeline.goodCitizen: yield to dCache's inserts. */
  goodCitizen: boolean;
  /** pipeline.maxRowsPerSecond: 0 for none. */
  maxRowsPerSecond: number;
  /** Reads the capture sequence (src/db/captured-count.ts). */
  readCount: () => Promise<number>;
  /** After every period in which dCache inserted: the rates compared and the new duty (a debug log). */
  onPeriod?: (period: { workRate: number; pauseRate: number; duty: number }) => void;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  tuning?: PacingTuning;
}

/** What the metrics show of the pacer. */
export interface PacerStatus {
  goodCitizen: boolean;
  duty: number;
  /** Wall-clock ms the good citizen paused (no batch of ours in flight), since start. */
  yieldedMs: number;
  /** Wall-clock ms the limit has held claims back, since start. */
  limitedMs: number;
}

/** The drain's gate: one per probe, shared by its workers and its drains. */
export class Pacer {
  private state = initialState();
  private behind = true;
  private inFlight = 0;
  private sampling: Promise<void> | null = null;
  private settledWaiters: Array<() => void> = [];
  private bucket: Bucket;
  private yieldedMs = 0;
  private limitedMs = 0;
  private limitedUntil = 0;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly tuning: PacingTuning;

  constructor(private readonly options: PacerOptions) {
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.tuning = options.tuning ?? PACING;
    this.bucket = { tokens: options.maxRowsPerSecond, atMs: this.now() };
  }

  status(): PacerStatus {
    return { goodCitizen: this.options.goodCitizen, duty: this.options.goodCitizen ? this.state.duty : 1, yieldedMs: this.yieldedMs, limitedMs: this.limitedMs };
  }

  /**
   * Waits until the next claim may go: true, and the claim must be followed by afterBatch; false
   * when `stopping` said so meanwhile (no claim).
   */
  async beforeClaim(stopping: () => boolean): Promise<boolean> {
    for (;;) {
      if (stopping()) return false;
      const limit = this.options.maxRowsPerSecond;
      if (limit > 0) {
        const now = this.now();
        const { bucket, waitMs } = bucketWait(this.bucket, now, limit);
        this.bucket = bucket;
        if (waitMs > 0) {
          // Wall time held back (workers waiting together count once).
          const until = now + waitMs;
          if (until > this.limitedUntil) this.limitedMs += until - Math.max(now, this.limitedUntil);
          this.limitedUntil = Math.max(this.limitedUntil, until);
          await this.sleep(Math.min(waitMs, 100));
          continue;
        }
      }
      if (!this.options.goodCitizen || !this.behind) {
        this.state = { ...this.state, phase: { kind: 'start' } };
        break;
      }
      if (this.sampling) {
        await this.sampling;
        continue;
      }
      const d = decide(this.state, this.now(), this.inFlight, this.tuning);
      if (d.kind === 'go') break;
      if (d.kind === 'sample') {
        // A failed read fails the claim's worker (and the drain, retried like any database fault).
        const sampling = this.sample().finally(() => (this.sampling = null));
        sampling.catch(() => undefined);
        this.sampling = sampling;
        continue;
      }
      if (d.kind === 'wait') await this.sleep(Math.min(d.ms, 100));
      else await new Promise<void>((resolve) => this.settledWaiters.push(resolve));
    }
    this.inFlight++;
    return true;
  }

  /** After every claim that beforeClaim let through (also when it failed: pass null). */
  afterBatch(r: BatchResult | null): void {
    this.inFlight--;
    if (r) {
      if (r.claimed > 0) this.behind = isBehind(r, this.tuning);
      if (this.options.maxRowsPerSecond > 0) this.bucket = { ...this.bucket, tokens: this.bucket.tokens - r.claimed };
    }
    if (this.inFlight === 0) for (const wake of this.settledWaiters.splice(0)) wake();
  }

  private async sample(): Promise<void> {
    const count = await this.options.readCount();
    const before = this.state.phase;
    const sample = { atMs: this.now(), count };
    this.state = step(this.state, sample, this.tuning);
    if (before.kind === 'pause' && before.settled && this.state.phase.kind === 'work') {
      this.yieldedMs += sample.atMs - before.settled.atMs;
      this.options.onPeriod?.({ workRate: rateBetween(before.work, before.settled), pauseRate: rateBetween(before.settled, sample), duty: this.state.duty });
    }
  }
}
