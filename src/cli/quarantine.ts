/**
 * `dcache-probe quarantine list|retry|drop`: inspect and replay rows that could not be delivered (src/features/quarantine.ts).
 */
import type { Command } from 'commander';
import { ConfigError } from '../config/schema';
import type * as Quarantine from '../features/quarantine';

/** The quarantine's functions, loaded when one of these commands runs. */
const quarantineFeature = (): Promise<typeof Quarantine> => import('../features/quarantine.js');
import { withConfigOptions, withDatabase } from './options';

export function registerQuarantine(program: Command): void {
  const quarantine = program.command('quarantine').description('inspect and replay rows that could not be delivered');
  withConfigOptions(quarantine.command('list').description('list quarantined rows with their reasons'), ['database', 'log'])
    .option('--limit <n>', 'at most this many rows', '100')
    .option('--json', 'print JSON')
    .action((options) =>
      withDatabase(options, async (pool) => {
        const { formatQuarantine, listQuarantine } = await quarantineFeature();
        const rows = await listQuarantine(pool, Number(options.limit));
        process.stdout.write(options.json ? JSON.stringify(rows, null, 2) + '\n' : formatQuarantine(rows));
      }),
    );
  for (const [name, verb, fn] of [
    ['retry', 'put rows back into the delivery queue', 'retryQuarantine'],
    ['drop', 'delete rows for good', 'dropQuarantine'],
  ] as const) {
    withConfigOptions(quarantine.command(name).description(verb), ['database', 'log'])
      .option('--id <ids...>', 'quarantine row ids (see "quarantine list")')
      .option('--all', 'every quarantined row')
      .action((options) =>
        withDatabase(options, async (pool) => {
          if (!options.all && !options.id) throw new ConfigError('say which rows: --id N [N ...] or --all');
          const n = await (await quarantineFeature())[fn](pool, options.all ? { all: true } : { ids: options.id as string[] });
          process.stdout.write(`${name === 'retry' ? 'requeued' : 'dropped'} ${n} rows\n`);
        }),
      );
  }
}
