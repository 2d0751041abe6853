/**
 * The package's programmatic entry (`require('dcache-transfer-probe')`): what a site needs to
 * embed the probe or script its installation without the `dcache-probe` command. The command
 * itself is built from the same parts (src/cli/main.ts); everything else in the tree is internal.
 */
export { Probe, type ProbeHooks } from './service/probe';
export { ConfigError, SETTINGS, configSchema, loadConfig, type Config, type ConfigSources, type Setting } from './config/schema';
export { LATEST_VERSION, MigrationError, grantRuntimeRole, migrate, uninstall, type MigrateResult, type UninstallResult } from './db/migrations';
export { createLogger, type Logger } from './logger';
export { PROBE_VERSION } from './version';
