/**
 * 4. Baselines, measured in the same run as the probe:
 *  - the PostgreSQL floor: COPY of the queued rows joined to their door rows, to a client that
 *    discards them (psql > /dev/null): what the database can hand out at best;
 *  - the collector's acceptance rate: a bare client posting pre-built multiupdate bundles (the
 *    very bytes the probe sent, recorded by the null sink) as fast as the collector answers.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request, Agent } from 'undici';
import type { CollectorProcess } from './lib/proc';
import { cpuSeconds } from './lib/proc';

export interface CopyFloor {
  rows: number;
  wallS: number;
  rowsPerS: number;
  bytes: number;
}

/** COPY (queue ⋈ doorinfo) TO STDOUT through psql into /dev/null. */
export async function copyFloor(dbUrl: string, rows: number): Promise<CopyFloor> {
  const sql = `COPY (SELECT q.id, q.source, q.captured_at, q.record, to_jsonb(d) AS door
                  FROM dcache_probe.capture_queue q
                  LEFT JOIN public.doorinfo d
                    ON q.source = 'billinginfo' AND d.transaction = q.record ->> 'initiator' AND d.pnfsid = q.record ->> 'pnfsid'
                 ORDER BY q.id) TO STDOUT`;
  const started = performance.now();
  const child = spawn('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', dbUrl, '-c', sql], { stdio: ['ignore', 'pipe', 'pipe'] });
  let bytes = 0;
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (bytes += d.length)); // consumed and discarded
  child.stderr!.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  const wallS = (performance.now() - started) / 1000;
  if (code !== 0) throw new Error(`psql COPY failed: ${stderr}`);
  return { rows, wallS, rowsPerS: rows / wallS, bytes };
}

/**
 * The bundles the probe sent (recorded by the null sink, bench/sink.ts --record): the very
 * bytes, so the baseline needs none of the probe's internals.
 */
export function recordedBundles(file: string): { forms: string[]; records: number; bytes: number } {
  const forms = readFileSync(file, 'latin1').split('\n').filter((l) => l.includes('%2FJobUsageRecord%3E')); // not the ProbeDetails handshake
  const records = forms.reduce((n, f) => n + (f.match(/%2FJobUsageRecord%3E/g)?.length ?? 0), 0);
  return { forms, records, bytes: forms.reduce((n, f) => n + f.length, 0) };
}

export interface Acceptance {
  records: number;
  bundleSize: number;
  clients: number;
  wallS: number;
  recordsPerS: number;
  collectorCpuPer100k: number;
}

/** Posts the pre-built forms with `clients` concurrent requests; every answer must be 200 OK. */
export async function collectorAcceptance(collector: CollectorProcess, bundles: { forms: string[]; records: number }, bundleSize: number, clients: number): Promise<Acceptance> {
  await collector.reset();
  const agent = new Agent({ connections: clients, keepAliveTimeout: 30_000 });
  const endpoint = new URL('/gratia-servlets/rmi', collector.url);
  const cpu0 = cpuSeconds(collector.pid) ?? 0;
  let next = 0;
  const started = performance.now();
  const client = async () => {
    for (;;) {
      const form = bundles.forms[next++];
      if (form === undefined) return;
      const res = await request(endpoint, { method: 'POST', dispatcher: agent, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form });
      const body = await res.body.text();
      if (res.statusCode !== 200 || body !== 'OK') throw new Error(`collector answered ${res.statusCode} ${body.slice(0, 200)}`);
    }
  };
  await Promise.all(Array.from({ length: clients }, client));
  const wallS = (performance.now() - started) / 1000;
  const cpu = (cpuSeconds(collector.pid) ?? 0) - cpu0;
  await agent.close();
  const stats = await collector.stats();
  if (stats.recordsAccepted !== bundles.records) throw new Error(`collector accepted ${stats.recordsAccepted} of ${bundles.records}`);
  return { records: bundles.records, bundleSize, clients, wallS, recordsPerS: bundles.records / wallS, collectorCpuPer100k: (cpu / bundles.records) * 100_000 };
}
