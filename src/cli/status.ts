/**
 * `dcache-probe status`: what src/db/status.ts finds, printed (or as JSON); exit 1 when there are problems.
 */
import type { Command } from 'commander';
import type { ProbeStatus } from '../db/status';
import { EXIT_FAILURE, EXIT_OK, configFrom, guarded, withConfigOptions } from './options';

export function registerStatus(program: Command): void {
  withConfigOptions(program.command('status').description('queue depth, oldest pending row, quarantine, capture health'), ['database', 'log'])
    .option('--json', 'print JSON')
    .option('--stale-after <seconds>', 'report a problem when the oldest captured row is older', '600')
    .action((options) =>
      guarded(async () => {
        const config = configFrom(options, ['database', 'log']);
        const { readStatus } = await import('../db/status.js');
        const status = await readStatus(config.database, Number(options.staleAfter));
        process.stdout.write(options.json ? JSON.stringify(status, null, 2) + '\n' : formatStatus(status));
        return status.problems.length ? EXIT_FAILURE : EXIT_OK;
      }),
    );
}

export function formatStatus(s: ProbeStatus): string {
  const lines = [
    `probe version       ${s.probeVersion}`,
    `schema version      ${s.schemaVersion} (this probe: ${s.expectedSchemaVersion})`,
    `billing schema      ${s.billingSchema ?? '-'}`,
    `queue depth         ${s.queueDepth}`,
    `oldest pending      ${s.oldestPendingAgeSeconds === null ? '-' : `${s.oldestPendingAgeSeconds} s ago`}`,
    `last delivery       ${s.lastDeliveryAt ?? '-'}`,
    `quarantined         ${s.quarantined}`,
    `capture failures    ${s.captureFailures}`,
    `triggers            ${s.triggers.join(', ') || '-'}`,
    `listening probes    ${s.listenersConnected}`,
  ];
  if (s.problems.length) lines.push('', 'PROBLEMS:', ...s.problems.map((p) => `  - ${p}`));
  if (s.warnings.length) lines.push('', 'WARNINGS:', ...s.warnings.map((w) => `  - ${w}`));
  return lines.join('\n') + '\n';
}
