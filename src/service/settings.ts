/**
 * The configuration, as each part of the probe takes it: the database sessions, the sender,
 * the delivery and its mapping. Pure functions of Config, kept apart from the composition root
 * so that what each setting feeds is found (and tested) in one place.
 */
import { collectorEndpoint, type Config } from '../config/schema';
import type { DatabaseOptions } from '../db/pool';
import type { DeliveryOptions } from '../pipeline/delivery';
import type { SenderOptions } from '../pipeline/sender';
import type { IdentityFiles } from '../record/identity';

/**
 * The server ends a probe session left idle inside a transaction this long. Every transaction
 * of the probe is a few statements with nothing in between (no network, no sleep): one idle
 * this long belongs to a probe that stopped (SIGSTOP, a VM pause) or vanished, and what it
 * holds (uncommitted delivery keys its partner may wait for, vacuum's horizon) must go.
 */
export const IDLE_IN_TRANSACTION_MS = 5_000;

/** Every session of the running probe (the pool's and the listener's). */
export function databaseOptions(config: Config): DatabaseOptions {
  const db = config.database;
  // No transaction of the probe waits on the network (claims are leases, src/pipeline/delivery.ts):
  // one left idle this long is a probe that stopped or vanished mid-statement, and the
  // server ends it rather than let it hold back vacuum.
  return { url: db.url, timeZone: db.timeZone, queryTimeoutMs: db.queryTimeoutSeconds * 1000, idleInTransactionMs: IDLE_IN_TRANSACTION_MS };
}

/** The collector, its TLS material and the retry policy (onRetry is the probe's). */
export function senderOptions(config: Config): Omit<SenderOptions, 'onRetry'> {
  const c = config.collector;
  return {
    endpoint: collectorEndpoint(c.url),
    probeName: config.probe.name,
    timeoutMs: c.timeoutSeconds * 1000,
    retryBaseMs: c.retryBaseMs,
    retryMaxMs: c.retryMaxMs,
    retryBudgetMs: c.retryBudgetSeconds * 1000,
    caFile: c.caFile,
    certFile: c.certFile,
    keyFile: c.keyFile,
  };
}

/** Bundles, the door grace, the lease, and the mapping with the old probe's switches. */
export function deliveryOptions(config: Config, identity: IdentityFiles): Omit<DeliveryOptions, 'onDelivered'> {
  const { pipeline, probe } = config;
  return {
    bundleSize: pipeline.bundleSize,
    maxBundleBytes: pipeline.maxBundleBytes,
    doorGraceSeconds: pipeline.doorGraceSeconds,
    leaseSeconds: pipeline.leaseSeconds,
    summarize: pipeline.summarize,
    mapping: {
      probeName: probe.name,
      siteName: probe.siteName,
      grid: probe.grid,
      dcacheServerHost: probe.dcacheServerHost,
      reportTape: pipeline.reportTape,
      identity,
      filters: {
        onlyInterSiteTransfers: pipeline.onlyInterSiteTransfers,
        suppressGridLocal: config.identity.suppressGridLocal,
        suppressNoDn: config.identity.suppressNoDn,
        suppressUnknownVo: config.identity.suppressUnknownVo,
        quarantineUnknownVo: config.identity.quarantineUnknownVo,
      },
    },
  };
}
