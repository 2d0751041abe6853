/**
 * When the probe drains. A "drain cycle" runs whenever something may have arrived: a
 * notification, a (re)connect of the listener, the fallback poll timer, the door re-check
 * timer (movers waiting for their door row), or the end of a collector outage. Overlapping
 * requests coalesce: a request during a cycle makes it go round once more.
 * Each cycle delivers until nothing is ready, then arms the wake-up, waits out in-flight
 * captures (the barrier) and looks once more before going idle (sql/migrations/001_capture.sql
 * explains why nothing can be stranded). A collector outage pauses the cycles (backing off);
 * a failing database is retried, backing off.
 */
import { describeDatabaseError, isConnectionFault, type DatabaseOutage } from '../db/pool';
import type { QueueWaits } from '../db/housekeeping';
import type { BatchResult } from './delivery';
import { backoffDelay } from '../lib';
import type { Logger } from '../logger';
import type { SummarySendResult } from './summaries';
import { settledAny } from './drain';

/**
 * Nothing notifies when a door row arrives (a trigger on doorinfo for that doubled what we cost
 * dCache's inserts; sql/migrations/006_lighter_capture.sql), so while movers wait for their
 * door row the probe looks again by itself: first after this long, then twice as long each
 * time nothing was delivered, up to the maximum.
 */
export const DOOR_RECHECK_FIRST_MS = 250;
export const DOOR_RECHECK_MAX_MS = 5_000;

/**
 * Connection faults are waited out (the probe is a daemon: a database that is restarting, or
 * not up yet when the probe starts, comes back): first after this long, doubling up to the
 * maximum. At start-up (src/service/probe.ts) and in drains alike.
 */
export const DATABASE_RETRY_FIRST_MS = 250;
export const DATABASE_RETRY_MAX_MS = 5_000;

/** What a cycle does, step by step (the probe provides them). */
export interface CycleSteps {
  /** The stop file is present: deliver nothing now (the poll timer looks again). */
  stoppedByFile(): boolean;
  /** Poll mode only: copy the next datestamp window into the queue. */
  pollWindow?(): Promise<void>;
  /** Delivers until no ready row is left. */
  drain(): Promise<BatchResult>;
  /** Arms the wake-up and waits out in-flight captures; false when the barrier was not clear. */
  goIdle(): Promise<boolean>;
  /** Summarize mode only: sends the hours that are complete. */
  sendSummaries?(): Promise<SummarySendResult>;
  /** The oldest queued row and the first lease to run out (the door re-check). */
  queueWaits(): Promise<QueueWaits>;
}

export interface SchedulerOptions {
  doorGraceSeconds: number;
  collectorRetryBaseMs: number;
  collectorRetryMaxMs: number;
}

/** How long until the door re-check, from what waits in the queue (pure). */
export function doorRecheckDelay(waits: QueueWaits, backoffMs: number, doorGraceSeconds: number, now: number): number {
  // Rows past their grace period that are still queued are held by another probe (or the
  // database's clock is behind ours): back off for them as well.
  // A lease (another probe's, or one of ours that was lost) that runs out frees its rows.
  const graceEndsIn = waits.oldestCapturedMs! + doorGraceSeconds * 1000 - now + 50;
  const leaseEndsIn = waits.leaseEndsInMs !== null ? waits.leaseEndsInMs + 50 : Infinity;
  const delay = Math.min(graceEndsIn > 0 ? Math.min(backoffMs, graceEndsIn) : backoffMs, leaseEndsIn > 0 ? leaseEndsIn : backoffMs);
  return Math.max(DOOR_RECHECK_FIRST_MS, delay);
}

export class DrainScheduler {
  /** The last drain error, until a drain succeeds again (readiness reports it). */
  lastDrainError: string | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private stopping = false;
  private timers = new Set<NodeJS.Timeout>();
  private outages = 0;
  private pausedUntil = 0;
  private dbFailures = 0;
  private doorRecheckTimer: NodeJS.Timeout | null = null;
  private doorRecheckMs = DOOR_RECHECK_FIRST_MS;

  constructor(
    private readonly steps: CycleSteps,
    private readonly options: SchedulerOptions,
    private readonly outage: DatabaseOutage,
    private readonly log: Logger,
  ) {}

  /** Asks for a drain cycle; coalesces with one already running. */
  request(): void {
    if (this.stopping) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.runCycles().finally(() => {
      this.running = null;
      // A wake-up that arrived while the cycle was finishing (e.g. during its last query) must
      // start another cycle, or it would wait for the next poll.
      if (this.again && !this.stopping) this.request();
    });
  }

  /** Resolves when no drain cycle is running (tests, poll --once). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** The collector accepted a batch: the next outage backs off from the start. */
  collectorAccepted(): void {
    this.outages = 0;
  }

  /** No more cycles; the pending timers are cleared. */
  stop(): void {
    this.stopping = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  private later(ms: number): NodeJS.Timeout | null {
    if (this.stopping) return null;
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (this.doorRecheckTimer === t) this.doorRecheckTimer = null;
      this.request();
    }, ms);
    t.unref(); // a pending retry must never keep a stopping process alive
    this.timers.add(t);
    return t;
  }

  private async runCycles(): Promise<void> {
    const steps = this.steps;
    try {
      do {
        this.again = false;
        if (Date.now() < this.pausedUntil) return; // collector outage: a timer resumes
        if (steps.stoppedByFile()) return; // the poll timer looks again
        if (steps.pollWindow) await steps.pollWindow();
        const first = await steps.drain();
        this.outage.ok();
        if (first.unavailable) return this.collectorDown(first.unavailable);
        if (settledAny(first)) this.doorRecheckMs = DOOR_RECHECK_FIRST_MS;
        // Going idle: arm the wake-up, wait out in-flight captures, look once more.
        const clear = await steps.goIdle();
        const second = await steps.drain();
        if (second.unavailable) return this.collectorDown(second.unavailable);
        if (settledAny(second)) this.again = true;
        if (!clear && !this.again) {
          // A long dCache transaction holds the capture lock; do not queue behind it again
          // at once (that would pause dCache's other writers), look again shortly.
          this.later(1000);
        }
      } while (this.again && !this.stopping);
      if (steps.sendSummaries) {
        const sent = await steps.sendSummaries();
        if (sent.unavailable) return this.collectorDown(sent.unavailable);
      }
      this.dbFailures = 0;
      this.lastDrainError = null;
      await this.scheduleDoorRecheck();
    } catch (err) {
      if (this.stopping) return;
      this.dbFailures++;
      this.again = false; // retry after the backoff below, not at once
      this.lastDrainError = describeDatabaseError(err);
      if (isConnectionFault(err)) {
        // Said once per outage (not once per retry); the listener's reconnect drains at once.
        this.outage.fault(err, 'delivery');
        this.later(backoffDelay(this.dbFailures, DATABASE_RETRY_FIRST_MS, DATABASE_RETRY_MAX_MS));
        return;
      }
      const delay = backoffDelay(this.dbFailures, 500, 30_000);
      this.log.error('drain failed; retrying', { error: this.lastDrainError, retryInMs: delay });
      this.later(delay);
    }
  }

  private collectorDown(answer: string): void {
    this.outages++;
    const delay = backoffDelay(this.outages, this.options.collectorRetryBaseMs, this.options.collectorRetryMaxMs);
    this.pausedUntil = Date.now() + delay;
    this.log.error('collector unavailable; records stay queued in the database', { answer, retryInMs: delay });
    this.later(delay);
  }

  /**
   * Rows still queued after a cycle are movers waiting for their door row (or rows another
   * probe is delivering). Look again soon, backing off while nothing arrives, and at the latest
   * when the oldest one's grace period ends. One timer: a newer cycle replaces it.
   */
  private async scheduleDoorRecheck(): Promise<void> {
    const waits = await this.steps.queueWaits();
    if (this.doorRecheckTimer) {
      clearTimeout(this.doorRecheckTimer);
      this.timers.delete(this.doorRecheckTimer);
      this.doorRecheckTimer = null;
    }
    if (waits.oldestCapturedMs === null || this.stopping) {
      this.doorRecheckMs = DOOR_RECHECK_FIRST_MS;
      return;
    }
    this.doorRecheckTimer = this.later(doorRecheckDelay(waits, this.doorRecheckMs, this.options.doorGraceSeconds, Date.now()));
    this.doorRecheckMs = Math.min(this.doorRecheckMs * 2, DOOR_RECHECK_MAX_MS);
  }
}
