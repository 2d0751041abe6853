/**
 * Bench databases on the real PostgreSQL: dCache's modern billing schema (the fixture) with
 * the probe's migration, filled fast with INSERT … SELECT from generate_series so that the
 * real capture triggers copy every row into dcache_probe.capture_queue.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { migrate } from '../../src/db/migrations';
import { FIXTURES, PG_ADMIN_URL, databaseUrl } from './env';

export interface BenchDatabase {
  name: string;
  url: string;
  pool: pg.Pool;
  drop(): Promise<void>;
}

export async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: PG_ADMIN_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/** A fresh billing database (modern form) with the probe installed unless told otherwise. */
export async function createBenchDatabase(label: string, options: { migrate?: boolean } = {}): Promise<BenchDatabase> {
  const name = `dcache_probe_bench_${label}_${process.pid}`;
  await adminQuery(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
  await adminQuery(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  const url = databaseUrl(name);
  const pool = new pg.Pool({ connectionString: url, max: 4, application_name: 'dcache-probe bench' });
  pool.on('error', () => undefined);
  await pool.query(readFileSync(join(FIXTURES, 'billing-modern.sql'), 'utf8'));
  if (options.migrate !== false) await migrate(url, 'public');
  return {
    name,
    url,
    pool,
    async drop() {
      await pool.end().catch(() => undefined);
      await adminQuery(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
    },
  };
}

/**
 * Realistic-looking mover and door rows for i in [from, to]: the protocols, doors, users
 * (including a DN with XML markup characters), pools and error mix of src/tools/demo/simulator.ts,
 * every mover with its door row (same transaction and pnfsid), all transactions unique.
 */
function fillSql(tag: string): { billing: string; door: string } {
  const common = `
    WITH s AS (
      SELECT i,
             (ARRAY['GFtp-2.0','Https-1.1','Http-1.1','Xrootd-5.0','DCap-3.0','NFS4-4.1','RemoteHttpsDataTransfer-1.1'])[1 + i % 7] AS protocol,
             (ARRAY['GFTP-door01@gridftpDomain','WebDAV-door01@webdavDomain','WebDAV-door02@webdavDomain','Xrootd-door01@xrootdDomain','DCap-door01@dcapDomain','NFS-door01@nfsDomain','SRM-srm01@srmDomain'])[1 + i % 7] AS door,
             1 + (i / 7) % 5 AS u,
             1 + i % 8 AS pool,
             (i * 2654435761) % 3500000000 + 3000 AS size,
             CASE WHEN i % 33 = 0 THEN 10006 ELSE 0 END AS errorcode,
             now() - make_interval(secs => (i % 3000) / 1000.0) AS ended,
             '0000' || upper(md5('${tag}' || i)) AS pnfsid,
             'door:' || '${tag}' || ':' || i AS initiator,
             CASE WHEN i % 4 = 0 THEN '2001:db8:0:0:0:0:0:' || (1 + i % 200) ELSE '192.0.2.' || (1 + i % 250) END AS client
        FROM generate_series($1::bigint, $2::bigint) AS i
    ), v AS (
      SELECT s.*,
             (ARRAY['/DC=ch/DC=cern/OU=Organic Units/OU=Users/CN=cmsprod/CN=123456/CN=Robot: CMS Production',
                    '/C=SI/O=SiGNET/O=IJS/OU=F9/CN=Andrej Filipcic',
                    '/DC=org/DC=cilogon/C=US/O=University/CN=Jane Doe A1234',
                    'tester',
                    '/DC=ch/DC=cern/OU=Users/CN=dteam <&> "quoted" user'])[u] AS owner,
             (ARRAY['/cms/Role=production/Capability=NULL','/atlas/Role=NULL/Capability=NULL','/osg/Role=NULL/Capability=NULL',NULL,'/dteam/Role=NULL/Capability=NULL'])[u] AS fqan,
             (ARRAY[5001,5002,6001,1000,7001])[u] AS uid,
             (ARRAY[5000,5000,6000,1000,7000])[u] AS gid,
             greatest(1, size / 50000)::bigint AS ctime
        FROM s
    )`;
  const billing = `${common}
    INSERT INTO public.billinginfo (client, initiator, isnew, protocol, transfersize, fullsize, storageclass, connectiontime,
                                    action, cellname, datestamp, errorcode, errormessage, pnfsid, transaction, p2p, fqan,
                                    mappeduid, mappedgid, owner)
    SELECT client, initiator, i % 10 < 3, protocol, size, size,
           (ARRAY['cms:default@osm','atlas:datadisk@osm','<Unknown>:<Unknown>@osm'])[1 + i % 3],
           ctime, 'transfer', 'pool_r0' || pool || '@pool_r0' || pool || 'Domain', ended, errorcode,
           CASE WHEN errorcode = 0 THEN '' ELSE 'No connection from client after 300 seconds. Giving up.' END,
           pnfsid, 'pool:pool_r0' || pool || '@pool_r0' || pool || 'Domain:' || '${tag}' || '-' || i, false, fqan,
           CASE WHEN errorcode = 0 THEN uid ELSE -1 END, CASE WHEN errorcode = 0 THEN gid ELSE -1 END, owner
      FROM v`;
  const door = `${common}
    INSERT INTO public.doorinfo (client, mappedgid, mappeduid, owner, path, queuedtime, connectiontime, action, cellname,
                                 datestamp, errorcode, errormessage, pnfsid, transaction, fqan)
    SELECT CASE WHEN protocol LIKE 'DCap%' THEN 'unknown' WHEN protocol LIKE 'Remote%' THEN 'remote-' || i % 5 || '.example.net' ELSE client END,
           gid, uid, owner, '/pnfs/example.org/data/' || uid || '/store/file-' || '${tag}' || '-' || i, i % 20, ctime + i % 100,
           'request', door, ended + interval '20 ms', errorcode,
           CASE WHEN errorcode = 0 THEN '' ELSE 'No connection from client after 300 seconds. Giving up.' END,
           pnfsid, initiator, fqan
      FROM v`;
  return { billing, door };
}

/**
 * Inserts n transfers (a mover row and its door row each) in chunks, one transaction per
 * chunk, through the installed triggers. `tag` keeps transactions unique across fills.
 */
export async function fillBacklog(pool: pg.Pool, n: number, tag: string, chunk = 50_000): Promise<void> {
  const { billing, door } = fillSql(tag.replace(/[^a-z0-9]/gi, ''));
  const client = await pool.connect();
  try {
    for (let from = 1; from <= n; from += chunk) {
      const to = Math.min(n, from + chunk - 1);
      await client.query('BEGIN');
      await client.query(door, [from, to]);
      await client.query(billing, [from, to]);
      await client.query('COMMIT');
    }
  } finally {
    client.release();
  }
}

/**
 * What autovacuum would have done after such a fill (it is off on the shared test server):
 * statistics and visibility for the billing tables, so the planner sees doorinfo's real size.
 */
export async function analyzeBilling(pool: pg.Pool): Promise<void> {
  await pool.query('VACUUM ANALYZE public.billinginfo, public.doorinfo');
}

/** Queue rows, counted. */
export async function queueDepth(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM dcache_probe.capture_queue');
  return Number(rows[0]?.n ?? 0);
}

/** Keeps a copy of the captured queue so that each run can start from the same backlog. */
export async function snapshotQueue(pool: pg.Pool): Promise<void> {
  await pool.query('DROP TABLE IF EXISTS public.bench_queue_snapshot');
  await pool.query('CREATE TABLE public.bench_queue_snapshot AS SELECT id, source, captured_at, record FROM dcache_probe.capture_queue ORDER BY id');
}

/**
 * Puts the snapshot back as the queue (byte-identical rows, in the same order) and forgets
 * delivered keys, as if the triggers had just captured them; then ANALYZE, as autovacuum would
 * have after such a change.
 */
export async function restoreQueue(url: string): Promise<number> {
  // Its own connection, closed at the end, so that its statistics are flushed at once and do
  // not mix with the measured run's (pg_stat_database block counters).
  const client = new pg.Client({ connectionString: url, application_name: 'dcache-probe bench restore' });
  await client.connect();
  try {
    await client.query('TRUNCATE dcache_probe.capture_queue, dcache_probe.delivered_key, dcache_probe.quarantine');
    await client.query(`INSERT INTO dcache_probe.capture_queue (source, captured_at, record)
                        SELECT source, captured_at, record FROM public.bench_queue_snapshot ORDER BY id`);
    await client.query('VACUUM ANALYZE dcache_probe.capture_queue');
    await client.query('VACUUM ANALYZE dcache_probe.delivered_key');
    const { rows } = await client.query<{ n: string }>('SELECT count(*) AS n FROM dcache_probe.capture_queue');
    return Number(rows[0]?.n ?? 0);
  } finally {
    await client.end();
  }
}

/** Empties the billing tables and the probe's tables. */
export async function truncateAll(pool: pg.Pool): Promise<void> {
  await pool.query('TRUNCATE public.billinginfo, public.doorinfo, dcache_probe.capture_queue, dcache_probe.delivered_key, dcache_probe.quarantine');
}
