/**
 * The old Gratia dCache-transfer probe's configuration file (ProbeConfig: one XML element
 * <ProbeConfiguration .../> with attributes), read with fast-xml-parser and translated into
 * our settings, so a site can point the new probe at the file it already has:
 *   dcache-probe run --probe-config /etc/gratia/dCache-transfer/ProbeConfig
 * It is a layer below our own config file, environment variables and flags.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import { ConfigError } from './schema';
import { errorMessage } from '../lib';

export interface TranslatedProbeConfig {
  /** Our settings, by dotted key, with the attribute each came from. */
  values: Map<string, { value: unknown; attribute: string }>;
  /** Attributes that no longer apply (named once at start-up), with why. */
  notCarriedOver: string[];
}

/** Attributes of the old probe that have no meaning here, and why. */
const NOT_CARRIED_OVER: Record<string, string> = {
  MaxPendingFiles: 'records wait in the database queue, not in files',
  DataFolder: 'records wait in the database queue, not in files',
  WorkingFolder: 'records wait in the database queue, not in files',
  LogFolder: 'logs go to stderr (journald or the container log)',
  LogLevel: 'use log.level',
  DebugLevel: 'use log.level',
  AggrLogLevel: 'use log.level',
  LogRotate: 'logs go to stderr (journald or the container log)',
  UseSyslog: 'logs go to stderr (journald or the container log)',
  EmailServerHost: 'alert from the Prometheus metrics instead (docs/prometheus-alerts.yml)',
  EmailFromAddress: 'alert from the Prometheus metrics instead (docs/prometheus-alerts.yml)',
  EmailToList: 'alert from the Prometheus metrics instead (docs/prometheus-alerts.yml)',
  SSLRegistrationHost: 'no registration step',
  UseGratiaCertificates: 'use collector.certFile / keyFile',
  GratiaCertificateFile: 'use collector.certFile',
  GratiaKeyFile: 'use collector.keyFile',
  MaxBillingHistoryDays: 'applies to "dcache-probe backfill" (its --max-history-days option)',
  UseSoapProtocol: 'the collector protocol is always multiupdate over HTTP(S)',
  SOAPHost: 'the collector protocol is always multiupdate over HTTP(S)',
  CollectorPort: 'give the port in CollectorHost ("host:port")',
};

/** Attribute -> our setting, for the attributes that map one to one. */
const DIRECT: Record<string, string> = {
  ProbeName: 'probe.name',
  SiteName: 'probe.siteName',
  Grid: 'probe.grid',
  DCacheServerHost: 'probe.dcacheServerHost',
  BundleSize: 'pipeline.bundleSize',
  UpdateFrequency: 'pipeline.pollIntervalSeconds',
  OnlySendInterSiteTransfers: 'pipeline.onlyInterSiteTransfers',
  UserVOMapFile: 'identity.userVoMapFile',
  UnixGidListFileName: 'identity.groupFile',
  SuppressUnknownVORecords: 'identity.suppressUnknownVo',
  SuppressNoDNRecords: 'identity.suppressNoDn',
  SuppressGridLocalRecords: 'identity.suppressGridLocal',
  QuarantineUnknownVORecords: 'identity.quarantineUnknownVo',
  EnableProbe: 'probe.enabled',
  Summarize: 'pipeline.summarize',
};

/** Attributes folded into a URL or a path below. */
const COMPOSED = new Set(['CollectorHost', 'SSLHost', 'UseSSL', 'CollectorService', 'SSLCollectorService', 'CertificateFile', 'KeyFile', 'DBHostName', 'DBPort', 'DBLoginName', 'DBPassword', 'DBName', 'StopFileName']);

const isTrue = (v: string | undefined) => v !== undefined && /^(1|true|yes|on)$/i.test(v.trim());

/** The collector URL from Gratia's host, service and SSL attributes. */
export function collectorUrlFrom(a: Record<string, string>): string | undefined {
  const ssl = isTrue(a.UseSSL);
  const host = ssl ? a.SSLHost || a.CollectorHost : a.CollectorHost;
  if (!host) return undefined;
  const service = (ssl ? a.SSLCollectorService || a.CollectorService : a.CollectorService) || '/gratia-servlets/rmi';
  return `${ssl ? 'https' : 'http'}://${host}${service.startsWith('/') ? '' : '/'}${service}`;
}

/**
 * The database URL from DBHostName, DBPort, DBLoginName, DBPassword, DBName. An empty password
 * means no password (the old probe then read the host as the password).
 */
export function databaseUrlFrom(a: Record<string, string>): string | undefined {
  if (!a.DBHostName && !a.DBName && !a.DBLoginName) return undefined;
  const user = encodeURIComponent(a.DBLoginName || 'srmdcache');
  const password = a.DBPassword ? `:${encodeURIComponent(a.DBPassword)}` : '';
  const port = a.DBPort ? `:${a.DBPort}` : '';
  return `postgres://${user}${password}@${a.DBHostName || 'localhost'}${port}/${encodeURIComponent(a.DBName || 'billing')}`;
}

export function translateProbeConfig(attributes: Record<string, string>, file: string): TranslatedProbeConfig {
  const values = new Map<string, { value: unknown; attribute: string }>();
  const notCarriedOver: string[] = [];
  for (const [name, value] of Object.entries(attributes)) {
    const key = DIRECT[name];
    if (key) values.set(key, { value, attribute: name });
    else if (NOT_CARRIED_OVER[name]) notCarriedOver.push(`${name} (${NOT_CARRIED_OVER[name]})`);
    else if (!COMPOSED.has(name)) notCarriedOver.push(`${name} (not known to this probe)`);
  }
  const collector = collectorUrlFrom(attributes);
  if (collector) values.set('collector.url', { value: collector, attribute: isTrue(attributes.UseSSL) ? 'SSLHost/SSLCollectorService' : 'CollectorHost/CollectorService' });
  // Sites' files always carry the certificate paths; the old probe used them only with UseSSL.
  if (isTrue(attributes.UseSSL)) {
    if (attributes.CertificateFile) values.set('collector.certFile', { value: attributes.CertificateFile, attribute: 'CertificateFile' });
    if (attributes.KeyFile) values.set('collector.keyFile', { value: attributes.KeyFile, attribute: 'KeyFile' });
  }
  const database = databaseUrlFrom(attributes);
  if (database) values.set('database.url', { value: database, attribute: 'DBHostName/DBLoginName/DBPassword/DBName' });
  if (attributes.StopFileName) {
    // The old probe looked for it in its working folder.
    const base = attributes.WorkingFolder || attributes.DataFolder || dirname(file);
    values.set('probe.stopFile', { value: isAbsolute(attributes.StopFileName) ? attributes.StopFileName : join(base, attributes.StopFileName), attribute: 'StopFileName' });
  }
  return { values, notCarriedOver };
}

export function readProbeConfig(file: string): TranslatedProbeConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${file}: cannot read the ProbeConfig file: ${errorMessage(err)}`);
  }
  const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '', parseAttributeValue: false, processEntities: true });
  let doc: Record<string, unknown>;
  try {
    doc = parser.parse(text, true) as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(`${file}: not a valid ProbeConfig (XML): ${errorMessage(err)}`);
  }
  const element = doc.ProbeConfiguration;
  if (!element || typeof element !== 'object') throw new ConfigError(`${file}: no <ProbeConfiguration> element: is this Gratia's ProbeConfig?`);
  const attributes = Object.fromEntries(Object.entries(element as Record<string, unknown>).filter(([, v]) => typeof v === 'string')) as Record<string, string>;
  return translateProbeConfig(attributes, file);
}
