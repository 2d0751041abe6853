/**
 * `dcache-probe verify`: proof of completeness. For each hour of a range, what the billing
 * tables say should have been reported (distinct transactions; no pool-to-pool copies; tape
 * store/restore rows) against what the ledger says was delivered or deliberately skipped,
 * plus what still waits in the queue or the quarantine. Hours where these differ are listed:
 * "missing" (e.g. rows a failing trigger did not capture: backfill them) or "extra" (e.g.
 * billing rows dCache has since deleted).
 *
 * This reads the billing tables for the range (an operator's command, not the hot path).
 * The ledger starts when migration 003 was installed: earlier hours show as missing.
 * The queries are in src/db/verify.ts, the printing in src/cli/verify.ts.
 */
import type pg from 'pg';
import { expectedPerHour, ledgerHours, oursPerHour } from '../db/verify';
import type { BillingSource } from '../record/types';

export interface HourCheck {
  hour: string;
  source: BillingSource;
  expected: number;
  delivered: number;
  skipped: number;
  quarantined: number;
  queued: number;
  /** expected minus everything accounted for: > 0 missing, < 0 extra. */
  difference: number;
}

export async function verifyDeliveries(db: pg.Pool, billingSchema: string, since: Date, until: Date): Promise<HourCheck[]> {
  const ledger = await ledgerHours(db, since, until);
  const queued = await oursPerHour(db, 'capture_queue', since, until);
  const quarantined = await oursPerHour(db, 'quarantine', since, until);
  const checks = new Map<string, HourCheck>();
  const at = (hourMs: number, source: HourCheck['source']): HourCheck => {
    const id = `${hourMs}:${source}`;
    let c = checks.get(id);
    if (!c) {
      c = { hour: new Date(hourMs).toISOString(), source, expected: 0, delivered: 0, skipped: 0, quarantined: quarantined.get(id) ?? 0, queued: queued.get(id) ?? 0, difference: 0 };
      checks.set(id, c);
    }
    return c;
  };
  for (const source of ['billinginfo', 'storageinfo'] as const) {
    for (const [hourMs, n] of await expectedPerHour(db, billingSchema, source, since, until)) at(hourMs, source).expected = n;
  }
  for (const r of ledger) {
    const c = at(r.hourMs, r.source);
    c.delivered = r.delivered;
    c.skipped = r.skipped;
  }
  for (const id of [...queued.keys(), ...quarantined.keys()]) {
    const [hourMs, source] = id.split(':');
    at(Number(hourMs), source as HourCheck['source']);
  }
  for (const c of checks.values()) c.difference = c.expected - c.delivered - c.skipped - c.quarantined - c.queued;
  return [...checks.values()].sort((a, b) => a.hour.localeCompare(b.hour) || a.source.localeCompare(b.source));
}
