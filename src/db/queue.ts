/**
 * The capture queue as the delivery uses it: claiming a batch (its lease), reading its rows
 * with their door rows, reserving and releasing delivery keys, the per-hour ledger, the
 * quarantine of rows that cannot be delivered, and removing what was settled. (The other areas
 * have their own modules in src/db/: wake-up, housekeeping, status, backfill, quarantine
 * commands, summaries, statistics, verify, migrations.)
 *
 * A batch is claimed with a lease, not with a transaction held open (migration 008): the
 * claim is a short transaction that picks ready rows no live lease holds, records one lease
 * row for the batch and reserves the batch's delivery keys, and commits before anything is
 * sent. While the records are on their way the lease is renewed; the acknowledgement deletes
 * the rows in another short transaction, fenced by the lease (a probe whose lease expired and
 * was taken over changes nothing). Claims are serialised among all probes by an advisory lock
 * of ours that dCache never takes, so two claims cannot pick the same rows; a lease that was
 * not renewed in time (a killed, stopped or cut-off probe) is given back by the next claim.
 */
import type pg from 'pg';
import { HOUR_MS } from '../lib';
import type { CapturedRow } from '../record/types';

/** A claimed row's fate, recorded in the delivery transaction. */
export interface QuarantineEntry {
  id: string;
  door: Record<string, unknown> | null;
  /** encode: no valid record; identity: held back by QuarantineUnknownVORecords; collector: refused. */
  stage: 'encode' | 'identity' | 'collector';
  reason: string;
}

/** One hour's worth of outcomes for the ledger (hourMs: start of the hour, epoch ms). */
export interface LedgerEntry {
  hourMs: number;
  source: string;
  delivered: number;
  skipped: number;
}


/** Sums outcomes per (hour of the row's datestamp, source). */
export function ledgerEntries(outcomes: readonly { row: CapturedRow; delivered: boolean }[]): LedgerEntry[] {
  const byHour = new Map<string, LedgerEntry>();
  for (const { row, delivered } of outcomes) {
    const hourMs = Math.floor((row.datestampMs ?? row.capturedAtMs) / HOUR_MS) * HOUR_MS;
    const id = `${hourMs}:${row.source}`;
    const entry = byHour.get(id) ?? { hourMs, source: row.source, delivered: 0, skipped: 0 };
    if (delivered) entry.delivered++;
    else entry.skipped++;
    byHour.set(id, entry);
  }
  return [...byHour.values()];
}

interface ClaimedRowSql {
  id: string;
  source: CapturedRow['source'];
  captured_ms: string;
  record: Record<string, unknown>;
  datestamp_ms: string | null;
  door: Record<string, unknown> | null;
}

/**
 * Picking: the ids of up to $1 ready rows, oldest first, that no live lease holds.
 *
 * A mover (billinginfo row) *waits* for its door row while it is younger than the grace period
 * ($2 seconds) and has a door to wait for (its initiator is not empty, "<undefined>" or a p2p
 * "pool:..."). A row is ready when it does not wait, or when its door row (in `doorinfo`: the
 * quoted, schema-qualified table) is there.
 *
 * Readiness of a waiting mover is tested in the picking query itself, so the LIMIT counts
 * exactly the rows picked; it is a scalar subquery (does a door row with this transaction and
 * pnfsid exist?), which the planner never hashes: an EXISTS here let it, when doorinfo had no
 * statistics, hash all of doorinfo in every claim. A mover that does not wait costs no lookup.
 * OFFSET 0 keeps `door` a subquery, so that its lookup is not repeated. The door is found by its
 * key, not by ctid: a ctid is unique only within one table, and a site may partition doorinfo.
 * No row is locked: picking runs under CLAIM_LOCK, right after expired leases were given back,
 * and records its lease in the same statement (leaseQuery), so what it sees is exact. The
 * leased ids come from dcache_probe.leased_ids(), whose fixed row estimate keeps the NOT IN a
 * hashed subplan however many dead lease versions the table holds (migration 009).
 */
export function pickQuery(doorinfo: string): string {
  return `
        SELECT q.id
          FROM dcache_probe.capture_queue q
         CROSS JOIN LATERAL (
           SELECT q.source = 'billinginfo'
              AND q.captured_at > now() - make_interval(secs => $2)
              AND coalesce(q.record ->> 'initiator', '') NOT IN ('', '<undefined>')
              AND q.record ->> 'initiator' NOT LIKE 'pool:%' AS waits
         ) w
         CROSS JOIN LATERAL (
           SELECT CASE WHEN w.waits THEN (
                    SELECT true FROM ${doorinfo} d
                     WHERE d.transaction = q.record ->> 'initiator' AND d.pnfsid = q.record ->> 'pnfsid'
                     LIMIT 1)
                  END AS found
           OFFSET 0
         ) door
         WHERE (NOT w.waits OR door.found)
           AND q.id NOT IN (SELECT dcache_probe.leased_ids())
         ORDER BY q.id
         LIMIT $1`;
}

/**
 * The claim's one statement under CLAIM_LOCK: picks ($1 rows, $2 s grace) and records a lease
 * for owner $3 of $4 seconds. It answers only the lease's id (no row if nothing is ready): the
 * rows are read after the claim committed (leasedRowsQuery), so the lock is never held while a
 * large answer travels to a probe that may have stopped reading.
 */
export function leaseQuery(doorinfo: string): string {
  return `
      WITH picked AS (${pickQuery(doorinfo)})
      INSERT INTO dcache_probe.claim (owner, ids, keys, leased_until)
      SELECT $3, array_agg(id ORDER BY id), '{}', now() + make_interval(secs => $4)
        FROM picked
      HAVING count(*) > 0
      RETURNING batch`;
}

/**
 * A lease's rows ($1: the batch), oldest first, each with its door row (the earliest by
 * datestamp and cellname) as JSON, and its datestamp as epoch ms (dcache_probe.epoch_ms turns
 * an unreadable value into NULL, so one bad row can never stop the queue).
 *
 * The door is row_to_json, not to_jsonb: json is written straight as text, where jsonb is first
 * built in its binary form (keys sorted, values converted) and then printed again. Both parse
 * to the same object (only the key order differs, which nothing reads; the quarantine stores
 * it as jsonb), whatever columns this form of doorinfo has; row_to_json costs the backend about
 * a third less per row (bench/batch-cost.ts, issue 15).
 */
export function leasedRowsQuery(doorinfo: string): string {
  return `
      SELECT q.id, q.source, q.record,
             floor(extract(epoch FROM q.captured_at) * 1000)::bigint AS captured_ms,
             dcache_probe.epoch_ms(q.record ->> 'datestamp') AS datestamp_ms,
             CASE WHEN q.source = 'billinginfo'
                  THEN (SELECT row_to_json(d) FROM ${doorinfo} d
                         WHERE d.transaction = q.record ->> 'initiator' AND d.pnfsid = q.record ->> 'pnfsid'
                         ORDER BY d.datestamp, d.cellname
                         LIMIT 1)
             END AS door
        FROM dcache_probe.capture_queue q
       WHERE q.id = ANY ((SELECT ids FROM dcache_probe.claim WHERE batch = $1)::bigint[])
       ORDER BY q.id`;
}

export class CaptureQueue {
  private readonly leaseSql: string;
  private readonly leasedRowsSql: string;

  constructor(billingSchema: string, quoteIdentifier: (name: string) => string) {
    const doorinfo = `${quoteIdentifier(billingSchema)}.doorinfo`;
    this.leaseSql = leaseQuery(doorinfo);
    this.leasedRowsSql = leasedRowsQuery(doorinfo);
  }

  /**
   * Picks up to `limit` ready rows and leases them to `owner` (under claimLock); returns the
   * lease's id, or null when nothing is ready.
   */
  async pickAndLease(client: pg.ClientBase, limit: number, doorGraceSeconds: number, owner: string, leaseSeconds: number): Promise<string | null> {
    const { rows } = await client.query<{ batch: string }>(this.leaseSql, [limit, doorGraceSeconds, owner, leaseSeconds]);
    return rows[0]?.batch ?? null;
  }

  /** A lease's rows, oldest first, with their door rows. */
  async leasedRows(db: pg.Pool | pg.ClientBase, batch: string): Promise<CapturedRow[]> {
    const { rows } = await db.query<ClaimedRowSql>(this.leasedRowsSql, [batch]);
    return rows.map((r) => ({
      id: r.id,
      source: r.source,
      capturedAtMs: Number(r.captured_ms),
      record: r.record,
      datestampMs: r.datestamp_ms === null ? null : Number(r.datestamp_ms),
      door: r.door,
    }));
  }

  /**
   * Serialises claims among every probe on this database, to the end of the transaction. The
   * holder's transaction is ended by the server if it idles CLAIM_IDLE_MS inside it (a probe
   * stopped between two statements of its claim must not stop its partner's claims); a waiter
   * gives up after CLAIM_WAIT_MS (ClaimBusy) and looks again later.
   */
  async claimLock(client: pg.ClientBase): Promise<void> {
    try {
      await client.query(
        // (No JIT and no parallel workers for the claim's few small statements: their start-up
        // would cost more than the statements, under the lock.)
        `SELECT set_config('idle_in_transaction_session_timeout', $2, true), set_config('lock_timeout', $3, true),
                set_config('jit', 'off', true), set_config('max_parallel_workers_per_gather', '0', true), pg_advisory_xact_lock($1)`,
        [CLAIM_LOCK, String(CLAIM_IDLE_MS), String(CLAIM_WAIT_MS)],
      );
    } catch (err) {
      if ((err as { code?: string }).code === '55P03') throw new ClaimBusy();
      throw err;
    }
  }

  /**
   * Gives back every lease that was not renewed in time (its probe was killed, stopped or cut
   * off): its rows become claimable and the delivery keys it reserved are released. Run under
   * claimLock before the claim. The lease's own probe, if it still runs, finds at its
   * acknowledgement that the lease is gone and changes nothing.
   */
  async expireLeases(client: pg.ClientBase): Promise<ExpiredLease[]> {
    const { rows } = await client.query<ExpiredLease>(`
      WITH expired AS (
        DELETE FROM dcache_probe.claim WHERE leased_until < now()
        RETURNING batch, owner, keys, cardinality(ids) AS n
      ), released AS (
        DELETE FROM dcache_probe.delivered_key k USING expired e
         WHERE k.key = ANY (e.keys) AND k.batch = e.batch
      )
      SELECT owner, n AS rows FROM expired`);
    return rows;
  }

  /**
   * Renews a lease and reserves these delivery keys for it, in one statement (the reservation's
   * fence: the renewal also locks the lease row against expiry until this transaction ends).
   * Returns the keys that were free, or null, and nothing reserved, if the lease is gone. A key
   * that is taken belongs to a transaction that was delivered, or that another lease has in
   * flight (see keyStates).
   */
  async renewAndReserve(client: pg.ClientBase, batch: string, leaseSeconds: number, keys: readonly string[]): Promise<Set<string> | null> {
    // The lease remembers what it reserved, so that an expired lease can give its keys back.
    // (The insert reads the renewal's answer: no lease, no key reserved.)
    const { rows } = await client.query<{ held: boolean; free: string[] }>(
      `WITH lease AS (
         UPDATE dcache_probe.claim SET leased_until = now() + make_interval(secs => $3), keys = $1::uuid[]
          WHERE batch = $2::bigint
         RETURNING batch
       ), reserved AS (
         INSERT INTO dcache_probe.delivered_key (key, batch)
         SELECT DISTINCT k, l.batch FROM lease l CROSS JOIN unnest($1::uuid[]) AS k ORDER BY k
         ON CONFLICT DO NOTHING
         RETURNING key
       )
       SELECT EXISTS (SELECT FROM lease) AS held, ARRAY(SELECT key::text FROM reserved) AS free`,
      [keys, batch, leaseSeconds],
    );
    return rows[0]!.held ? new Set(rows[0]!.free) : null;
  }

  /**
   * What became of these keys: 'in-flight' while a live lease holds the key (not delivered
   * yet, perhaps never), 'delivered' once it is kept without one. A key not in the answer is
   * free: its lease was given back undelivered.
   */
  async keyStates(client: pg.ClientBase, keys: readonly string[]): Promise<Map<string, 'in-flight' | 'delivered'>> {
    if (keys.length === 0) return new Map();
    const { rows } = await client.query<{ key: string; in_flight: boolean }>(
      `SELECT k.key, c.batch IS NOT NULL AS in_flight
         FROM dcache_probe.delivered_key k LEFT JOIN dcache_probe.claim c ON c.batch = k.batch
        WHERE k.key = ANY ($1::uuid[])`,
      [keys],
    );
    return new Map(rows.map((r) => [r.key, r.in_flight ? 'in-flight' : 'delivered']));
  }

  /** Extends a lease (one statement, its own transaction); false if it is no longer ours. */
  async renewLease(db: pg.Pool | pg.ClientBase, batch: string, leaseSeconds: number): Promise<boolean> {
    const { rowCount } = await db.query('UPDATE dcache_probe.claim SET leased_until = now() + make_interval(secs => $2) WHERE batch = $1', [batch, leaseSeconds]);
    return rowCount === 1;
  }

  /** Gives a lease back undelivered: its rows are claimable again, its keys free. */
  async releaseLease(db: pg.Pool | pg.ClientBase, batch: string): Promise<void> {
    await db.query(
      `WITH c AS (DELETE FROM dcache_probe.claim WHERE batch = $1 RETURNING batch, keys)
       DELETE FROM dcache_probe.delivered_key k USING c WHERE k.key = ANY (c.keys) AND k.batch = c.batch`,
      [batch],
    );
  }

  /**
   * The acknowledgement's fence, first in its transaction: ends the lease, so its keys count as
   * delivered once the transaction commits. False if the lease expired and was given back (the
   * rows may be another probe's by now): then the transaction must change nothing.
   */
  async endLease(client: pg.ClientBase, batch: string): Promise<boolean> {
    const { rowCount } = await client.query('DELETE FROM dcache_probe.claim WHERE batch = $1', [batch]);
    return rowCount === 1;
  }

  /**
   * Adds to the per-hour ledger. Rows are locked in hour order, so two probes' transactions
   * cannot deadlock; each holds its hour rows only from here to its commit.
   */
  async addToLedger(client: pg.ClientBase, entries: readonly LedgerEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const sorted = [...entries].sort((a, b) => a.hourMs - b.hourMs || a.source.localeCompare(b.source));
    await client.query(
      `INSERT INTO dcache_probe.delivered_hour (hour, source, delivered, skipped)
       SELECT to_timestamp(h / 1000.0), s, d, k
         FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[]) WITH ORDINALITY AS x(h, s, d, k, n)
        ORDER BY n
       ON CONFLICT (hour, source) DO UPDATE
          SET delivered = delivered_hour.delivered + EXCLUDED.delivered,
              skipped   = delivered_hour.skipped + EXCLUDED.skipped`,
      [sorted.map((e) => e.hourMs), sorted.map((e) => e.source), sorted.map((e) => e.delivered), sorted.map((e) => e.skipped)],
    );
  }

  /** Removes delivery keys again (records the collector refused were not delivered). */
  async forgetDelivered(client: pg.ClientBase, keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    await client.query('DELETE FROM dcache_probe.delivered_key WHERE key = ANY($1::uuid[])', [keys]);
  }

  /** Moves rows to the quarantine with their reason. */
  async quarantine(client: pg.ClientBase, entries: readonly QuarantineEntry[]): Promise<void> {
    if (entries.length === 0) return;
    await client.query(
      `INSERT INTO dcache_probe.quarantine (source, captured_at, record, door, stage, reason)
       SELECT q.source, q.captured_at, q.record, x.door, x.stage, x.reason
         FROM unnest($1::bigint[], $2::jsonb[], $3::text[], $4::text[]) AS x(id, door, stage, reason)
         JOIN dcache_probe.capture_queue q ON q.id = x.id`,
      [entries.map((e) => e.id), entries.map((e) => (e.door === null ? null : JSON.stringify(e.door))), entries.map((e) => e.stage), entries.map((e) => e.reason)],
    );
  }

  async remove(client: pg.ClientBase, ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await client.query('DELETE FROM dcache_probe.capture_queue WHERE id = ANY($1::bigint[])', [ids]);
  }
}

/** Rows waiting in the capture queue, leased ones included (the one count of the queue). */
export async function queueDepth(db: pg.Pool | pg.ClientBase): Promise<number> {
  const { rows } = await db.query<{ n: string }>('SELECT count(*) AS n FROM dcache_probe.capture_queue');
  return Number(rows[0]!.n);
}

/** A lease given back by expireLeases: whose it was and how many rows it held. */
export interface ExpiredLease {
  owner: string;
  rows: number;
}

/** Serialises claims among probes (migration 008); any constant unique to us, never dCache's. */
export const CLAIM_LOCK = 7262627702;
/** See CaptureQueue.claimLock. */
export const CLAIM_IDLE_MS = 2_000;
export const CLAIM_WAIT_MS = 5_000;

/** Another probe's claim held the claim lock longer than CLAIM_WAIT_MS: look again later. */
export class ClaimBusy extends Error {
  readonly code = 'CLAIM_BUSY';
  constructor() {
    super('another claim held the claim lock too long');
  }
}
