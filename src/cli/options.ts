/**
 * What every command shares: --config and the flags of the settings it reads, the sources of
 * the configuration (file, environment, flags, the old ProbeConfig), exit codes, and the
 * wrapper that turns errors into a message and an exit code.
 */
import { Command, Option } from 'commander';
import type pg from 'pg';
import { CONFIG_SECTIONS, ConfigError, SETTINGS, databaseUrlMessage, databaseUrlProblem, shownValue, defaultProbeName, loadConfig, providedSettings, type Config, type ConfigSources } from '../config/schema';
import type { HostName } from '../config/fqdn';

// The database driver, the ProbeConfig reader and the host name look-up are loaded by the
// commands that use them, when they do: every run of the program (`--help`, `poll --once`
// from cron) would pay their loading otherwise.

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_CONFIG = 2;

export type Section = keyof Config;

/** The sections of `run` and `poll`: every one (the statistics too). */
export const ALL: Section[] = [...CONFIG_SECTIONS];

/** The command's options as commander parsed them. */
export type Options = Record<string, unknown>;

/** Adds --config and the flags of the given config sections to a command. */
export function withConfigOptions(command: Command, sections: readonly Section[]): Command {
  command.option('-c, --config <file>', 'YAML or JSON config file (also DCACHE_PROBE_CONFIG)');
  command.option('--probe-config <file>', "the old Gratia probe's ProbeConfig (XML), read below every other source");
  for (const s of SETTINGS) {
    if (!sections.includes(s.key.split('.')[0] as Section)) continue;
    command.addOption(new Option(`--${s.flag} <value>`, `${s.description} [${s.env}]`));
  }
  return command;
}

/** Command-line flags -> dotted config keys. */
function flagValues(options: Options): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const s of SETTINGS) {
    const attribute = s.flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (options[attribute] !== undefined) out[s.key] = options[attribute];
  }
  return out;
}

/** The configuration's sources, and what the ProbeConfig had that this probe does not use (logged once by run/poll). */
export interface Sources {
  sources: ConfigSources;
  probeConfigNotes: string[];
}

export function sourcesFrom(options: Options, commandDefaults?: Record<string, unknown>): Sources {
  const probeConfigFile = options.probeConfig as string | undefined;
  const probeConfig = probeConfigFile ? (require('../config/probe-config') as typeof import('../config/probe-config')).readProbeConfig(probeConfigFile) : undefined;
  return {
    sources: {
      probeConfig: probeConfig && { file: probeConfigFile!, values: probeConfig.values },
      file: (options.config as string | undefined) ?? process.env.DCACHE_PROBE_CONFIG,
      env: process.env,
      flags: flagValues(options),
      commandDefaults,
    },
    probeConfigNotes: probeConfig?.notCarriedOver ?? [],
  };
}

export function configFrom(options: Options, sections: readonly Section[], commandDefaults?: Record<string, unknown>): Config {
  return loadConfig(sourcesFrom(options, commandDefaults).sources, sections);
}

/**
 * The configuration of `run` and `poll`: when no source sets probe.name, its default is
 * made of this host's fully qualified name (looked up only then; src/config/fqdn.ts).
 */
export async function probeConfigFrom(options: Options): Promise<{ config: Config; host?: HostName; probeConfigNotes: string[] }> {
  const { sources, probeConfigNotes } = sourcesFrom(options);
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
    host = await (await import('../config/fqdn.js')).fullyQualifiedHostName();
    sources.commandDefaults = { 'probe.name': defaultProbeName(host.name) };
  }
  return { config: loadConfig(sources, ALL), host, probeConfigNotes };
}

/** Runs a command body and turns errors into a message and an exit code. */
export async function guarded(body: () => Promise<number | void>): Promise<void> {
  try {
    process.exitCode = (await body()) ?? EXIT_OK;
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`dcache-probe: ${err.message}\n`);
      process.exitCode = EXIT_CONFIG;
    } else {
      const { describeDatabaseError } = await import('../db/pool.js');
      process.stderr.write(`dcache-probe: ${describeDatabaseError(err)}\n`);
      process.exitCode = EXIT_FAILURE;
    }
  }
}

/** Runs a command body with a small pool on the configured database. */
export function withDatabase(options: Options, body: (pool: pg.Pool) => Promise<number | void>): Promise<void> {
  return guarded(async () => {
    const config = configFrom(options, ['database', 'log']);
    const { createPool } = await import('../db/pool.js');
    const pool = createPool({ url: config.database.url, timeZone: config.database.timeZone, max: 1 });
    try {
      return await body(pool);
    } finally {
      await pool.end();
    }
  });
}

/** The --db-url of `simulate` and `demo` (not a setting): the same check as database.url. */
export function checkedDatabaseUrl(url: string | undefined): string | undefined {
  const problem = url === undefined ? undefined : databaseUrlProblem(url);
  if (problem) throw new ConfigError(`--db-url: ${databaseUrlMessage(problem)}, got ${shownValue('database.url', url)}`);
  return url;
}

export function parseTime(value: string, option: string): Date {
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw new ConfigError(`${option}: "${value}" is not a time (use ISO 8601, e.g. 2024-03-14T00:00:00Z)`);
  return new Date(t);
}

