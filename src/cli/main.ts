/**
 * The `dcache-probe` command: the program and its commands, one module each under src/cli/.
 * Exit codes: 0 success; 1 the work failed (database, collector); 2 invalid configuration or
 * usage (src/cli/options.ts).
 */
import { Command } from 'commander';
import { errorMessage } from '../lib';
import { PROBE_VERSION } from '../version';
import { registerBackfill } from './backfill';
import { registerDemo } from './demo';
import { registerHashPassword } from './hash-password';
import { registerMigrate } from './migrate';
import { EXIT_CONFIG, EXIT_FAILURE, EXIT_OK } from './options';
import { registerPoll } from './poll';
import { registerQuarantine } from './quarantine';
import { registerRun } from './run';
import { registerStatsHistory } from './stats-history';
import { registerStatus } from './status';
import { registerUninstall } from './uninstall';
import { registerVerify } from './verify';

export function buildProgram(): Command {
  const program = new Command('dcache-probe')
    .description('Reports every dCache transfer to a Gratia/GRACC collector, once, seconds after it is committed.')
    .version(PROBE_VERSION, '-V, --version', 'print the version and exit')
    .showHelpAfterError()
    .exitOverride((err) => {
      // Usage errors (unknown option, missing argument) exit 2; --help and --version exit 0.
      process.exit(err.exitCode === 0 ? EXIT_OK : EXIT_CONFIG);
    });

  registerRun(program);
  registerPoll(program);
  registerMigrate(program);
  registerUninstall(program);
  registerStatus(program);
  registerBackfill(program);
  registerStatsHistory(program);
  registerVerify(program);
  registerQuarantine(program);
  registerHashPassword(program);
  registerDemo(program);
  return program;
}

/** Parses the command line and runs the command. */
export function main(argv: readonly string[] = process.argv): void {
  buildProgram().parseAsync(argv).catch((err) => {
    process.stderr.write(`dcache-probe: ${errorMessage(err)}\n`);
    process.exit(EXIT_FAILURE);
  });
}
