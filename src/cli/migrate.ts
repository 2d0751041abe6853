/**
 * `dcache-probe migrate`: install or upgrade the capture triggers and the probe schema (src/db/migrations.ts).
 */
import type { Command } from 'commander';
import { configFrom, guarded, withConfigOptions } from './options';

export function registerMigrate(program: Command): void {
  withConfigOptions(program.command('migrate').description('install or upgrade the capture triggers and the probe schema'), ['database', 'log'])
    .option('--grant-to <role>', 'grant this (existing) role the least privileges the running probe needs')
    .option('--no-triggers', "install the probe's schema only, no triggers on dCache's tables (then run with --mode poll)")
    .action((options) =>
      guarded(async () => {
        const config = configFrom(options, ['database', 'log']);
        const { grantRuntimeRole, migrate } = await import('../db/migrations.js');
        const result = await migrate(config.database.url, config.database.billingSchema, { triggers: options.triggers !== false });
        process.stdout.write(
          result.applied.length
            ? `applied ${result.applied.map((m) => `${m.version} (${m.name})`).join(', ')}; schema version ${result.version}\n`
            : `already at schema version ${result.version}\n`,
        );
        for (const warning of result.warnings) process.stderr.write(`dcache-probe: warning: ${warning}\n`);
        if (result.doorinfo === 'analyzed') process.stdout.write(`analyzed ${config.database.billingSchema}.doorinfo: it had no planner statistics\n`);
        else if (result.doorinfo !== 'present') {
          process.stderr.write(`dcache-probe: warning: ${config.database.billingSchema}.doorinfo has no planner statistics, and ANALYZE failed: ${result.doorinfo.failed}\n`);
        }
        if (options.grantTo) {
          await grantRuntimeRole(config.database.url, options.grantTo);
          process.stdout.write(`granted the probe's runtime privileges to ${options.grantTo}\n`);
        }
      }),
    );
}
