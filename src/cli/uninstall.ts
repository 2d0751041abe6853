/**
 * `dcache-probe uninstall`: remove the probe's triggers and schema (dCache's tables are left untouched).
 */
import type { Command } from 'commander';
import { redactUrl } from '../config/schema';
import { configFrom, guarded, withConfigOptions } from './options';

export function registerUninstall(program: Command): void {
  withConfigOptions(program.command('uninstall').description("remove the probe's triggers and schema (dCache's tables are left untouched)"), ['database', 'log'])
    .option('--force', 'also when captured rows are still waiting for delivery (they are lost)')
    .action((options) =>
      guarded(async () => {
        const config = configFrom(options, ['database', 'log']);
        const { uninstall } = await import('../db/migrations.js');
        const result = await uninstall(config.database.url, Boolean(options.force));
        process.stdout.write(`uninstalled from ${redactUrl(config.database.url)}${result.discardedRows ? `; discarded ${result.discardedRows} undelivered rows` : ''}\n`);
      }),
    );
}
