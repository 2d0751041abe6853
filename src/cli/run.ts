/**
 * `dcache-probe run`: the daemon, until SIGTERM/SIGINT (then it finishes the bundle in flight).
 */
import type { Command } from 'commander';
import { ALL, guarded, withConfigOptions } from './options';

export function registerRun(program: Command): void {
  withConfigOptions(program.command('run').description('run the probe: listen for new transfers, deliver them, poll as a fallback'), ALL)
    .option('--stop-deadline <seconds>', 'on SIGTERM/SIGINT, seconds to finish the bundle in flight', '10')
    .action((options) =>
      guarded(async () => {
        // The probe and what it runs are loaded only when the command runs (not for --help).
        const { disabled, probeFrom } = await import('./probe.js');
        const made = await probeFrom(options);
        if (!made) return disabled();
        const { log, probe } = made;
        // Listening from the start: a signal while the probe still waits for the database
        // stops it as cleanly as one later (exit 0).
        let onSignal!: (signal: string) => void;
        const stopped = new Promise<void>((resolve) => {
          onSignal = (signal: string) => {
            log.info('stopping', { signal });
            process.off('SIGTERM', onSignal).off('SIGINT', onSignal);
            resolve(probe.stop(Number(options.stopDeadline) * 1000));
          };
          process.on('SIGTERM', onSignal).on('SIGINT', onSignal);
        });
        try {
          await probe.start();
        } catch (err) {
          process.off('SIGTERM', onSignal).off('SIGINT', onSignal);
          await probe.stop(0); // close what started, so the process exits at once
          throw err;
        }
        await stopped;
        log.info('stopped', { ...probe.counters });
      }),
    );
}
