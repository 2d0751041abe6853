/**
 * What the probe's parts see of each other. Metrics and readiness read the probe through
 * ProbeHealth and hear of its work through ProbeEvents, so that they need not know Probe
 * (src/service/probe.ts), and Probe need not call them: it only says what happened.
 */
import { EventEmitter } from 'node:events';
import type pg from 'pg';
import type { BatchResult } from '../pipeline/delivery';
import type { PacerStatus } from '../pipeline/pacing';

/** What readiness and the scrape-time gauges read of a running probe. */
export interface ProbeHealth {
  /** The probe's pool (the scrape-time gauges read the database through it). */
  readonly pool: pg.Pool;
  /** Poll mode: no LISTEN connection is expected. */
  readonly pollMode: boolean;
  readonly listenerConnected: boolean;
  readonly lastNotificationAt: number | null;
  /** The last drain error, until a drain succeeds again. */
  readonly lastDrainError: string | null;
  /** The database outage in words, while there is one. */
  readonly outageProblem: string | null;
  /** When the collector last acknowledged a request (epoch ms), null: never. */
  readonly collectorLastAcceptedAt: number | null;
  /** The pacer's duty and the time it held claims back (src/pipeline/pacing.ts). */
  readonly pacing: PacerStatus;
  /** Asks the collector whether it answers. */
  pingCollector(signal: AbortSignal): Promise<boolean>;
}

/** A batch's counts, made once from its BatchResult (batchCounts) for every listener. */
export interface BatchCounts {
  delivered: number;
  duplicates: number;
  skipped: number;
  quarantined: number;
  requests: number;
  /** The collector could not be reached: the rows were given back. */
  unavailable: boolean;
}

/** What the probe says as it works. */
export interface ProbeEvents {
  /** A batch that claimed rows ended (committed, or given back when unavailable). */
  batch: [counts: BatchCounts, result: BatchResult];
  /** A collector request failed and is retried. */
  retry: [attempt: number, answer: string, delayMs: number];
}

/** An EventEmitter that knows ProbeEvents. */
export class ProbeEventEmitter extends EventEmitter<ProbeEvents> {}
