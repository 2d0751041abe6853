/**
 * The demo's traffic as the statistics see it, on a simulated clock (faster than real time):
 * the demo's generator (seeded) and injections, records made by the probe's mapping (one per
 * transaction, pool-to-pool copies skipped), added to the statistics tables of a real
 * database by the probe's upsert. What a probe running the demo would have written, without
 * the minutes it takes.
 */
import type pg from 'pg';
import { FAULT_INJECTION, MISUSE_BURST_SECONDS, MISUSE_INJECTION } from '../../src/tools/demo/demo';
import { liveGenerator, type Row } from '../../src/tools/demo/simulator';
import type { DeliveredRecord } from '../../src/pipeline/delivery';
import { NO_IDENTITY_FILES, type IdentityTables } from '../../src/record/identity';
import { mapRow } from '../../src/record/mapping';
import { HOUR_MS } from '../../src/lib';
import { DEFAULT_STATISTICS_OPTIONS } from '../../src/features/statistics/options';
import { recordBatch } from '../../src/features/statistics/store';

export interface DemoTraffic {
  seed: number;
  /** Rows a second (movers, door rows, second copies), as `demo --rate`. */
  rate: number;
  seconds: number;
  /** The simulated clock at second 0 (epoch ms). */
  startMs: number;
  identity?: IdentityTables;
  /** Seconds after the start: the demo's --inject-fault-after and --inject-misuse-after. */
  faultAfter?: number;
  misuseAfter?: number;
  /** Records are delivered (one batch) every this many seconds. */
  deliverEverySeconds: number;
}

const jsonb = (row: Row | null) => (row === null ? null : (JSON.parse(JSON.stringify(row)) as Record<string, unknown>));

/**
 * Writes the traffic second by second; after each delivery (every deliverEverySeconds, and at
 * the end) calls `delivered(second, clockMs)`.
 */
export async function writeDemoTraffic(pool: pg.Pool, t: DemoTraffic, delivered: (second: number, clockMs: number) => Promise<void> = async () => undefined): Promise<void> {
  let clock = t.startMs;
  const generator = liveGenerator({ seed: t.seed, now: () => clock });
  const retention = { minuteMs: DEFAULT_STATISTICS_OPTIONS.minuteRetentionHours * HOUR_MS, hourMs: DEFAULT_STATISTICS_OPTIONS.hourRetentionDays * 24 * HOUR_MS };
  const mapping = { probeName: 'dCache-transfer:demo.example.org', siteName: 'DEMO_SITE', grid: 'OSG', dcacheServerHost: 'dcache.example.org', reportTape: true, identity: t.identity ?? NO_IDENTITY_FILES };
  const client = await pool.connect();
  try {
    let pending: DeliveredRecord[] = [];
    for (let second = 0; second <= t.seconds; second++) {
      clock = t.startMs + second * 1000;
      if (second % t.deliverEverySeconds === 0 || second === t.seconds) {
        if (pending.length) await recordBatch(client, pending, retention, clock);
        pending = [];
        await delivered(second, clock);
      }
      if (second === t.faultAfter) generator.inject = { ...generator.inject, ...FAULT_INJECTION };
      if (second === t.misuseAfter) generator.inject = { ...generator.inject, ...MISUSE_INJECTION };
      if (t.misuseAfter !== undefined && second === t.misuseAfter + MISUSE_BURST_SECONDS) generator.inject = { ...generator.inject, misuseShare: 0 };
      for (let rows = 0; rows < t.rate; ) {
        const transfer = generator.next();
        rows += 1 + (transfer.door ? 1 : 0) + (transfer.duplicated ? 1 : 0);
        const row = { id: String(rows), source: 'billinginfo' as const, capturedAtMs: clock, record: jsonb(transfer.mover)!, datestampMs: (transfer.mover.datestamp as Date).getTime(), door: jsonb(transfer.door) };
        const mapped = mapRow(row, mapping);
        if (mapped.kind === 'record') pending.push({ row, record: mapped.record });
      }
    }
  } finally {
    client.release();
  }
}
