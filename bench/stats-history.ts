/**
 * The history builder's cost to dCache (issue 14: "dCache-shaped writers keep at least 90% of
 * their insert rate while it runs"): `writers` (10) saturating writers insert mover + door rows
 * (one INSERT per row, one transaction per pair, through the capture triggers) in alternating
 * phases (ABBA), without and with `buildHistory` (the default pause, statistics.historyPauseMs)
 * counting a filled billing history; the ratio of the insert rates is the result. Run on its own:
 *   npm run build && node dist/bench/stats-history.js [historyRows] [phaseSeconds] [rounds] [writers] [historyDays]
 */
import pg from 'pg';
import { buildHistory } from '../src/features/statistics/history';
import { DEFAULT_STATISTICS_OPTIONS } from '../src/features/statistics/options';
import { TransferGenerator, type Row } from '../src/tools/demo/simulator';
import { createBenchDatabase, fillBacklog } from './lib/db';
import { note } from './lib/env';

const MOVER = ['datestamp', 'cellname', 'action', 'transaction', 'pnfsid', 'fullsize', 'transfersize', 'storageclass', 'isnew', 'client', 'connectiontime', 'errorcode', 'errormessage', 'protocol', 'initiator', 'p2p', 'fqan', 'mappeduid', 'mappedgid', 'owner'];
const DOOR = ['datestamp', 'cellname', 'action', 'owner', 'mappeduid', 'mappedgid', 'client', 'transaction', 'pnfsid', 'path', 'queuedtime', 'connectiontime', 'errorcode', 'errormessage', 'fqan'];
const insert = (t: string, cols: string[]) => `INSERT INTO public.${t} (${cols.join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})`;
const vals = (row: Row, cols: string[]) => cols.map((c) => (row[c] instanceof Date ? (row[c] as Date).toISOString() : (row[c] ?? null)));

/** Pairs inserted by `writers` clients for `seconds`. */
async function writePhase(url: string, writers: number, seconds: number, tag: string): Promise<number> {
  const gen = new TransferGenerator({ seed: 7, p2pShare: 0, noDoorShare: 0, duplicateShare: 0 });
  let n = 0;
  const end = Date.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        for (let i = 0; Date.now() < end; i++) {
          const t = gen.next();
          const mover = { ...t.mover, transaction: `${t.mover.transaction}-${tag}-${w}-${i}` };
          await client.query('BEGIN');
          await client.query({ name: 'm', text: insert('billinginfo', MOVER), values: vals(mover, MOVER) });
          await client.query({ name: 'd', text: insert('doorinfo', DOOR), values: vals(t.door!, DOOR) });
          await client.query('COMMIT');
          n++;
        }
      } finally {
        await client.end();
      }
    }),
  );
  return n / seconds;
}

async function main(): Promise<void> {
  const [historyRows = 200_000, phaseSeconds = 8, rounds = 2, writers = 10, historyDays = 60] = process.argv.slice(2).map(Number);
  const db = await createBenchDatabase('history');
  try {
    await fillBacklog(db.pool, historyRows, 'h');
    // The history: the same rows, stamped over the `historyDays` days before the installation (the
    // builder must have hours left to count through every phase); not waiting for delivery.
    await db.pool.query(`UPDATE public.billinginfo SET datestamp = now() - interval '1 day' - make_interval(secs => (abs(hashtext(transaction)) % ($1::int * 86400)))`, [historyDays]);
    await db.pool.query('TRUNCATE dcache_probe.capture_queue');
    await db.pool.query('VACUUM ANALYZE public.billinginfo, public.doorinfo');
    const results: { without: number; with: number; hours: number }[] = [];
    const builderPhase = async (tag: string): Promise<{ rate: number; hours: number; complete: boolean }> => {
      await db.pool.query('TRUNCATE dcache_probe.stats_history, dcache_probe.stats_hour, dcache_probe.stats_day, dcache_probe.capture_queue');
      const stop = new AbortController();
      const builder = buildHistory(db.pool, { sinceMs: Date.now() - (historyDays + 2) * 86_400_000, pauseMs: DEFAULT_STATISTICS_OPTIONS.historyPauseMs, hourRetentionDays: 60, reportTape: false, onlyInterSiteTransfers: false, signal: stop.signal });
      const rate = await writePhase(db.url, writers, phaseSeconds, tag);
      stop.abort();
      const built = await builder;
      return { rate, hours: built.hoursCounted, complete: built.complete };
    };
    for (let round = 0; round < rounds; round++) {
      // ABBA: the phase that goes first alternates, so that a drift of the machine cancels out.
      let without: number;
      let withBuilder: { rate: number; hours: number; complete: boolean };
      if (round % 2 === 0) {
        without = await writePhase(db.url, writers, phaseSeconds, `a${round}`);
        withBuilder = await builderPhase(`b${round}`);
      } else {
        withBuilder = await builderPhase(`b${round}`);
        without = await writePhase(db.url, writers, phaseSeconds, `a${round}`);
      }
      await db.pool.query('TRUNCATE dcache_probe.capture_queue');
      results.push({ without, with: withBuilder.rate, hours: withBuilder.hours });
      note(`round ${round}: ${without.toFixed(0)} pairs/s without the builder, ${withBuilder.rate.toFixed(0)} with (${withBuilder.hours} hours counted meanwhile, all done: ${withBuilder.complete}) -> ${(withBuilder.rate / without).toFixed(3)}`);
    }
    const ratio = results.reduce((s, r) => s + r.with, 0) / results.reduce((s, r) => s + r.without, 0);
    const { rows } = await db.pool.query<{ size: string; n: string }>(`SELECT pg_total_relation_size('dcache_probe.stats_day') AS size, (SELECT count(*) FROM dcache_probe.stats_day) AS n`);
    note(`history rows ${historyRows}; insert rate with the builder running / without: ${ratio.toFixed(3)}; stats_day ${rows[0]!.n} rows, ${rows[0]!.size} bytes (${(Number(rows[0]!.size) / Number(rows[0]!.n)).toFixed(0)} B/row)`);
  } finally {
    await db.drop();
  }
}

void main();
