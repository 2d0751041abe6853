#!/usr/bin/env node
/**
 * The `dcache-probe` command. Exit codes: 0 success; 1 the work failed (database, collector);
 * 2 invalid configuration or usage.
 */
import { Command, Option } from 'commander';
import { ConfigError, SETTINGS, databaseUrlMessage, databaseUrlProblem, shownValue, defaultProbeName, loadConfig, providedSettings, redactUrl, type Config, type ConfigSources } from './config';
import type pg from 'pg';
import { createPool, describeDatabaseError } from './db';
import { fullyQualifiedHostName, type HostName } from './fqdn';
import { createLogger, type Logger } from './logger';
import { grantRuntimeRole, migrate, uninstall } from './migrations';
import { Probe } from './probe';
import { readProbeConfig } from './probe-config';
import { dropQuarantine, formatQuarantine, listQuarantine, retryQuarantine } from './quarantine';
import { readStatus, formatStatus } from './status';
import { formatChecks, verifyDeliveries } from './verify';
import { PROBE_VERSION } from './version';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_CONFIG = 2;

type Section = keyof Config;

/** Adds --config and the flags of the given config sections to a command. */
function withConfigOptions(command: Command, sections: readonly Section[]): Command {
  command.option('-c, --config <file>', 'YAML or JSON config file (also DCACHE_PROBE_CONFIG)');
  command.option('--probe-config <file>', "the old Gratia probe's ProbeConfig (XML), read below every other source");
  for (const s of SETTINGS) {
    if (!sections.includes(s.key.split('.')[0] as Section)) continue;
    command.addOption(new Option(`--${s.flag} <value>`, `${s.description} [${s.env}]`));
  }
  return command;
}

/** Command-line flags -> dotted config keys. */
function flagValues(options: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const s of SETTINGS) {
    const attribute = s.flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (options[attribute] !== undefined) out[s.key] = options[attribute];
  }
  return out;
}

/** What the ProbeConfig had that this probe does not use; logged once by run/poll. */
let probeConfigNotes: string[] = [];

function sourcesFrom(options: Record<string, unknown>, commandDefaults?: Record<string, unknown>): ConfigSources {
  const probeConfigFile = options.probeConfig as string | undefined;
  const probeConfig = probeConfigFile ? readProbeConfig(probeConfigFile) : undefined;
  probeConfigNotes = probeConfig?.notCarriedOver ?? [];
  return {
    probeConfig: probeConfig && { file: probeConfigFile!, values: probeConfig.values },
    file: (options.config as string | undefined) ?? process.env.DCACHE_PROBE_CONFIG,
    env: process.env,
    flags: flagValues(options),
    commandDefaults,
  };
}

function configFrom(options: Record<string, unknown>, sections: readonly Section[], commandDefaults?: Record<string, unknown>): Config {
  return loadConfig(sourcesFrom(options, commandDefaults), sections);
}

/**
 * The configuration of `run` and `poll`: when no source sets probe.name, its default is
 * made of this host's fully qualified name (looked up only then; src/fqdn.ts).
 */
async function probeConfigFrom(options: Record<string, unknown>): Promise<{ config: Config; host?: HostName }> {
  const sources = sourcesFrom(options);
  let host: HostName | undefined;
  // A broken file is reported by loadConfig below, with every other mistake.
  const named = (() => {
    try {
      return providedSettings(sources).provided.has('probe.name');
    } catch {
      return true;
    }
  })();
  if (!named) {
    host = await fullyQualifiedHostName();
    sources.commandDefaults = { 'probe.name': defaultProbeName(host.name) };
  }
  return { config: loadConfig(sources, ALL), host };
}

/** Runs a command body and turns errors into a message and an exit code. */
async function guarded(body: () => Promise<number | void>): Promise<void> {
  try {
    process.exitCode = (await body()) ?? EXIT_OK;
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`dcache-probe: ${err.message}\n`);
      process.exitCode = EXIT_CONFIG;
    } else {
      process.stderr.write(`dcache-probe: ${describeDatabaseError(err)}\n`);
      process.exitCode = EXIT_FAILURE;
    }
  }
}

/** Runs a command body with a small pool on the configured database. */
function withDatabase(options: Record<string, unknown>, body: (pool: pg.Pool) => Promise<number | void>): Promise<void> {
  return guarded(async () => {
    const config = configFrom(options, ['database', 'log']);
    const pool = createPool({ url: config.database.url, timeZone: config.database.timeZone, max: 1 });
    try {
      return await body(pool);
    } finally {
      await pool.end();
    }
  });
}

/** The --db-url of `simulate` and `demo` (not a setting): the same check as database.url. */
function checkedDatabaseUrl(url: string | undefined): string | undefined {
  const problem = url === undefined ? undefined : databaseUrlProblem(url);
  if (problem) throw new ConfigError(`--db-url: ${databaseUrlMessage(problem)}, got ${shownValue('database.url', url)}`);
  return url;
}

function parseTime(value: string, option: string): Date {
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw new ConfigError(`${option}: "${value}" is not a time (use ISO 8601, e.g. 2024-03-14T00:00:00Z)`);
  return new Date(t);
}

/**
 * The probe of `run` and `poll`, configured from every source; null when it is disabled
 * (EnableProbe="0"). ProbeConfig attributes that do not apply are named once here.
 */
async function probeFrom(options: Record<string, unknown>): Promise<{ config: Config; log: Logger; probe: Probe } | null> {
  const { config, host } = await probeConfigFrom(options);
  if (!config.probe.enabled) return null;
  const log = createLogger(config.log);
  if (probeConfigNotes.length) log.info(`ProbeConfig attributes not used by this probe: ${probeConfigNotes.join('; ')}`);
  if (host && !host.qualified) {
    log.warn(
      `this host's fully qualified name was not found (${host.how}), so the ProbeName is ${config.probe.name}; GRACC finds the site by the name after the colon: ` +
        `set probe.name (DCACHE_PROBE_NAME, --probe-name) to the old probe's ProbeName, e.g. ${defaultProbeName(`${host.name}.example.org`)}`,
      { probeName: config.probe.name },
    );
  }
  return { config, log, probe: new Probe(config, log) };
}

/** Gratia's EnableProbe=0: say so and deliver nothing (exit 0, as the old probe did). */
function disabled(): number {
  process.stderr.write('dcache-probe: the probe is disabled (probe.enabled=false / EnableProbe="0"); not delivering\n');
  return EXIT_OK;
}

const ALL: Section[] = ['database', 'collector', 'probe', 'identity', 'pipeline', 'log', 'metrics', 'statistics'];

/** A password from the terminal (typed twice, not echoed) or the first line of stdin: never a flag. */
async function readPassword(): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    let text = '';
    for await (const chunk of stdin) text += chunk;
    return text.split(/\r?\n/)[0]!;
  }
  const ask = (prompt: string) =>
    new Promise<string>((resolve, reject) => {
      let typed = '';
      const done = () => {
        stdin.off('data', onData).setRawMode(false).pause();
        process.stderr.write('\n');
      };
      const onData = (chunk: string) => {
        for (const c of chunk) {
          if (c === '\r' || c === '\n') return done(), resolve(typed);
          if (c === '\u0003') return done(), reject(new ConfigError('cancelled'));
          typed = c === '\u007f' || c === '\b' ? typed.slice(0, -1) : typed + c;
        }
      };
      process.stderr.write(prompt);
      stdin.setEncoding('utf8');
      stdin.setRawMode(true).resume().on('data', onData);
    });
  const password = await ask('password: ');
  if ((await ask('again: ')) !== password) throw new ConfigError('the two passwords differ');
  return password;
}

export function buildProgram(): Command {
  const program = new Command('dcache-probe')
    .description('Reports every dCache transfer to a Gratia/GRACC collector, once, seconds after it is committed.')
    .version(PROBE_VERSION, '-V, --version', 'print the version and exit')
    .showHelpAfterError()
    .exitOverride((err) => {
      // Usage errors (unknown option, missing argument) exit 2; --help and --version exit 0.
      process.exit(err.exitCode === 0 ? EXIT_OK : EXIT_CONFIG);
    });

  withConfigOptions(program.command('run').description('run the probe: listen for new transfers, deliver them, poll as a fallback'), ALL)
    .option('--stop-deadline <seconds>', 'on SIGTERM/SIGINT, seconds to finish the bundle in flight', '10')
    .action((options) =>
      guarded(async () => {
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

  withConfigOptions(program.command('poll').description('deliver everything that is ready, then exit (for cron)'), ALL)
    .requiredOption('--once', 'drain the queue once and exit (the only mode)')
    .action((options) =>
      guarded(async () => {
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

  withConfigOptions(program.command('migrate').description('install or upgrade the capture triggers and the probe schema'), ['database', 'log'])
    .option('--grant-to <role>', 'grant this (existing) role the least privileges the running probe needs')
    .option('--no-triggers', "install the probe's schema only, no triggers on dCache's tables (then run with --mode poll)")
    .action((options) =>
      guarded(async () => {
        const config = configFrom(options, ['database', 'log']);
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

  withConfigOptions(program.command('uninstall').description("remove the probe's triggers and schema (dCache's tables are left untouched)"), ['database', 'log'])
    .option('--force', 'also when captured rows are still waiting for delivery (they are lost)')
    .action((options) =>
      guarded(async () => {
        const config = configFrom(options, ['database', 'log']);
        const result = await uninstall(config.database.url, Boolean(options.force));
        process.stdout.write(`uninstalled from ${redactUrl(config.database.url)}${result.discardedRows ? `; discarded ${result.discardedRows} undelivered rows` : ''}\n`);
      }),
    );

  withConfigOptions(program.command('status').description('queue depth, oldest pending row, quarantine, capture health'), ['database', 'log'])
    .option('--json', 'print JSON')
    .option('--stale-after <seconds>', 'report a problem when the oldest captured row is older', '600')
    .action((options) =>
      guarded(async () => {
        const config = configFrom(options, ['database', 'log']);
        const status = await readStatus(config.database, Number(options.staleAfter));
        process.stdout.write(options.json ? JSON.stringify(status, null, 2) + '\n' : formatStatus(status));
        return status.problems.length ? EXIT_FAILURE : EXIT_OK;
      }),
    );

  // backfill and import-checkpoint: historic billing rows through the same pipeline (src/backfill-command.ts).
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
      .addHelpText('after', () => (require('./backfill-command') as typeof import('./backfill-command')).BACKFILL_HELP)
      .action((...args: unknown[]) =>
        guarded(async () => {
          const file = kind === 'import-checkpoint' ? (args[0] as string) : undefined;
          const options = args[kind === 'import-checkpoint' ? 1 : 0] as Record<string, unknown>;
          const config = configFrom(options, ['database', 'log', 'pipeline']);
          const { backfillCommand } = await import('./backfill-command.js');
          return backfillCommand(kind, options as never, config, file);
        }),
      );
  }

  withConfigOptions(program.command('verify').description('compare what was delivered, per hour, with the billing tables'), ['database', 'log'])
    .requiredOption('--since <time>', 'start of the range (ISO 8601, e.g. 2024-03-14T00:00:00Z)')
    .option('--until <time>', 'end of the range (default: now)')
    .option('--all', 'list every hour, not only those with a difference')
    .option('--json', 'print JSON')
    .action((options) =>
      withDatabase(options, async (pool) => {
        const since = parseTime(options.since, '--since');
        const until = options.until ? parseTime(options.until, '--until') : new Date();
        const billing = (await pool.query("SELECT billing_schema FROM dcache_probe.schema_migration ORDER BY version DESC LIMIT 1")).rows[0]?.billing_schema ?? 'public';
        const checks = await verifyDeliveries(pool, billing, since, until);
        process.stdout.write(options.json ? JSON.stringify(checks, null, 2) + '\n' : formatChecks(checks, Boolean(options.all)));
        return checks.some((c) => c.difference !== 0) ? EXIT_FAILURE : EXIT_OK;
      }),
    );

  const quarantine = program.command('quarantine').description('inspect and replay rows that could not be delivered');
  withConfigOptions(quarantine.command('list').description('list quarantined rows with their reasons'), ['database', 'log'])
    .option('--limit <n>', 'at most this many rows', '100')
    .option('--json', 'print JSON')
    .action((options) =>
      withDatabase(options, async (pool) => {
        const rows = await listQuarantine(pool, Number(options.limit));
        process.stdout.write(options.json ? JSON.stringify(rows, null, 2) + '\n' : formatQuarantine(rows));
      }),
    );
  for (const [name, verb, fn] of [
    ['retry', 'put rows back into the delivery queue', retryQuarantine],
    ['drop', 'delete rows for good', dropQuarantine],
  ] as const) {
    withConfigOptions(quarantine.command(name).description(verb), ['database', 'log'])
      .option('--id <ids...>', 'quarantine row ids (see "quarantine list")')
      .option('--all', 'every quarantined row')
      .action((options) =>
        withDatabase(options, async (pool) => {
          if (!options.all && !options.id) throw new ConfigError('say which rows: --id N [N ...] or --all');
          const n = await fn(pool, options.all ? { all: true } : { ids: options.id as string[] });
          process.stdout.write(`${name === 'retry' ? 'requeued' : 'dropped'} ${n} rows\n`);
        }),
      );
  }

  program
    .command('hash-password')
    .description('make a password hash for metrics.usersFile (the dashboard\'s users): asks twice on a terminal, else reads the first line of stdin')
    .option('--user <name>', 'print the whole line of the users file, "name:hash"')
    .action((options) =>
      guarded(async () => {
        const auth = await import('./http-auth.js');
        if (options.user !== undefined && !auth.validUserName(options.user)) throw new ConfigError(`--user: "${options.user}" cannot be a user name (no spaces or colons)`);
        const password = await readPassword();
        if (password.length < auth.MIN_PASSWORD_LENGTH) throw new ConfigError(`the password is too short: use ${auth.MIN_PASSWORD_LENGTH} or more characters`);
        const hash = await auth.hashPassword(password);
        process.stdout.write(`${options.user === undefined ? '' : options.user + ':'}${hash}\n`);
      }),
    );

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
        const { simulateTraffic } = await import('./demo/simulator.js');
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
    .action((options) =>
      guarded(async () => {
        const { runDemo } = await import('./demo/demo.js');
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
        });
      }),
    );

  return program;
}

if (require.main === module) {
  buildProgram().parseAsync(process.argv).catch((err) => {
    process.stderr.write(`dcache-probe: ${(err as Error).message}\n`);
    process.exit(EXIT_FAILURE);
  });
}
