/**
 * The probe's version, read once from package.json, in its own module so that the CLI,
 * `status` and the probe's start line share one definition without importing each other.
 */
export const PROBE_VERSION: string = (require('../../package.json') as { version: string }).version;
