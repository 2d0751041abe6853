/**
 * EXPERIMENT: V8 heap flags for the probe process, on one catch-up backlog, in rotation (so each
 * variant sees the same machine load on average). Peak RSS is mostly V8 heap headroom and
 * garbage collection is a sixth of the probe's CPU in catch-up; both depend on the young
 * generation's size (--max-semi-space-size, MB) and on how far the old generation may grow
 * before a full collection (--max-old-space-size, MB).
 *
 *   node dist/bench/experiments/heap-flags.js [ROWS] [ROUNDS] [sink|collector]
 *
 * Result that chose --max-semi-space-size=4 for the image and the unit (100k rows → null sink,
 * 3 rounds, medians, ÷ Node's default): semi 2 0.94× rate, 171 MB; semi 4 0.99×, CPU 0.97×,
 * 186 MB; default 220 MB; semi 32 1.04×, CPU 0.90×, 258 MB; old 96 0.87×, CPU 1.28×, 152 MB;
 * old 128 0.84×, CPU 1.35×, 151 MB; semi 4 + old 128 0.80×, CPU 1.50×, 128 MB.
 */
import { catchupRun } from '../catchup';
import { analyzeBilling, createBenchDatabase, fillBacklog, snapshotQueue } from '../lib/db';
import { SINK_MAIN } from '../lib/env';
import { startCollector } from '../lib/proc';
import { fixed, int, percentile, sorted } from '../lib/stats';

const VARIANTS: Record<string, string[]> = {
  // Node 20's own default on 64-bit (a 32 MB new space); the probe is deployed with semi 4.
  default: ['--max-semi-space-size=16'],
  'semi 2': ['--max-semi-space-size=2'],
  'semi 4': ['--max-semi-space-size=4'],
  'semi 32': ['--max-semi-space-size=32'],
  'old 96': ['--max-old-space-size=96'],
  'old 128': ['--max-old-space-size=128'],
  'semi 4 + old 128': ['--max-semi-space-size=4', '--max-old-space-size=128'],
};

async function main(): Promise<void> {
  const rows = Number(process.argv[2] ?? 100_000);
  const rounds = Number(process.argv[3] ?? 3);
  const target = process.argv[4] ?? 'sink';
  const db = await createBenchDatabase('xheap');
  const collector = target === 'sink' ? await startCollector('none', SINK_MAIN) : await startCollector('none');
  const results = new Map<string, { rowsPerS: number; cpu: number; rss: number }[]>();
  try {
    await fillBacklog(db.pool, rows, 'xh');
    await snapshotQueue(db.pool);
    await analyzeBilling(db.pool);
    const names = Object.keys(VARIANTS);
    for (let round = 0; round < rounds; round++) {
      // A different starting variant each round.
      const order = names.map((_, i) => names[(i + round) % names.length]!);
      for (const name of order) {
        const r = await catchupRun({ pool: db.pool, dbUrl: db.url, collector }, rows, 500, 2, VARIANTS[name]!, undefined, name);
        if (r.delivered !== rows) throw new Error(`${name}: delivered ${r.delivered} of ${rows}`);
        const list = results.get(name) ?? [];
        list.push({ rowsPerS: r.rowsPerS, cpu: r.probeCpuPer100k, rss: r.peakRssMb });
        results.set(name, list);
        process.stderr.write(`round ${round + 1} ${name}: ${int(r.rowsPerS)} rows/s, ${fixed(r.probeCpuPer100k)} CPU s/100k, RSS ${fixed(r.peakRssMb, 0)} MB\n`);
      }
    }
  } finally {
    await collector.stop();
    await db.drop();
  }
  const median = (xs: number[]) => percentile(sorted(xs), 50);
  const base = results.get('default')!;
  console.log(`heap flags, ${int(rows)}-row catch-up → ${target}, ${rounds} rounds, medians (÷ default)`);
  for (const [name, list] of results) {
    const rate = median(list.map((x) => x.rowsPerS));
    const cpu = median(list.map((x) => x.cpu));
    const rss = median(list.map((x) => x.rss));
    console.log(
      `${name.padEnd(18)} ${int(rate).padStart(7)} rows/s (${fixed(rate / median(base.map((x) => x.rowsPerS)), 2)})  ` +
        `${fixed(cpu)} CPU s/100k (${fixed(cpu / median(base.map((x) => x.cpu)), 2)})  RSS ${fixed(rss, 0)} MB (max ${fixed(Math.max(...list.map((x) => x.rss)), 0)})`,
    );
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
