/**
 * The quarantine, for operators: rows that could not be encoded or that the collector refused,
 * kept with the reason. `retry` puts them back into the capture queue (with their original
 * capture time, so the record comes out as it would have); `drop` deletes them for good.
 */
import type pg from 'pg';
import { inTransaction } from '../db/pool';
import { deleteQuarantined, requeueQuarantined, selectQuarantined, type Selection } from '../db/quarantine';
import { wakeProbes } from '../db/wake-up';

export interface QuarantinedRow {
  id: string;
  source: string;
  stage: string;
  reason: string;
  transaction: string | null;
  capturedAt: string;
  quarantinedAt: string;
}

export async function listQuarantine(db: pg.Pool, limit = 100): Promise<QuarantinedRow[]> {
  const rows = await selectQuarantined(db, limit);
  return rows.map((r) => ({
    id: String(r.id),
    source: r.source,
    stage: r.stage,
    reason: r.reason,
    transaction: r.transaction,
    capturedAt: new Date(r.captured_at).toISOString(),
    quarantinedAt: new Date(r.quarantined_at).toISOString(),
  }));
}

/** Moves the selected rows back to the capture queue and wakes a running probe. */
export function retryQuarantine(db: pg.Pool, selection: Selection): Promise<number> {
  return inTransaction(db, async (client) => {
    const moved = await requeueQuarantined(client, selection);
    await wakeProbes(client, 'quarantine-retry');
    return moved;
  });
}

export function dropQuarantine(db: pg.Pool, selection: Selection): Promise<number> {
  return deleteQuarantined(db, selection);
}

export function formatQuarantine(rows: readonly QuarantinedRow[]): string {
  if (rows.length === 0) return 'the quarantine is empty\n';
  return rows.map((r) => `${r.id}\t${r.quarantinedAt}\t${r.source}\t${r.transaction ?? '-'}\t${r.stage}: ${r.reason}`).join('\n') + '\n';
}
