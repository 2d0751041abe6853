/**
 * Metrics and health over HTTP: Prometheus metrics (prom-client) on /metrics, /healthz (the
 * process answers) and /readyz (database reachable, listener connected, collector accepted or
 * answered a ping recently). Gauges that describe the database (queue depth, oldest row, rows
 * captured) are read at scrape time, so they are true even when another probe delivers; while
 * the database cannot be read they are NaN, and the rest of the scrape is still served.
 * The probe is read through ProbeHealth and heard through ProbeEvents (src/service/interfaces.ts).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import client from 'prom-client';
import type { Config } from '../config/schema';
import { pingDatabase, scrapeGauges } from '../db/status';
import { httpGuard } from './http-auth';
import { errorMessage, type ExtraRoutes } from '../lib';
import type { BatchCounts, ProbeEventEmitter, ProbeHealth } from './interfaces';

/** Seconds after which a collector not heard from makes the probe "not ready". */
const COLLECTOR_FRESHNESS_MS = 5 * 60_000;

export class ProbeMetrics {
  readonly registry = new client.Registry();
  private readonly delivered = new client.Counter({ name: 'dcache_probe_records_delivered_total', help: 'Records acknowledged by the collector', registers: [this.registry] });
  private readonly bundles = new client.Counter({ name: 'dcache_probe_bundles_delivered_total', help: 'Delivery batches committed after the collector acknowledged them', registers: [this.registry] });
  private readonly duplicates = new client.Counter({ name: 'dcache_probe_duplicates_suppressed_total', help: 'Billing rows not sent because their transaction was already delivered', registers: [this.registry] });
  private readonly skipped = new client.Counter({ name: 'dcache_probe_rows_skipped_total', help: 'Billing rows that are not reported (pool-to-pool copies, tape when off)', registers: [this.registry] });
  private readonly quarantined = new client.Counter({ name: 'dcache_probe_records_quarantined_total', help: 'Rows moved to the quarantine (unencodable, or refused by the collector)', registers: [this.registry] });
  private readonly requests = new client.Counter({ name: 'dcache_probe_collector_requests_total', help: 'Bundles posted to the collector (first attempts)', registers: [this.registry] });
  private readonly retries = new client.Counter({ name: 'dcache_probe_collector_retries_total', help: 'Collector requests retried after an error', registers: [this.registry] });
  private readonly unavailable = new client.Counter({ name: 'dcache_probe_collector_unavailable_total', help: 'Batches given back to the queue because the collector could not be reached', registers: [this.registry] });
  private readonly latency = new client.Histogram({
    name: 'dcache_probe_capture_to_ack_seconds',
    help: 'From the capture of a billing row (its commit) to the collector acknowledging its record',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
    registers: [this.registry],
  });

  /** Reads `probe` at scrape time and counts what its `events` say. */
  constructor(probe: ProbeHealth, events: ProbeEventEmitter) {
    const pool = probe.pool;
    events.on('batch', (counts, result) => this.observeBatch(counts, result.latenciesMs));
    events.on('retry', () => this.retries.inc());
    new client.Gauge({
      name: 'dcache_probe_queue_depth',
      help: 'Captured billing rows waiting for delivery',
      registers: [this.registry],
      async collect() {
        this.set(await scrapeGauges.queueDepth(pool));
      },
    });
    new client.Gauge({
      name: 'dcache_probe_oldest_pending_seconds',
      help: 'Age of the oldest captured row waiting for delivery (0 when none)',
      registers: [this.registry],
      async collect() {
        this.set(await scrapeGauges.oldestPendingSeconds(pool));
      },
    });
    new client.Gauge({
      name: 'dcache_probe_rows_captured',
      help: 'Billing rows captured by the triggers since installation (a counter kept by the database)',
      registers: [this.registry],
      async collect() {
        this.set(await scrapeGauges.rowsCaptured(pool));
      },
    });
    new client.Gauge({
      name: 'dcache_probe_quarantine_size',
      help: 'Rows in the quarantine now',
      registers: [this.registry],
      async collect() {
        this.set(await scrapeGauges.quarantineSize(pool));
      },
    });
    new client.Gauge({
      name: 'dcache_probe_listener_connected',
      help: '1 when the LISTEN connection is up',
      registers: [this.registry],
      collect() {
        this.set(probe.listenerConnected ? 1 : 0);
      },
    });
    new client.Gauge({
      name: 'dcache_probe_last_notification_timestamp_seconds',
      help: 'When the last notification arrived (0: never)',
      registers: [this.registry],
      collect() {
        this.set((probe.lastNotificationAt ?? 0) / 1000);
      },
    });
    new client.Gauge({
      name: 'dcache_probe_last_delivery_timestamp_seconds',
      help: 'When the collector last acknowledged a bundle (0: never)',
      registers: [this.registry],
      collect() {
        this.set((probe.collectorLastAcceptedAt ?? 0) / 1000);
      },
    });
    new client.Gauge({
      name: 'dcache_probe_pacing_duty',
      help: "Share of the time the catch-up works (1: full speed; lower: it yields to dCache's inserts, pipeline.goodCitizen)",
      registers: [this.registry],
      collect() {
        this.set(probe.pacing.duty);
      },
    });
    // The pacer keeps its own totals (ms); a scrape reports them as seconds.
    const pacingSeconds = (name: string, help: string, totalMs: () => number) =>
      new client.Counter({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.reset();
          this.inc(totalMs() / 1000);
        },
      });
    pacingSeconds('dcache_probe_pacing_yielded_seconds_total', "Seconds the catch-up paused to yield to dCache's inserts (pipeline.goodCitizen)", () => probe.pacing.yieldedMs);
    pacingSeconds('dcache_probe_pacing_limited_seconds_total', 'Seconds the claims waited for the rows/s limit (pipeline.maxRowsPerSecond)', () => probe.pacing.limitedMs);
    client.collectDefaultMetrics({ register: this.registry, prefix: 'dcache_probe_' });
  }

  private observeBatch(c: BatchCounts, latenciesMs: readonly number[]): void {
    this.delivered.inc(c.delivered);
    if (!c.unavailable) this.bundles.inc();
    else this.unavailable.inc();
    this.duplicates.inc(c.duplicates);
    this.skipped.inc(c.skipped);
    this.quarantined.inc(c.quarantined);
    this.requests.inc(c.requests);
    for (const ms of latenciesMs) this.latency.observe(ms / 1000);
  }
}

export interface Readiness {
  ready: boolean;
  database: boolean;
  listener: boolean;
  collector: boolean;
  problems: string[];
}

/** Is the probe able to do its job right now? */
export async function readiness(probe: ProbeHealth): Promise<Readiness> {
  const problems: string[] = [];
  let database = false;
  try {
    await pingDatabase(probe.pool);
    database = true;
  } catch (err) {
    problems.push(`database unreachable: ${errorMessage(err)}`);
  }
  const outage = probe.outageProblem;
  if (outage) problems.push(outage);
  if (probe.lastDrainError && !outage) problems.push(`delivery is failing: ${probe.lastDrainError}`);
  const listener = probe.pollMode || probe.listenerConnected;
  if (!listener) problems.push('the LISTEN connection is down (reconnecting)');
  const heard = probe.collectorLastAcceptedAt;
  let collector = heard !== null && Date.now() - heard < COLLECTOR_FRESHNESS_MS;
  if (!collector) collector = await probe.pingCollector(AbortSignal.timeout(5000));
  if (!collector) problems.push('the collector has not accepted anything or answered a ping in the last 5 minutes');
  return { ready: database && listener && collector && !probe.lastDrainError && !outage, database, listener, collector, problems };
}

/**
 * Serves /metrics, /healthz and /readyz (and `extra` routes, which need credentials as the
 * settings say: src/service/http-auth.ts); resolves with the bound port. Throws ConfigError when the
 * settings would leave the extra routes open to the network.
 */
export function startMetricsServer(probe: ProbeHealth, metrics: ProbeMetrics, settings: Config['metrics'], extra?: ExtraRoutes): Promise<{ server: Server; port: number }> {
  const { port, host } = settings;
  const guard = httpGuard(settings, extra !== undefined);
  const server = createServer((req, res) => {
    void (async () => {
      try {
        if (!(await guard.admit(req, res))) return;
        const path = (req.url ?? '/').split('?')[0];
        if (extra && (await extra(req, res))) return;
        if (path === '/metrics') {
          const body = await metrics.registry.metrics();
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(body);
        } else if (path === '/healthz') {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end('ok\n');
        } else if (path === '/readyz') {
          const r = await readiness(probe);
          res.writeHead(r.ready ? 200 : 503, { 'content-type': 'application/json' });
          res.end(JSON.stringify(r) + '\n');
        } else {
          res.writeHead(404, { 'content-type': 'text/plain' });
          res.end('not found: try /metrics, /healthz or /readyz\n');
        }
      } catch (err) {
        // (A route that failed half-way through its answer can only be cut off.)
        if (res.headersSent) return void res.destroy();
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`error: ${errorMessage(err)}\n`);
      }
    })();
  });
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new Error(err.code === 'EADDRINUSE' ? `metrics port ${host}:${port} is already in use (set --metrics-port, or 0 to turn the server off)` : err.message)),
    );
    server.listen(port, host, () => resolve({ server, port: (server.address() as AddressInfo).port }));
  });
}
