/**
 * `dcache-probe verify`: compare what was delivered, per hour, with the billing tables (src/features/verify.ts), printed (or as JSON); exit 1 when an hour differs.
 */
import type { Command } from 'commander';
import type { HourCheck } from '../features/verify';
import { EXIT_FAILURE, EXIT_OK, parseTime, withConfigOptions, withDatabase } from './options';

export function registerVerify(program: Command): void {
  withConfigOptions(program.command('verify').description('compare what was delivered, per hour, with the billing tables'), ['database', 'log'])
    .requiredOption('--since <time>', 'start of the range (ISO 8601, e.g. 2024-03-14T00:00:00Z)')
    .option('--until <time>', 'end of the range (default: now)')
    .option('--all', 'list every hour, not only those with a difference')
    .option('--json', 'print JSON')
    .action((options) =>
      withDatabase(options, async (pool) => {
        const since = parseTime(options.since, '--since');
        const until = options.until ? parseTime(options.until, '--until') : new Date();
        const [{ billingSchemaOf }, { verifyDeliveries }] = await Promise.all([import('../db/installation.js'), import('../features/verify.js')]);
        const billing = (await billingSchemaOf(pool)) ?? 'public';
        const checks = await verifyDeliveries(pool, billing, since, until);
        process.stdout.write(options.json ? JSON.stringify(checks, null, 2) + '\n' : formatChecks(checks, Boolean(options.all)));
        return checks.some((c) => c.difference !== 0) ? EXIT_FAILURE : EXIT_OK;
      }),
    );
}

/** The hours with a difference (or all), and a line that sums them up. */
export function formatChecks(checks: readonly HourCheck[], all: boolean): string {
  const shown = all ? checks : checks.filter((c) => c.difference !== 0);
  const head = 'hour (UTC)                 source       expected  delivered  skipped  quarantined  queued  difference';
  const lines = shown.map(
    (c) =>
      `${c.hour.padEnd(26)} ${c.source.padEnd(12)} ${String(c.expected).padStart(8)} ${String(c.delivered).padStart(10)} ${String(c.skipped).padStart(8)} ${String(c.quarantined).padStart(12)} ${String(c.queued).padStart(7)} ${(c.difference > 0 ? `${c.difference} missing` : c.difference < 0 ? `${-c.difference} extra` : 'ok').padStart(11)}`,
  );
  const bad = checks.filter((c) => c.difference !== 0).length;
  const total = checks.reduce((n, c) => n + c.expected, 0);
  return `${shown.length ? [head, ...lines].join('\n') + '\n' : ''}${checks.length} hours checked, ${total} records expected: ${bad === 0 ? 'every record accounted for' : `${bad} hours with missing or extra records`}\n`;
}

