/**
 * A dCache billing traffic simulator, for the demo, the tests and the benchmarks.
 *
 * It writes the billing database the way dCache's billing cell does: one stream of mixed
 * messages (mover rows, door rows), consumed by several writer connections that each take a
 * chunk of 1 to N rows and insert them in one transaction, one INSERT per row, committing
 * concurrently in any order. Door rows land before or after their mover rows; some movers are
 * inserted twice (two billing cells); some are pool-to-pool copies; datestamps are the
 * senders' clocks, out of commit order. Deterministic for a given seed.
 */
import pg from 'pg';
import { inTransaction } from '../../db/pool';
import { pause } from '../../lib';

export type SchemaForm = 'modern' | 'legacy';

/** A billing row: column -> value (Date for timestamps). */
export type Row = Record<string, string | number | boolean | Date | null>;

export interface SimTransfer {
  mover: Row;
  door: Row | null;
  /** Inserted twice, as with two billing cells. */
  duplicated: boolean;
  /** Expected at the collector (not a p2p copy). */
  reportable: boolean;
}

export interface Message {
  table: 'billinginfo' | 'doorinfo' | 'storageinfo';
  row: Row;
}

/** mulberry32: a small, fast, seedable PRNG. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PROTOCOLS: [string, number][] = [
  ['GFtp-2.0', 20],
  ['Https-1.1', 20],
  ['Http-1.1', 8],
  ['Xrootd-5.0', 25],
  ['DCap-3.0', 12],
  ['NFS4-4.1', 5],
  ['RemoteHttpsDataTransfer-1.1', 10],
];
const DOORS: Record<string, string> = {
  'GFtp-2.0': 'GFTP-door01@gridftpDomain',
  'Https-1.1': 'WebDAV-door01@webdavDomain',
  'Http-1.1': 'WebDAV-door02@webdavDomain',
  'Xrootd-5.0': 'Xrootd-door01@xrootdDomain',
  'DCap-3.0': 'DCap-door01@dcapDomain',
  'NFS4-4.1': 'NFS-door01@nfsDomain',
  'RemoteHttpsDataTransfer-1.1': 'SRM-srm01@srmDomain',
};
const USERS = [
  { dn: '/DC=ch/DC=cern/OU=Organic Units/OU=Users/CN=cmsprod/CN=123456/CN=Robot: CMS Production', uid: 5001, gid: 5000, fqan: '/cms/Role=production/Capability=NULL' },
  { dn: '/C=SI/O=SiGNET/O=IJS/OU=F9/CN=Andrej Filipcic', uid: 5002, gid: 5000, fqan: '/atlas/Role=NULL/Capability=NULL' },
  { dn: '/DC=org/DC=cilogon/C=US/O=University/CN=Jane Doe A1234', uid: 6001, gid: 6000, fqan: '/osg/Role=NULL/Capability=NULL' },
  { dn: 'tester', uid: 1000, gid: 1000, fqan: null },
  { dn: '/DC=ch/DC=cern/OU=Users/CN=dteam <&> "quoted" user', uid: 7001, gid: 7000, fqan: '/dteam/Role=NULL/Capability=NULL' },
];
const ERRORS: [number, string][] = [
  [10006, 'No connection from client after 300 seconds. Giving up.'],
  [10018, 'Permission denied'],
  [666, 'Transfer failed: broken pipe'],
];

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

function weighted(random: () => number, items: readonly [string, number][]): string {
  const total = items.reduce((s, [, w]) => s + w, 0);
  let x = random() * total;
  for (const [item, w] of items) if ((x -= w) < 0) return item;
  return items[items.length - 1]![0];
}

export interface GeneratorOptions {
  seed?: number;
  form?: SchemaForm;
  /** Shares, 0..1. */
  p2pShare?: number;
  duplicateShare?: number;
  noDoorShare?: number;
  errorShare?: number;
  /** Datestamps are "now" minus up to this many ms (clock skew, queueing in dCache). */
  clockSkewMs?: number;
  /** The clock of the datestamps (Date.now by default; the demo's history sets its own). */
  now?: () => number;
}

/** A user's VO as the statistics name it: the FQAN's first group, or "(none)". */
export function voOf(fqan: string | null): string {
  return fqan?.match(/^\/([^/]+)/)?.[1] ?? '(none)';
}

/**
 * Abnormal traffic the demo can inject (docs/DASHBOARD.md): a pool that fails most of its
 * transfers, and permission-denied attempts by one user from one client network.
 */
export interface Injection {
  /** Transfers on this pool (cellname) fail with errorcode 204 with probability faultShare. */
  faultPool?: string;
  faultShare?: number;
  /** This share of all transfers become permission-denied (10018) attempts ... */
  misuseShare?: number;
  /** ... from this network ("198.18.7": clients 198.18.7.1-250) ... */
  misuseNetwork?: string;
  /** ... by USERS[misuseUser]. */
  misuseUser?: number;
}

export const INJECTED_FAULT_POOL = 'pool_r03@pool_r03Domain';
export const INJECTED_MISUSE_NETWORK = '198.18.7';

export class TransferGenerator {
  /** Abnormal traffic to mix in from now on (none by default). */
  inject: Injection = {};
  /**
   * The mix of VOs (weight by VO, voOf; a VO not named has none) and each VO's storage class,
   * from now on; null: every user and storage class alike (the live demo's mix). The demo's
   * history sets them to give VOs and storage classes different shares.
   */
  voWeights: Readonly<Record<string, number>> | null = null;
  storageClassOf: ((vo: string, random: () => number) => string | null) | null = null;
  private readonly random: () => number;
  private counter = 0;
  private readonly form: SchemaForm;
  private readonly now: () => number;
  /** Distinguishes runs: transaction ids must not repeat across runs on one database. */
  private readonly runId: string;

  constructor(private readonly options: GeneratorOptions = {}) {
    this.random = rng(options.seed ?? 1);
    this.form = options.form ?? 'modern';
    this.now = options.now ?? Date.now;
    this.runId = (options.seed ?? 1).toString(36) + '-' + Math.floor(this.random() * 1e9).toString(36);
  }

  next(): SimTransfer {
    const r = this.random;
    const n = ++this.counter;
    const protocol = weighted(r, PROTOCOLS);
    // (One draw either way: seeded runs without a mix stay the same.)
    let user = this.voWeights ? this.weightedUser(r()) : pick(r, USERS);
    const poolNo = 1 + Math.floor(r() * 8);
    const pool = `pool_r0${poolNo}@pool_r0${poolNo}Domain`;
    const p2p = this.form === 'modern' && r() < (this.options.p2pShare ?? 0.03);
    const failed = r() < (this.options.errorShare ?? 0.03);
    let [errorcode, errormessage] = failed ? pick(r, ERRORS) : [0, ''];
    const isnew = !p2p && r() < 0.3;
    let size = Math.floor(Math.exp(8 + r() * 14)); // ~3 KB .. ~3.5 GB
    const broken = !p2p && r() < 0.002;
    let connectiontime = Math.max(1, Math.floor(size / (20e6 + r() * 200e6) * 1000));
    const end = this.now() - Math.floor(r() * (this.options.clockSkewMs ?? 3000));
    const clientNet = pick(r, ['192.0.2', '198.51.100', '203.0.113', '2001:db8:0:0:0:0:0']);
    let client = clientNet.includes(':') ? `${clientNet}:${1 + Math.floor(r() * 200)}` : `${clientNet}.${1 + Math.floor(r() * 250)}`;
    // Injected anomalies draw random numbers only while they are on (seeded runs stay the same).
    const inject = this.inject;
    if (!p2p && inject.faultPool === pool && r() < (inject.faultShare ?? 0.8)) [errorcode, errormessage] = [204, 'I/O error on the pool disk (injected fault)'];
    if (!p2p && inject.misuseShare && r() < inject.misuseShare) {
      user = USERS[inject.misuseUser ?? 2]!;
      client = `${inject.misuseNetwork ?? INJECTED_MISUSE_NETWORK}.${1 + Math.floor(r() * 250)}`;
      [errorcode, errormessage] = [10018, 'Permission denied (injected misuse)'];
      size = 0;
      connectiontime = 1;
    }
    const pnfsid = `0000${(n * 2654435761 % 0xffffffff).toString(16).toUpperCase().padStart(8, '0')}${this.runId.replace(/[^0-9a-z]/g, '').toUpperCase().padEnd(24, '0').slice(0, 24)}`;
    const noDoor = !p2p && r() < (this.options.noDoorShare ?? 0.01);
    const doorCell = DOORS[protocol]!;
    const initiator = p2p ? `pool:pool_r0${1 + ((poolNo + 1) % 8)}@pool_r0${1 + ((poolNo + 1) % 8)}Domain` : noDoor ? '<undefined>' : `door:${doorCell}:${this.runId}:${n}:${end - connectiontime - 5}`;

    const mover: Row = {
      datestamp: new Date(end),
      cellname: pool,
      action: 'transfer',
      transaction: `pool:${pool}:${end}-${this.runId}-${n}`,
      pnfsid,
      fullsize: size,
      transfersize: broken ? -1 : size,
      storageclass: this.storageClassOf ? this.storageClassOf(voOf(user.fqan), r) : pick(r, ['cms:default@osm', 'atlas:datadisk@osm', '<Unknown>:<Unknown>@osm', null]),
      isnew,
      client: p2p ? `pool-host-0${poolNo}.example.org` : client,
      connectiontime,
      errorcode,
      errormessage,
      protocol: p2p ? 'Xrootd-5.0' : protocol,
      initiator,
    };
    if (this.form === 'modern') {
      Object.assign(mover, {
        p2p,
        fqan: p2p ? null : user.fqan,
        mappeduid: p2p ? 0 : failed ? -1 : user.uid,
        mappedgid: p2p ? 0 : failed ? -1 : user.gid,
        owner: p2p ? null : user.dn,
      });
    }
    const door: Row | null =
      p2p || noDoor
        ? null
        : {
            datestamp: new Date(end + Math.floor(r() * 50)),
            cellname: doorCell,
            action: 'request',
            owner: user.dn,
            mappeduid: user.uid,
            mappedgid: user.gid,
            client: protocol.startsWith('DCap') ? 'unknown' : protocol.startsWith('Remote') ? `remote-${Math.floor(r() * 5)}.example.net` : client,
            transaction: initiator,
            pnfsid,
            path: `/pnfs/example.org/data/${user.uid}/file-${n}`,
            queuedtime: Math.floor(r() * 20),
            connectiontime: connectiontime + Math.floor(r() * 100),
            errorcode,
            errormessage,
            ...(this.form === 'modern' ? { fqan: user.fqan } : {}),
          };
    const duplicated = !p2p && r() < (this.options.duplicateShare ?? 0.01);
    return { mover, door, duplicated, reportable: !p2p };
  }

  /** The user at `x` (0..1) of the cumulative VO weights. */
  private weightedUser(x: number): (typeof USERS)[number] {
    const weights = USERS.map((u) => this.voWeights![voOf(u.fqan)] ?? 0);
    const total = weights.reduce((a, b) => a + b, 0);
    let left = x * total;
    let last = USERS[0]!;
    for (let i = 0; i < USERS.length; i++) {
      if (weights[i]! <= 0) continue;
      last = USERS[i]!;
      if ((left -= weights[i]!) < 0) break;
    }
    return last;
  }
}

/**
 * Orders the transfers' rows into one message stream as dCache's queue would see them: a
 * door row lands up to `spread` messages before or after its mover; a duplicated mover again
 * later (the second billing cell).
 */
export function messageStream(transfers: readonly SimTransfer[], seed = 7, spread = 40): Message[] {
  const r = rng(seed);
  const slots: { at: number; message: Message }[] = [];
  transfers.forEach((t, i) => {
    const at = i * 10;
    slots.push({ at, message: { table: 'billinginfo', row: t.mover } });
    if (t.door) slots.push({ at: at + Math.round((r() * 2 - 1) * spread * 10), message: { table: 'doorinfo', row: t.door } });
    if (t.duplicated) slots.push({ at: at + Math.round(r() * spread * 10) + 1, message: { table: 'billinginfo', row: t.mover } });
  });
  return slots.sort((a, b) => a.at - b.at).map((s) => s.message);
}

/** Column lists of the tables in each schema form (what the simulator may insert). */
function insertSql(table: string, row: Row, schema: string): { sql: string; values: unknown[] } {
  const columns = Object.keys(row);
  const values = columns.map((c) => {
    const v = row[c];
    return v instanceof Date ? v.toISOString() : v;
  });
  const placeholders = columns.map((c, i) => (c === 'datestamp' ? `$${i + 1}::timestamptz` : `$${i + 1}`));
  return { sql: `INSERT INTO ${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(table)} (${columns.map((c) => pg.escapeIdentifier(c)).join(', ')}) VALUES (${placeholders.join(', ')})`, values };
}

export interface WriterOptions {
  /** Connection string of the billing database. */
  url: string;
  schema?: string;
  writers?: number;
  /** Largest transaction; sizes are skewed small like dCache at moderate load. */
  maxTransactionRows?: number;
  /** Session TimeZone of the writers (legacy databases store billing-JVM local time). */
  timeZone?: string;
  seed?: number;
  /** Called after each commit with the messages it committed and the commit time. */
  onCommit?: (messages: readonly Message[], committedAt: number) => void;
  /** Pacing: called with the size of the next transaction before its rows are taken; may wait. */
  beforeTransaction?: (rows: number) => Promise<void>;
}

/** A size from 1 to max, mostly small: half the transactions hold one row. */
export function transactionSize(random: () => number, max: number): number {
  if (max <= 1 || random() < 0.5) return 1;
  return Math.max(1, Math.min(max, Math.floor(Math.exp(random() * Math.log(max)))));
}

/** Inserts a finite message stream with `writers` concurrent connections, like dCache's billing cell. */
export async function writeMessages(messages: readonly Message[], options: WriterOptions): Promise<void> {
  let next = 0;
  await runWriters((n) => {
    const chunk = messages.slice(next, next + n);
    next += chunk.length;
    return chunk;
  }, options);
}

/**
 * Runs `writers` connections that each repeatedly take the next chunk of messages (`take(n)`
 * returns up to n; an empty array ends that writer) and insert it in one transaction.
 */
export async function runWriters(take: (n: number) => Message[], options: WriterOptions): Promise<void> {
  const schema = options.schema ?? 'public';
  const random = rng(options.seed ?? 11);
  const writer = async (): Promise<void> => {
    const client = new pg.Client({ connectionString: options.url, application_name: 'dcache billing (simulated)', options: options.timeZone ? `-c TimeZone=${options.timeZone}` : undefined });
    // A lost connection fails this writer's query (and so runWriters), not the whole process.
    client.on('error', () => undefined);
    await client.connect();
    try {
      for (;;) {
        // Pace before taking, as dCache's writers take from its queue when they are free:
        // rows taken are written at once, so a door row does not wait behind a paused chunk.
        const size = transactionSize(random, options.maxTransactionRows ?? 1000);
        await options.beforeTransaction?.(size);
        const chunk = take(size);
        if (chunk.length === 0) return;
        // (One connection per writer, as each of dCache's billing threads has its own.)
        await inTransaction(client, async () => {
          for (const m of chunk) {
            const { sql, values } = insertSql(m.table, m.row, schema);
            await client.query(sql, values);
          }
        });
        options.onCommit?.(chunk, Date.now());
      }
    } finally {
      await client.end();
    }
  };
  await Promise.all(Array.from({ length: options.writers ?? 10 }, writer));
}

/** The live traffic's generator: the demo's mix, seeded (a random seed unless given). */
export function liveGenerator(options: { seed?: number; now?: () => number } = {}): TransferGenerator {
  return new TransferGenerator({ seed: options.seed ?? Date.now() % 100000, clockSkewMs: 1500, now: options.now });
}

/** Live traffic: messages generated on demand, paced to `rate` rows per second. */
export class LiveTraffic {
  readonly generator: TransferGenerator;
  private buffer: Message[] = [];
  private tokens = 0;
  private last = Date.now();
  private readonly order: () => number;
  stopped = false;
  /** Reportable transactions committed so far. */
  readonly committed = new Set<string>();

  constructor(private readonly rate: number, seed?: number) {
    this.generator = liveGenerator({ seed });
    this.order = rng((seed ?? Date.now()) + 1);
  }

  /**
   * Up to n messages. Once stopped, the writers still write what was generated and no more:
   * it holds door rows of movers already written (as dCache would write them), so that no
   * mover is left waiting for its door row until its grace period ends.
   */
  take(n: number): Message[] {
    while (!this.stopped && this.buffer.length < n) {
      const transfers = Array.from({ length: 50 }, () => this.generator.next());
      this.buffer.push(...messageStream(transfers, Math.floor(this.order() * 1e6), 5));
    }
    return this.buffer.splice(0, n);
  }

  /** Token bucket shared by all writers. */
  async pace(rows: number): Promise<void> {
    for (;;) {
      const now = Date.now();
      this.tokens = Math.min(this.rate, this.tokens + ((now - this.last) / 1000) * this.rate);
      this.last = now;
      if (this.tokens >= rows || this.stopped) {
        this.tokens -= rows;
        return;
      }
      await pause(Math.max(5, ((rows - this.tokens) / this.rate) * 1000));
    }
  }

  onCommit(messages: readonly Message[]): void {
    for (const m of messages) if (m.table === 'billinginfo' && m.row.p2p !== true) this.committed.add(m.row.transaction as string);
  }
}


export interface SimulateOptions {
  url: string;
  schema?: string;
  rate: number;
  writers?: number;
  durationSeconds?: number;
}

/** Writes live traffic until the duration ends or SIGINT/SIGTERM; returns reportable transfers committed. */
export async function simulateTraffic(options: SimulateOptions): Promise<number> {
  const traffic = new LiveTraffic(options.rate);
  const stop = () => {
    traffic.stopped = true;
  };
  process.on('SIGINT', stop).on('SIGTERM', stop);
  const timer = options.durationSeconds === undefined ? undefined : setTimeout(stop, options.durationSeconds * 1000);
  try {
    await runWriters((n) => traffic.take(n), {
      url: options.url,
      schema: options.schema,
      writers: options.writers ?? 10,
      maxTransactionRows: 200,
      beforeTransaction: (rows) => traffic.pace(rows),
      onCommit: (messages) => traffic.onCommit(messages),
    });
  } finally {
    clearTimeout(timer);
    process.off('SIGINT', stop).off('SIGTERM', stop);
  }
  return traffic.committed.size;
}
