/**
 * The collector's acceptance, this build against another, in one run (the machine is shared and
 * noisy, so only figures taken side by side compare):
 *
 *   npx tsc -p bench/tsconfig.json && node dist/bench/collector-ab.js --baseline-commit 7b34040
 *        [--records 100000] [--rounds 3] [--clients 2] [--keep none] [--bundles FILE]
 *
 * Both collectors run as separate processes with `--keep none` (as in the catch-up bench); a
 * bare client posts the same multiupdate bundles (500 records each: by default built with the
 * probe's own functions, or the very bodies recorded by bench/sink.ts --record) to one, then the
 * other, alternating which goes first, with `clients` connections, every answer checked to be
 * 200 OK and every record counted (bench/baselines.ts collectorAcceptance). Reports records/s
 * and the collector's CPU seconds per 100k records (from /proc/<pid>/stat), each run and the
 * medians, and the ratios this build / baseline.
 *
 * --baseline-commit C builds commit C's src/ (git archive, tsc) into a temporary directory;
 * --baseline PATH uses an already built collector main.js instead.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_BUNDLE_SIZE } from '../src/config/schema';
import { TransferGenerator, type Row } from '../src/tools/demo/simulator';
import { mapRow, type MappingOptions } from '../src/record/mapping';
import { multiupdateForm } from '../src/record/envelope';
import { usageRecordXml } from '../src/record/xml';
import { collectorAcceptance, recordedBundles, type Acceptance } from './baselines';
import { buildCommit } from './lib/build';
import { COLLECTOR_MAIN } from './lib/env';
import { startCollector } from './lib/proc';
import { fixed, int, median } from './lib/stats';

/** jsonb's text form of a timestamptz, as the trigger's to_jsonb writes it. */
const pgTimestamp = (d: Date) => d.toISOString().replace('Z', '+00:00');
const asJson = (row: Row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, v instanceof Date ? pgTimestamp(v) : v]));

/** `records` records in bundles of 500, encoded by the probe's own functions. */
function probeBundles(records: number): { forms: string[]; records: number } {
  const options: MappingOptions = { probeName: 'dcache-transfer:bench.example.org', siteName: 'BENCH', grid: 'OSG', dcacheServerHost: 'dcache.example.org', reportTape: true };
  const gen = new TransferGenerator({ seed: 3, p2pShare: 0 });
  const xml: string[] = [];
  for (let id = 1; xml.length < records; id++) {
    const t = gen.next();
    const mapped = mapRow({ id: String(id), source: 'billinginfo', capturedAtMs: Date.now(), record: asJson(t.mover), datestampMs: (t.mover.datestamp as Date).getTime(), door: t.door ? asJson(t.door) : null }, options);
    if (mapped.kind === 'record') xml.push(usageRecordXml(mapped.record));
  }
  const forms: string[] = [];
  for (let i = 0; i < xml.length; i += DEFAULT_BUNDLE_SIZE) forms.push(multiupdateForm(xml.slice(i, i + DEFAULT_BUNDLE_SIZE), options.probeName, { backlog: 0 }));
  return { forms, records: xml.length };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      baseline: { type: 'string' },
      'baseline-commit': { type: 'string' },
      records: { type: 'string', default: '100000' },
      rounds: { type: 'string', default: '3' },
      clients: { type: 'string', default: '2' },
      keep: { type: 'string', default: 'none' },
      bundles: { type: 'string' },
    },
  });
  if (!values.baseline === !values['baseline-commit']) throw new Error('give --baseline PATH or --baseline-commit COMMIT');
  const keep = values.keep as 'none' | 'ids' | 'records';
  const clients = Number(values.clients);
  const tmp = mkdtempSync(join(tmpdir(), 'collector-ab-'));
  try {
    const baselineMain = values.baseline ?? buildCommit(values['baseline-commit']!, tmp).collectorMain;
    const bundles = values.bundles ? recordedBundles(values.bundles) : probeBundles(Number(values.records));
    process.stdout.write(`${int(bundles.records)} records in ${bundles.forms.length} bundles; --keep ${keep}; ${clients} connections\n`);

    const args = ['--port', '0', '--keep', keep];
    const builds = { baseline: await startCollector(keep, baselineMain, [], args), current: await startCollector(keep, COLLECTOR_MAIN, [], args) };
    const runs: Record<keyof typeof builds, Acceptance[]> = { baseline: [], current: [] };
    try {
      for (let round = 0; round < Number(values.rounds); round++) {
        const order: (keyof typeof builds)[] = round % 2 === 0 ? ['baseline', 'current'] : ['current', 'baseline'];
        for (const build of order) {
          const a = await collectorAcceptance(builds[build], bundles, DEFAULT_BUNDLE_SIZE, clients);
          runs[build].push(a);
          process.stdout.write(`round ${round + 1} ${build.padEnd(8)} ${int(a.recordsPerS).padStart(7)} records/s  ${fixed(a.collectorCpuPer100k).padStart(6)} collector CPU-s/100k  (${fixed(a.wallS, 1)} s)\n`);
        }
      }
    } finally {
      await Promise.all(Object.values(builds).map((c) => c.stop()));
    }
    const rate = (b: keyof typeof builds) => median(runs[b].map((a) => a.recordsPerS));
    const cpu = (b: keyof typeof builds) => median(runs[b].map((a) => a.collectorCpuPer100k));
    process.stdout.write(`median   baseline ${int(rate('baseline'))} records/s, ${fixed(cpu('baseline'))} CPU-s/100k; current ${int(rate('current'))} records/s, ${fixed(cpu('current'))} CPU-s/100k\n`);
    process.stdout.write(`ratio    current/baseline: records/s ${fixed(rate('current') / rate('baseline'))}x, CPU per record ${fixed(cpu('current') / cpu('baseline'))}x\n`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
