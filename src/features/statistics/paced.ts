/**
 * The one pacing rule of the counts made from the billing tables (the history's hours, the
 * removals' days): each unit is claimed, counted and marked in one short transaction with a
 * statement timeout, then the counter pauses at least as long as the unit took (and at least
 * `pauseMs`), so that it keeps at most half of one server process busy however dense the
 * billing tables are, and holds no transaction during the pause.
 */
import type pg from 'pg';
import { inTransaction } from '../../db/pool';
import { limitStatements } from '../../db/stats-history';
import { pause } from '../../lib';

export interface Pace {
  pauseMs: number;
  /** Pause only `pauseMs`, not as long as the unit took (the demo, counting its own history). */
  unpaced?: boolean;
  statementTimeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * Runs one unit (`count`: claim it, count it, mark it; null when it was already claimed) in
 * its own transaction, then pauses; returns what `count` returned.
 */
export async function countPaced(pool: pg.Pool, pace: Pace, count: (client: pg.PoolClient) => Promise<number | null>): Promise<number | null> {
  const started = Date.now();
  const counted = await inTransaction(pool, async (client) => {
    await limitStatements(client, pace.statementTimeoutMs ?? 300_000);
    return count(client);
  });
  await pause(pace.unpaced ? pace.pauseMs : Math.max(pace.pauseMs, Date.now() - started), pace.signal);
  return counted;
}
