/**
 * The SQL of summarize mode (sql/migrations/005_summary.sql explains the parts protocol): the
 * hours' state rows, the groups added inside each delivery transaction, and the closing,
 * reading and marking of a part when it is sent. Named functions with their values bound;
 * the grouping, the records and the sending are src/pipeline/summaries.ts.
 */
import type pg from 'pg';
import { inTransaction } from './pool';

/** One group's sums to add to an hour's open part (dimensions as JSON text). */
export interface SummaryGroupRow {
  hourMs: number;
  part: number;
  key: string;
  dimensionsJson: string;
  njobs: number;
  bytes: number;
  durationMs: number;
}

/**
 * The open part of each hour (parts_closed + 1), by hour (epoch ms), its state row created if
 * need be and held FOR SHARE until the caller's transaction ends, so that the part cannot be
 * closed while rows are being added to it. Hours in ascending order (locks in one order).
 */
export async function lockOpenParts(client: pg.ClientBase, hoursMs: readonly number[]): Promise<Map<number, number>> {
  const hourArray = hoursMs.map((h) => new Date(h).toISOString());
  await client.query('INSERT INTO dcache_probe.summary_state (hour) SELECT unnest($1::timestamptz[]) ORDER BY 1 ON CONFLICT DO NOTHING', [hourArray]);
  const { rows } = await client.query<{ hour_ms: string; parts_closed: number }>(
    `SELECT (extract(epoch FROM hour) * 1000)::bigint AS hour_ms, parts_closed
       FROM dcache_probe.summary_state WHERE hour = ANY($1::timestamptz[]) ORDER BY hour FOR SHARE`,
    [hourArray],
  );
  return new Map(rows.map((r) => [Number(r.hour_ms), r.parts_closed + 1]));
}

/** Adds the groups' sums to their parts, in the order given (the caller sorts them: one lock order). */
export async function addSummaryGroups(client: pg.ClientBase, groups: readonly SummaryGroupRow[]): Promise<void> {
  await client.query(
    `INSERT INTO dcache_probe.summary_group (hour, part, group_key, dimensions, njobs, bytes, duration_ms)
     SELECT to_timestamp(h / 1000.0), p, k, d, n, b, t
       FROM unnest($1::bigint[], $2::int[], $3::uuid[], $4::jsonb[], $5::bigint[], $6::numeric[], $7::numeric[]) WITH ORDINALITY AS x(h, p, k, d, n, b, t, i)
      ORDER BY i
     ON CONFLICT (hour, part, group_key) DO UPDATE
        SET njobs = summary_group.njobs + EXCLUDED.njobs,
            bytes = summary_group.bytes + EXCLUDED.bytes,
            duration_ms = summary_group.duration_ms + EXCLUDED.duration_ms`,
    [
      groups.map((g) => g.hourMs),
      groups.map((g) => g.part),
      groups.map((g) => g.key),
      groups.map((g) => g.dimensionsJson),
      groups.map((g) => g.njobs),
      groups.map((g) => g.bytes),
      groups.map((g) => g.durationMs),
    ],
  );
}

/**
 * Hours that ended `settleSeconds` ago or more with a part to send: a closed one not yet sent,
 * or an open one that has groups. Oldest first.
 */
export async function dueSummaryHours(pool: pg.Pool, settleSeconds: number): Promise<Date[]> {
  const { rows } = await pool.query<{ hour: Date }>(
    `SELECT s.hour FROM dcache_probe.summary_state s
      WHERE s.hour + interval '1 hour' + make_interval(secs => $1) <= now()
        AND (s.parts_closed > s.parts_sent
             OR EXISTS (SELECT 1 FROM dcache_probe.summary_group g WHERE g.hour = s.hour AND g.part = s.parts_closed + 1))
      ORDER BY s.hour`,
    [settleSeconds],
  );
  return rows.map((r) => r.hour);
}

/**
 * Closes the hour's part to send (unless a failed attempt already closed it) and returns its
 * number: from then on it is frozen (rows go into the next part).
 */
export function closeSummaryPart(pool: pg.Pool, hour: Date): Promise<number> {
  return inTransaction(pool, async (client) => {
    const { rows } = await client.query<{ parts_closed: number; parts_sent: number }>('SELECT parts_closed, parts_sent FROM dcache_probe.summary_state WHERE hour = $1 FOR UPDATE', [hour]);
    const state = rows[0]!;
    const closing = state.parts_closed > state.parts_sent ? state.parts_closed : state.parts_sent + 1;
    await client.query('UPDATE dcache_probe.summary_state SET parts_closed = $2 WHERE hour = $1', [hour, closing]);
    return closing;
  });
}

/** The groups of one part of one hour, by group key; `D` is the type of their dimensions (JSON). */
export async function summaryPartGroups<D>(pool: pg.Pool, hour: Date, part: number): Promise<{ key: string; dimensions: D; njobs: number; bytes: number; durationMs: number }[]> {
  const { rows } = await pool.query<{ group_key: string; dimensions: D; njobs: string; bytes: string; duration_ms: string }>(
    'SELECT group_key, dimensions, njobs, bytes, duration_ms FROM dcache_probe.summary_group WHERE hour = $1 AND part = $2 ORDER BY group_key',
    [hour, part],
  );
  return rows.map((g) => ({ key: g.group_key, dimensions: g.dimensions, njobs: Number(g.njobs), bytes: Number(g.bytes), durationMs: Number(g.duration_ms) }));
}

/** Records a part as sent (never going back). */
export async function markSummaryPartSent(pool: pg.Pool, hour: Date, part: number): Promise<void> {
  await pool.query('UPDATE dcache_probe.summary_state SET parts_sent = $2 WHERE hour = $1 AND parts_sent < $2', [hour, part]);
}
