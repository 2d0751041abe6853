/**
 * The probe of `run` and `poll`: configured from every source, with what the configuration
 * left to say (ProbeConfig attributes not used, a host name that is not fully qualified).
 */
import { defaultProbeName, type Config } from '../config/schema';
import { createLogger, type Logger } from '../logger';
import { Probe } from '../service/probe';
import { EXIT_OK, probeConfigFrom, type Options } from './options';

/**
 * The probe of `run` and `poll`, configured from every source; null when it is disabled
 * (EnableProbe="0"). ProbeConfig attributes that do not apply are named once here.
 */
export async function probeFrom(options: Options): Promise<{ config: Config; log: Logger; probe: Probe } | null> {
  const { config, host, probeConfigNotes } = await probeConfigFrom(options);
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
export function disabled(): number {
  process.stderr.write('dcache-probe: the probe is disabled (probe.enabled=false / EnableProbe="0"); not delivering\n');
  return EXIT_OK;
}
