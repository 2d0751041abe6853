/**
 * `dcache-probe simulate` (simulated billing traffic into a database) and `dcache-probe demo` (everything embedded: src/tools/demo/).
 */
import type { Command } from 'commander';
import { ConfigError } from '../config/schema';
import { checkedDatabaseUrl, guarded } from './options';

/** --history-days: a whole number of days, 0 to 3650 (statistics.dayRetentionDays' default). */
export function parseHistoryDays(value: string): number {
  const days = Number(value);
  if (!/^\s*\d+\s*$/.test(value) || days > 3650) throw new ConfigError(`--history-days: "${value}" is not a number of days from 0 to 3650`);
  return days;
}

export function registerDemo(program: Command): void {
  program
    .command('simulate')
    .description('write simulated dCache billing traffic into a billing database (for trials and the compose demo)')
    .requiredOption('--db-url <url>', 'the billing database')
    .option('--rate <rows/s>', 'rows per second', '200')
    .option('--duration <seconds>', 'stop after this many seconds (default: until Ctrl-C)')
    .option('--writers <n>', 'concurrent writer connections, like dCache billing threads', '10')
    .option('--billing-schema <name>', 'schema of the billing tables', 'public')
    .action((options) =>
      guarded(async () => {
        const { simulateTraffic } = await import('../tools/demo/simulator.js');
        const committed = await simulateTraffic({
          url: checkedDatabaseUrl(options.dbUrl)!,
          schema: options.billingSchema,
          rate: Number(options.rate),
          writers: Number(options.writers),
          durationSeconds: options.duration === undefined ? undefined : Number(options.duration),
        });
        process.stdout.write(`committed ${committed} reportable transfers\n`);
      }),
    );

  program
    .command('demo')
    .description('no configuration needed: embedded PostgreSQL + dCache traffic simulator + probe + built-in collector')
    .option('--rate <rows/s>', 'simulated transfers per second', '200')
    .option('--duration <seconds>', 'stop after this many seconds (default: until Ctrl-C)')
    .option('--writers <n>', 'concurrent dCache writer connections', '10')
    .option('--db-url <url>', 'use this PostgreSQL (a scratch database is created in it) instead of an embedded one')
    .option('--inject-fault-after <seconds>', 'then a pool fails most of its transfers (shown on the dashboard as a fault)')
    .option('--inject-misuse-after <seconds>', 'then a burst of permission-denied attempts from one client network (misuse)')
    .option('--linger <seconds>', 'after the summary, keep the dashboard up this long (or until Ctrl-C)')
    .option('--seed <n>', 'seed of the simulated traffic (the same seed, the same mix; default: random)')
    .option('--history-days <n>', 'first write this many days of simulated billing history (counted into the statistics, for the outlook)', '0')
    .action((options) =>
      guarded(async () => {
        const historyDays = parseHistoryDays(String(options.historyDays));
        const { runDemo } = await import('../tools/demo/demo.js');
        const optional = (v: unknown) => (v === undefined ? undefined : Number(v));
        return runDemo({
          rate: Number(options.rate),
          durationSeconds: options.duration === undefined ? undefined : Number(options.duration),
          writers: Number(options.writers),
          dbUrl: checkedDatabaseUrl(options.dbUrl),
          injectFaultAfterSeconds: optional(options.injectFaultAfter),
          injectMisuseAfterSeconds: optional(options.injectMisuseAfter),
          lingerSeconds: optional(options.linger),
          seed: optional(options.seed),
          historyDays,
        });
      }),
    );
}
