/**
 * `dcache-probe backfill` and `dcache-probe import-checkpoint`: historic billing rows through the same pipeline (src/cli/backfill-run.ts runs them).
 */
import type { Command } from 'commander';
import { configFrom, guarded, withConfigOptions } from './options';

export function registerBackfill(program: Command): void {
  // backfill and import-checkpoint: historic billing rows through the same pipeline (src/cli/backfill-run.ts).
  for (const kind of ['backfill', 'import-checkpoint'] as const) {
    const command =
      kind === 'backfill'
        ? program.command('backfill').description('send historic billing rows (written before the triggers were installed) through the probe\'s pipeline')
            .requiredOption('--since <time>', 'first datestamp to send, RFC 3339 with a zone (e.g. 2024-03-14T12:00:00Z)')
        : program.command('import-checkpoint').description("read the old Gratia probe's checkpoint file and backfill from its time, so a switch leaves no gap")
            .argument('<file>', "the old probe's checkpoint (chkpt_dcache_xfer_DoNotDelete, a Python pickle)")
            .option('--time-zone <zone>', "zone of a naive checkpoint time: the old probe host's (default: this system's)");
    withConfigOptions(command, ['database', 'log'])
      .option('--until <time>', "end of the range, exclusive (default: the triggers' installation time + --overlap)")
      .option('--overlap <seconds>', 'default --until reaches this far past the installation (rows the triggers captured are skipped)', '300')
      .option('--max-history-days <days>', 'refuse to start further back than this (MaxBillingHistoryDays)', '31')
      .option('--rate <rows/s>', 'copy at most this many rows a second', '2000')
      .option('--max-queue <rows>', 'wait while this many rows are waiting for delivery', '50000')
      .option('--chunk <rows>', 'rows per transaction', '2000')
      .option('--limit <rows>', 'look at no more than this many rows in this run (run again to continue)')
      .option('--dry-run', 'print the range and how many rows would be copied; change nothing')
      .option('--restart', 'forget the saved progress of this range and scan it again (already delivered rows are still skipped)')
      .addHelpText('after', () => (require('./backfill-run') as typeof import('./backfill-run')).BACKFILL_HELP)
      .action((...args: unknown[]) =>
        guarded(async () => {
          const file = kind === 'import-checkpoint' ? (args[0] as string) : undefined;
          const options = args[kind === 'import-checkpoint' ? 1 : 0] as Record<string, unknown>;
          const config = configFrom(options, ['database', 'log', 'pipeline']);
          const { backfillCommand } = await import('./backfill-run.js');
          return backfillCommand(kind, options as never, config, file);
        }),
      );
  }
}
