/**
 * The WAL that one database wrote between two moments. The server is shared (other
 * developers' tests write WAL all the time), so the distance between two pg_current_wal_lsn()
 * readings would count every database's writes; instead the window's records are read back
 * with pg_walinspect (PostgreSQL 15+, contrib) and a record counts when one of its blocks
 * belongs to this database, or when its transaction wrote such a record (its commit record
 * has no block). A temporary physical replication slot, held from the start mark until the
 * records are read, keeps a checkpoint from recycling the window's WAL meanwhile; being
 * temporary, it goes with its session even if the bench dies.
 */
import pg from 'pg';

/** One kind of record on one relation: bytes include full-page images, fpiBytes is their part. */
export interface WalPart {
  /** "resource manager/record type", e.g. "Heap/LOCK" for a row lock. */
  kind: string;
  /** The table the record's first block belongs to (its indexes and TOAST counted with it), or "-". */
  relation: string;
  records: number;
  bytes: number;
  fpiBytes: number;
}

export interface WalUse {
  /** Every record of this database in the window, full-page images included. */
  bytes: number;
  /** Of which full-page images (they depend on where checkpoints fall, not on the design). */
  fpiBytes: number;
  records: number;
  /** Commit records: transactions that had an XID (wrote something). */
  commits: number;
  parts: WalPart[];
  /** pg_wal_lsn_diff over the window: the whole cluster's WAL (for scale). */
  clusterBytes: number;
}

/** Sums the parts that `pick` selects, e.g. one kind, or one relation, without FPIs. */
export function walBytes(use: WalUse, pick: (p: WalPart) => boolean, withFpi = true): number {
  return use.parts.filter(pick).reduce((sum, p) => sum + p.bytes - (withFpi ? 0 : p.fpiBytes), 0);
}

let windows = 0;

export class WalWindow {
  private constructor(
    private readonly client: pg.Client,
    private readonly start: string,
  ) {}

  /** Marks the start (the database needs `CREATE EXTENSION pg_walinspect`: see installWalInspect). */
  static async open(url: string): Promise<WalWindow> {
    const client = new pg.Client({ connectionString: url, application_name: 'dcache-probe bench wal' });
    await client.connect();
    client.on('error', () => undefined);
    try {
      const slot = `dcache_probe_bench_wal_${process.pid}_${++windows}`;
      await client.query('SELECT pg_create_physical_replication_slot($1, true, true)', [slot]);
      const { rows } = await client.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
      return new WalWindow(client, rows[0]!.lsn);
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
  }

  /** Marks the end, reads the window's records back and gives the slot up. */
  async close(): Promise<WalUse> {
    try {
      const { rows: end } = await this.client.query<{ lsn: string; cluster: string; db: string }>(
        `SELECT pg_current_wal_flush_lsn()::text AS lsn, pg_wal_lsn_diff(pg_current_wal_flush_lsn(), $1::pg_lsn)::text AS cluster,
                (SELECT oid::text FROM pg_database WHERE datname = current_database()) AS db`,
        [this.start],
      );
      const { lsn, cluster, db } = end[0]!;
      const { rows } = await this.client.query<{ kind: string; node: string | null; n: string; bytes: string; fpi: string }>(
        `WITH r AS (
           SELECT xid::text::bigint AS xid, resource_manager || '/' || record_type AS kind, record_length, fpi_length,
                  coalesce(block_ref ~ $3, false) AS ours, substring(block_ref FROM $3 || '([0-9]+)') AS node
             FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)
         ), x AS (SELECT DISTINCT xid FROM r WHERE ours AND xid <> 0)
         SELECT kind, node, count(*)::text AS n, sum(record_length)::text AS bytes, sum(fpi_length)::text AS fpi
           FROM r
          WHERE ours OR xid IN (SELECT xid FROM x)
          GROUP BY kind, node`,
        [this.start, lsn, `rel [0-9]+/${db}/`],
      );
      const owners = await this.relationOwners();
      const use: WalUse = { bytes: 0, fpiBytes: 0, records: 0, commits: 0, parts: [], clusterBytes: Number(cluster) };
      const parts = new Map<string, WalPart>();
      for (const r of rows) {
        const relation = r.node === null ? '-' : owners.get(r.node) ?? '(other)';
        const part = parts.get(`${r.kind} ${relation}`) ?? { kind: r.kind, relation, records: 0, bytes: 0, fpiBytes: 0 };
        part.records += Number(r.n);
        part.bytes += Number(r.bytes);
        part.fpiBytes += Number(r.fpi);
        parts.set(`${r.kind} ${relation}`, part);
        use.bytes += Number(r.bytes);
        use.fpiBytes += Number(r.fpi);
        use.records += Number(r.n);
        if (r.kind === 'Transaction/COMMIT') use.commits += Number(r.n);
      }
      use.parts = [...parts.values()];
      return use;
    } finally {
      await this.client.end().catch(() => undefined); // the temporary slot goes with the session
    }
  }

  /**
   * relfilenode → the schema-qualified table it stores: a table, its indexes, its TOAST table
   * and that one's index all map to the table (read after the window: a TRUNCATE gives new nodes).
   */
  private async relationOwners(): Promise<Map<string, string>> {
    const { rows } = await this.client.query<{ node: string; owner: string }>(`
      WITH rel AS (
        SELECT c.relfilenode, coalesce(i.indrelid, c.oid) AS tbl
          FROM pg_class c LEFT JOIN pg_index i ON i.indexrelid = c.oid
         WHERE c.relfilenode <> 0
      ), tbl AS (
        SELECT r.relfilenode, coalesce((SELECT o.oid FROM pg_class o WHERE o.reltoastrelid = r.tbl), r.tbl) AS tbl FROM rel r
      )
      SELECT t.relfilenode::text AS node, n.nspname || '.' || c.relname AS owner
        FROM tbl t JOIN pg_class c ON c.oid = t.tbl JOIN pg_namespace n ON n.oid = c.relnamespace`);
    return new Map(rows.map((r) => [r.node, r.owner]));
  }
}

export async function installWalInspect(pool: pg.Pool): Promise<void> {
  await pool.query('CREATE EXTENSION IF NOT EXISTS pg_walinspect');
}
