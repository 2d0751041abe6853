/**
 * `dcache-probe demo` (and `npm start`): the whole pipeline on this machine with no
 * configuration. An embedded PostgreSQL gets dCache's billing schema and our migration; ten
 * simulated dCache writers insert transfers at a steady rate; the probe delivers them to a
 * built-in Gratia collector; progress is printed live, and a summary at the end checks that
 * every reportable transfer arrived exactly once.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { GratiaCollector } from '../collector/server';
import { SETTINGS, loadConfig } from '../../config/schema';
import { accessEnvironment } from '../../service/http-auth';
import { createLogger } from '../../logger';
import { SQL_DIR, migrate } from '../../db/migrations';
import { queueDepth } from '../../db/queue';
import { Probe } from '../../service/probe';
import { startEmbeddedPostgres, type EmbeddedDatabase } from './embedded';
import { INJECTED_FAULT_POOL, INJECTED_MISUSE_NETWORK, LiveTraffic, runWriters, type Injection } from './simulator';
import { countSiteHistory, levelForRate, writeSiteHistory } from './site-history';

/** How long an injected misuse burst lasts. */
export const MISUSE_BURST_SECONDS = 60;

/** The injected fault: a pool fails 80 % of its transfers. */
export const FAULT_INJECTION: Injection = { faultPool: INJECTED_FAULT_POOL, faultShare: 0.8 };
/** The injected misuse: 15 % of the traffic are permission-denied attempts by one user from one network. */
export const MISUSE_INJECTION: Injection = { misuseShare: 0.15, misuseNetwork: INJECTED_MISUSE_NETWORK, misuseUser: 2 };

/**
 * The statistics settings of the demo (configuration keys): it is minutes old, so the
 * detectors look every 2 s, alerts close after a minute, and users' networks are learnt in
 * their first minute (instead of a day). The other baselines are the defaults: no detector
 * alerts before it has the history it needs.
 */
export const DEMO_STATISTICS: Readonly<Record<string, number>> = {
  'statistics.detectIntervalSeconds': 2,
  'statistics.clearAfterSeconds': 60,
  'statistics.detectors.newNetwork.learnMinutes': 1,
};

/**
 * What the demo reads of the environment: the dashboard's credentials (DCACHE_PROBE_HTTP_*)
 * and the statistics settings (DCACHE_PROBE_STATS*, DCACHE_PROBE_ANOMALY_*) other than those
 * the demo sets itself; the rest is the demo's own.
 */
function demoEnvironment(env: NodeJS.ProcessEnv, own: Readonly<Record<string, number>>): NodeJS.ProcessEnv {
  const statistics = SETTINGS.filter((s) => s.key.startsWith('statistics.') && !(s.key in own) && env[s.env] !== undefined);
  return { ...accessEnvironment(env), ...Object.fromEntries(statistics.map((s) => [s.env, env[s.env]])) };
}

export interface DemoOptions {
  rate: number;
  durationSeconds?: number;
  writers: number;
  /** Use this PostgreSQL server instead of an embedded one (a scratch database is made in it). */
  dbUrl?: string;
  /** Where progress goes (stdout by default). */
  out?: (line: string) => void;
  /** Seconds after the traffic starts: a pool starts failing most of its transfers. */
  injectFaultAfterSeconds?: number;
  /** Seconds after the traffic starts: a burst of permission-denied attempts from one network. */
  injectMisuseAfterSeconds?: number;
  /** After the summary, keep the probe and its dashboard up this long (or until Ctrl-C). */
  lingerSeconds?: number;
  /** Seed of the simulated traffic (random by default). */
  seed?: number;
  /** Days of simulated billing history written before the probe is installed (0: none). */
  historyDays?: number;
}

/**
 * The demo's statistics settings for a history of `historyDays` days: DEMO_STATISTICS, and
 * with a history, statistics.historyDays covering all of it (the day of the start included),
 * so that the probe's own background build finds every hour counted.
 */
export function demoStatistics(historyDays: number): Readonly<Record<string, number>> {
  return historyDays > 0 ? { ...DEMO_STATISTICS, 'statistics.historyDays': historyDays + 1 } : DEMO_STATISTICS;
}

/** "1.2 PB": bytes for the progress line. */
function bytesText(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB'];
  let i = 0;
  while (bytes >= 1000 && i < units.length - 1) (bytes /= 1000), i++;
  return `${bytes.toFixed(i && bytes < 10 ? 1 : 0)} ${units[i]}`;
}

export interface DemoSummary {
  committed: number;
  delivered: number;
  missing: number;
  duplicatesAtCollector: number;
  p50Ms: number;
  p99Ms: number;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : 0;
}

/**
 * Ctrl-C and SIGTERM: the first stops the traffic, and the demo drains the queue, prints its
 * summary and cleans up (exit 0); a second one skips what is left of the drain. `wait` sleeps
 * until a time or the next signal, whichever comes first.
 */
class StopSignals {
  requests = 0;
  /** Aborted by the first signal (what runs before the traffic: the history). */
  readonly first = new AbortController();
  private wake: (() => void) | null = null;
  private readonly onSignal = () => {
    this.requests++;
    this.first.abort();
    this.wake?.();
  };

  constructor() {
    process.on('SIGINT', this.onSignal).on('SIGTERM', this.onSignal);
  }

  get requested(): boolean {
    return this.requests > 0;
  }

  wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        if (this.wake === done) this.wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }

  close(): void {
    process.off('SIGINT', this.onSignal).off('SIGTERM', this.onSignal);
  }
}

/** A client for the demo's own queries: its connection's errors fail those queries, never the process. */
function demoClient(url: string): pg.Client {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  return client;
}

export async function runDemo(options: DemoOptions): Promise<number> {
  const out = options.out ?? ((line: string) => process.stdout.write(line + '\n'));
  const started = Date.now();
  // From the first moment: a Ctrl-C during start-up still ends in the summary and a clean-up.
  const signals = new StopSignals();
  const historyDays = options.historyDays ?? 0;
  out(`dcache-transfer-probe demo: starting PostgreSQL, the billing schema, ${historyDays > 0 ? `${historyDays} days of history, ` : ''}the probe and a collector…`);

  let embedded: EmbeddedDatabase | null = null;
  let admin: pg.Client | null = null;
  let collector: GratiaCollector | null = null;
  let probe: Probe | null = null;
  const dbName = `dcache_probe_demo_${process.pid}_${Date.now()}`;
  const traffic = new LiveTraffic(options.rate, options.seed);
  try {
    const adminUrl = options.dbUrl ?? (embedded = await startEmbeddedPostgres()).adminUrl;
    if (embedded) out(`embedded PostgreSQL data directory: ${embedded.dataDir} (removed at the end)`);
    admin = demoClient(adminUrl);
    await admin.connect();
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(dbName)}`);
    const url = new URL(adminUrl);
    url.pathname = '/' + dbName;
    const dbUrl = url.toString();

    collector = new GratiaCollector({ keep: 'ids' });
    const collectorUrl = await collector.start();
    const statistics = demoStatistics(historyDays);
    const config = loadConfig({
      env: demoEnvironment(process.env, statistics),
      commandDefaults: {
        ...statistics,
        'database.url': dbUrl,
        'collector.url': collectorUrl,
        'probe.siteName': 'DEMO_SITE',
        'probe.name': 'dCache-transfer:demo.example.org',
        'probe.dcacheServerHost': 'dcache.example.org',
        'pipeline.doorGraceSeconds': 10,
        'log.level': 'warn',
        'metrics.port': 0,
      },
    });
    const setup = demoClient(dbUrl);
    await setup.connect();
    await setup.query(readFileSync(join(SQL_DIR, 'fixtures', 'billing-modern.sql'), 'utf8'));
    await setup.end();
    // The history is written before the capture is installed (so it is history), and counted after.
    const historyStarted = Date.now();
    const history =
      historyDays > 0
        ? await writeSiteHistory({ url: dbUrl, days: historyDays, untilMs: Date.now(), level: levelForRate(options.rate), seed: (options.seed ?? Date.now() % 100000) + 1, signal: signals.first.signal })
        : null;
    await migrate(dbUrl, 'public');
    if (history) {
      const counted = await countSiteHistory({
        url: dbUrl,
        signal: signals.first.signal,
        historyDays: config.statistics.historyDays,
        hourRetentionDays: config.statistics.hourRetentionDays,
        reportTape: config.pipeline.reportTape,
        onlyInterSiteTransfers: config.pipeline.onlyInterSiteTransfers,
      });
      out(
        `history: ${historyDays} days before now simulated (${history.transfers} transfers, ${history.rows} billing rows, ${bytesText(history.bytes)}; ` +
          `weekdays busier than weekends, growing${history.changeMs === null ? '' : `, atlas writing more from ${new Date(history.changeMs).toISOString().slice(0, 10)} on`}) ` +
          `and counted into the statistics (${counted.hoursCounted} hours) in ${((Date.now() - historyStarted) / 1000).toFixed(1)} s` +
          `${history.complete && counted.complete ? '' : ' (interrupted)'}`,
      );
    }

    const latencies: number[] = [];
    let windowLatencies: number[] = [];
    probe = new Probe(config, createLogger(config.log), {
      metricsOnAnyPort: true,
      onBatch: (r) => {
        for (const l of r.latenciesMs) {
          latencies.push(l);
          windowLatencies.push(l);
        }
      },
    });
    await probe.start();
    out(`ready in ${((Date.now() - started) / 1000).toFixed(1)} s: database ${dbName}, collector ${collectorUrl}`);
    if (probe.statistics) out(`dashboard: http://127.0.0.1:${probe.metricsPort}/  (statistics and abnormal traffic; API under /api/)`);
    out(`metrics and health: http://127.0.0.1:${probe.metricsPort}/metrics  /healthz  /readyz`);
    out(`simulating dCache: ${options.writers} writers, ${options.rate} rows/s${options.durationSeconds ? ` for ${options.durationSeconds} s` : ' until Ctrl-C'}`);

    const writers = runWriters((n) => traffic.take(n), {
      url: dbUrl,
      writers: options.writers,
      maxTransactionRows: 200,
      beforeTransaction: (rows) => traffic.pace(rows),
      onCommit: (messages) => traffic.onCommit(messages),
    });

    const injections: NodeJS.Timeout[] = [];
    if (options.injectFaultAfterSeconds !== undefined) {
      injections.push(setTimeout(() => {
        traffic.generator.inject = { ...traffic.generator.inject, ...FAULT_INJECTION };
        out(`injected a fault: pool ${INJECTED_FAULT_POOL} now fails ${Math.round(FAULT_INJECTION.faultShare! * 100)} % of its transfers (errorcode 204)`);
      }, options.injectFaultAfterSeconds * 1000).unref());
    }
    if (options.injectMisuseAfterSeconds !== undefined) {
      injections.push(setTimeout(() => {
        traffic.generator.inject = { ...traffic.generator.inject, ...MISUSE_INJECTION };
        out(`injected misuse: ${Math.round(MISUSE_INJECTION.misuseShare! * 100)} % of the traffic is now permission-denied attempts from ${INJECTED_MISUSE_NETWORK}.0/24 for ${MISUSE_BURST_SECONDS} s`);
        injections.push(setTimeout(() => {
          traffic.generator.inject = { ...traffic.generator.inject, misuseShare: 0 };
          out('the misuse burst is over');
        }, MISUSE_BURST_SECONDS * 1000).unref());
      }, options.injectMisuseAfterSeconds * 1000).unref());
    }

    const depth = () => queueDepth(probe!.pool);
    let lastDelivered = 0;
    let lastCommitted = 0;
    const deadline = options.durationSeconds === undefined ? Infinity : Date.now() + options.durationSeconds * 1000;
    while (!signals.requested && Date.now() < deadline) {
      await signals.wait(Math.min(2000, Math.max(50, deadline - Date.now())));
      if (signals.requested) break;
      const delivered = collector.stats.uniqueRecords;
      const committed = traffic.committed.size;
      const sorted = windowLatencies.sort((a, b) => a - b);
      windowLatencies = [];
      out(
        `${String(Math.round((Date.now() - started) / 1000)).padStart(4)} s  committed ${committed} (+${committed - lastCommitted})  ` +
          `delivered ${delivered} (+${delivered - lastDelivered})  queue ${await depth()}  ` +
          `latency p50 ${percentile(sorted, 50)} ms p99 ${percentile(sorted, 99)} ms  duplicates suppressed ${probe.counters.duplicates}  quarantined ${probe.counters.quarantined}`,
      );
      lastDelivered = delivered;
      lastCommitted = committed;
    }

    out('stopping the writers and draining the queue…');
    for (const t of injections) clearTimeout(t);
    traffic.stopped = true;
    await writers;
    const drainDeadline = Date.now() + 60_000;
    const signalsBefore = signals.requests;
    // (A further Ctrl-C skips the rest of the drain: the summary then counts what is missing.)
    while (signals.requests === signalsBefore && (await depth()) > 0 && Date.now() < drainDeadline) {
      probe.requestDrain();
      await signals.wait(100);
    }
    await probe.idle();
    const received = new Set(collector.acceptedIds);
    const missing = [...traffic.committed].filter((id) => !received.has(id)).length;
    const sorted = latencies.sort((a, b) => a - b);
    const summary: DemoSummary = {
      committed: traffic.committed.size,
      delivered: received.size,
      missing,
      duplicatesAtCollector: collector.stats.recordsAccepted - received.size,
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
    };
    out(
      `summary: ${summary.committed} reportable transfers committed, ${summary.delivered} delivered, ${summary.missing} missing, ` +
        `${summary.duplicatesAtCollector} duplicates at the collector; capture-to-acknowledgement p50 ${summary.p50Ms} ms, p99 ${summary.p99Ms} ms`,
    );
    if (options.lingerSeconds && !signals.requested) {
      out(`the dashboard stays up at http://127.0.0.1:${probe.metricsPort}/ for ${options.lingerSeconds} s (Ctrl-C to end)`);
      const lingerUntil = Date.now() + options.lingerSeconds * 1000;
      while (!signals.requested && Date.now() < lingerUntil) await signals.wait(lingerUntil - Date.now());
    }
    return summary.missing === 0 && summary.duplicatesAtCollector === 0 ? 0 : 1;
  } finally {
    // In this order: nothing may still use the database when its server stops.
    traffic.stopped = true;
    await probe?.stop(2000);
    await collector?.stop();
    await admin?.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(dbName)} WITH (FORCE)`).catch(() => undefined);
    await admin?.end().catch(() => undefined);
    if (embedded) {
      await embedded.stop();
      out(`embedded PostgreSQL stopped; ${existsSync(embedded.dataDir) ? `its data directory ${embedded.dataDir} is still there` : 'its data directory is removed'}`);
    }
    signals.close();
  }
}
