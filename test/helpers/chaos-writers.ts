/**
 * Steady billing writes for the fault test, in the two shapes dCache's billing cell writes:
 *  - pairs: one transaction per transfer holding its door row and its mover (one row when it
 *    has no door), as at low load;
 *  - batches: transactions of 100 single-row INSERTs taken from one mixed stream of door rows
 *    and movers (a door up to 40 messages before or after its mover, some movers twice as from
 *    a second billing cell), as dCache's writer threads insert under backlog.
 * Each shape is paced by its own token bucket. A transaction that a database fault ends is
 * retried on a new connection until it commits (dCache itself retries once, then drops the
 * batch; here every written transfer must stay known). Stopping writes out what was already
 * taken from the stream, so no mover is left waiting for a door row that never comes.
 */
import pg from 'pg';
import { TransferGenerator, messageStream, type Message, type Row, type SimTransfer } from '../../src/tools/demo/simulator';

export interface SteadyWritesOptions {
  url: string;
  seed: number;
  /** Pair transactions per second, shared by `pairWriters` connections. */
  pairsPerSecond?: number;
  pairWriters?: number;
  /** Rows per second of the batch shape, shared by `batchWriters` connections. */
  batchRowsPerSecond?: number;
  batchWriters?: number;
  batchRows?: number;
  /** A transaction that cannot commit for this long ends the run with an error. */
  giveUpMs?: number;
}

export interface WriteCounts {
  pairTransactions: number;
  batchTransactions: number;
  rows: number;
  /** Attempts that failed (a database fault) and were made again. */
  retried: number;
  /** The longest successful transaction, BEGIN to COMMIT, ms. */
  slowestCommitMs: number;
}

/** A token bucket shared by the writers of one shape. */
class Pace {
  private tokens = 0;
  private last = Date.now();

  constructor(private readonly perSecond: number, private readonly burst: number) {}

  async take(n: number, stopped: () => boolean): Promise<void> {
    for (;;) {
      const now = Date.now();
      this.tokens = Math.min(Math.max(this.burst, n), this.tokens + ((now - this.last) / 1000) * this.perSecond);
      this.last = now;
      if (this.tokens >= n || stopped()) {
        this.tokens -= n;
        return;
      }
      await new Promise((r) => setTimeout(r, Math.max(5, ((n - this.tokens) / this.perSecond) * 1000)));
    }
  }
}

/** One single-row INSERT, as dCache's billing cell writes it. */
function insertOf(m: Message): { text: string; values: unknown[] } {
  const columns = Object.keys(m.row);
  const values = columns.map((c) => {
    const v = (m.row as Row)[c];
    return v instanceof Date ? v.toISOString() : v;
  });
  const params = columns.map((c, i) => (c === 'datestamp' ? `$${i + 1}::timestamptz` : `$${i + 1}`));
  return { text: `INSERT INTO public.${m.table} (${columns.map((c) => pg.escapeIdentifier(c)).join(', ')}) VALUES (${params.join(', ')})`, values };
}

export class SteadyWrites {
  /** Every transfer handed to a writer, by mover transaction. */
  readonly transfers = new Map<string, SimTransfer>();
  readonly counts: WriteCounts = { pairTransactions: 0, batchTransactions: 0, rows: 0, retried: 0, slowestCommitMs: 0 };
  private readonly pairs: TransferGenerator;
  private readonly batches: TransferGenerator;
  private readonly stream: Message[] = [];
  private streamSeed: number;
  private stopping = false;
  /** The first writer's error, if one gave up (the others go on). */
  failure: Error | null = null;
  private writers: Promise<void>[] = [];
  private readonly o: Required<SteadyWritesOptions>;

  constructor(options: SteadyWritesOptions) {
    this.o = { pairsPerSecond: 20, pairWriters: 2, batchRowsPerSecond: 150, batchWriters: 8, batchRows: 100, giveUpMs: 60_000, ...options };
    this.pairs = new TransferGenerator({ seed: this.o.seed * 2 + 1, duplicateShare: 0, p2pShare: 0.03 });
    this.batches = new TransferGenerator({ seed: this.o.seed * 2 + 2, duplicateShare: 0.02, p2pShare: 0.03 });
    this.streamSeed = this.o.seed;
  }

  start(): void {
    const pairPace = new Pace(this.o.pairsPerSecond, 1);
    const batchPace = new Pace(this.o.batchRowsPerSecond, this.o.batchRows);
    const stopped = () => this.stopping;
    const nextPair = async (): Promise<Message[] | null> => {
      await pairPace.take(1, stopped);
      if (this.stopping) return null;
      const t = this.remember(this.pairs.next());
      const mover: Message = { table: 'billinginfo', row: t.mover };
      if (!t.door) return [mover];
      const door: Message = { table: 'doorinfo', row: t.door };
      // The door row first or second: both orders occur in dCache's transactions.
      return this.transfers.size % 2 ? [door, mover] : [mover, door];
    };
    const nextBatch = async (): Promise<Message[] | null> => {
      await batchPace.take(this.o.batchRows, stopped);
      if (this.stopping && this.stream.length === 0) return null;
      while (!this.stopping && this.stream.length < this.o.batchRows) {
        const block = Array.from({ length: 50 }, () => this.remember(this.batches.next()));
        this.stream.push(...messageStream(block, ++this.streamSeed, 40));
      }
      return this.stream.splice(0, this.o.batchRows);
    };
    this.writers = [
      ...Array.from({ length: this.o.pairWriters }, () => this.writer(nextPair, 'pairTransactions')),
      ...Array.from({ length: this.o.batchWriters }, () => this.writer(nextBatch, 'batchTransactions')),
    ];
  }

  /** Stops taking new transfers; resolves when everything taken is committed (or rejects). */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.writers);
    if (this.failure) throw this.failure;
  }

  private remember(t: SimTransfer): SimTransfer {
    this.transfers.set(t.mover.transaction as string, t);
    return t;
  }

  private async writer(next: () => Promise<Message[] | null>, shape: 'pairTransactions' | 'batchTransactions'): Promise<void> {
    let client: pg.Client | null = null;
    try {
      for (let chunk = await next(); chunk; chunk = await next()) {
        client = await this.commit(client, chunk);
        this.counts[shape]++;
        this.counts.rows += chunk.length;
      }
    } catch (err) {
      this.failure ??= err instanceof Error ? err : new Error(String(err));
    } finally {
      void client?.end().catch(() => undefined);
    }
  }

  private async connect(): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: this.o.url, application_name: 'dcache billing (simulated)', connectionTimeoutMillis: 5000, query_timeout: 30_000 });
    client.on('error', () => undefined); // a server restart ends idle connections: the next attempt reconnects
    await client.connect();
    return client;
  }

  /** Commits the chunk, on `client` or new connections; returns the connection that did it. */
  private async commit(client: pg.Client | null, chunk: readonly Message[]): Promise<pg.Client> {
    const giveUpAt = Date.now() + this.o.giveUpMs;
    for (let attempt = 1; ; attempt++) {
      try {
        client ??= await this.connect();
        const began = Date.now();
        await client.query('BEGIN');
        for (const m of chunk) await client.query(insertOf(m));
        await client.query('COMMIT');
        this.counts.slowestCommitMs = Math.max(this.counts.slowestCommitMs, Date.now() - began);
        return client;
      } catch (err) {
        void client?.end().catch(() => undefined);
        client = null;
        if (Date.now() > giveUpAt) throw new Error(`a billing writer could not commit for ${this.o.giveUpMs} ms: ${err instanceof Error ? err.message : String(err)}`);
        this.counts.retried++;
        // Back off before reconnecting (a restarting server refuses connections meanwhile).
        await new Promise((r) => setTimeout(r, Math.min(1000, 25 * 2 ** attempt)));
      }
    }
  }
}
