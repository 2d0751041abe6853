/**
 * `dcache-probe poll --once`: deliver everything that is ready, then exit (for cron).
 */
import type { Command } from 'commander';
import { ALL, EXIT_FAILURE, guarded, withConfigOptions } from './options';

export function registerPoll(program: Command): void {
  withConfigOptions(program.command('poll').description('deliver everything that is ready, then exit (for cron)'), ALL)
    .requiredOption('--once', 'drain the queue once and exit (the only mode)')
    .action((options) =>
      guarded(async () => {
        // The probe and what it runs are loaded only when the command runs (not for --help).
        const { disabled, probeFrom } = await import('./probe.js');
        const made = await probeFrom(options);
        if (!made) return disabled();
        const { config, log, probe } = made;
        try {
          await probe.prepare();
          if (probe.pollMode) await probe.pollWindow();
          const result = await probe.drain();
          log.info('poll finished', { delivered: result.delivered, duplicates: result.duplicates, skipped: result.skipped, quarantined: result.quarantined });
          if (!result.unavailable && config.pipeline.summarize) result.unavailable = (await probe.sendSummaries()).unavailable;
          if (result.unavailable) {
            process.stderr.write(`dcache-probe: collector unavailable, records stay queued: ${result.unavailable}\n`);
            return EXIT_FAILURE;
          }
        } finally {
          await probe.stop();
        }
      }),
    );
}
