/**
 * What a Gratia record is made from, and how making one fails. The queue produces captured
 * rows and the mapping consumes them; both import this leaf module, so neither has to import
 * the other for it (and the record layer needs nothing from the database layer).
 */

/** A row as the queue hands it out: the billing row as jsonb plus what SQL computed. */
/** The billing tables a transfer is recorded in: movers (billinginfo) and tape flush/stage (storageinfo). */
export type BillingSource = 'billinginfo' | 'storageinfo';

export interface CapturedRow {
  /** capture_queue.id */
  id: string;
  source: BillingSource;
  /** When our trigger captured the row (epoch ms): its age in the queue, and latencies. */
  capturedAtMs: number;
  /** The billing row, column name -> JSON value (both schema forms). */
  record: Record<string, unknown>;
  /** The row's datestamp as epoch ms, read by SQL in the configured zone; null if unreadable. */
  datestampMs: number | null;
  /** The mover's door row (doorinfo), if one was found. */
  door: Record<string, unknown> | null;
}

/** A row that cannot become a valid record; it is quarantined with this message. */
export class EncodeError extends Error {
  override name = 'EncodeError';
}
