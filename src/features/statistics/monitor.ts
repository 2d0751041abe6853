/**
 * The detectors at work: every `detectIntervalSeconds` the probe reads the statistics of the
 * recent and the baseline windows, the same hour of the previous weeks, the pools' last half
 * hour and the site's hours (small tables only), runs the pure detectors (with the augurs
 * library's outlier and changepoint detectors, library.ts, given to them), and keeps
 * dcache_probe.stats_alert up to date: a new finding opens an alert (logged once, with its
 * evidence, by the probe that opened it), a finding seen again refreshes it, and an alert not
 * found for `clearAfterSeconds` is closed. Open alerts are exported as the Prometheus gauge
 * dcache_probe_anomaly{kind,dimension,key}. Every Prometheus that scrapes the probe keeps its
 * labels, so a key that is personal data (a DN, a user name, a client network) is exported as
 * "alert <id>" (the id the page shows) unless the operator allows it (metrics.personalLabels).
 */
import type pg from 'pg';
import client from 'prom-client';
import { isConnectionFault } from '../../db/pool';
import { closeStaleAlerts, firstSiteMinuteSince, openAlerts, seen, stepCounts, upsertAlert, userTransfersAround, windowCounts, type Counts } from '../../db/statistics';
import { HOUR_MS, MINUTE_MS, errorMessage } from '../../lib';
import type { Logger } from '../../logger';
import {
  detectFaults,
  detectLevelChange,
  detectMisuse,
  detectNewNetworks,
  detectPoolOutliers,
  detectStoppedPools,
  detectSurges,
  type Finding,
  type NewNetworkInput,
  type PoolSteps,
  type Tally,
} from './detectors';
import { loadStatisticsLibrary } from './library';
import type { StatisticsOptions } from './options';
import { hourOfWeekTallies, minuteSeries, seasonalBytes, siteHourly } from './store';

function tallies(m: ReadonlyMap<string, Counts> | undefined, failures: (c: Counts) => number): Map<string, Tally> {
  return new Map([...(m ?? new Map<string, Counts>()).entries()].map(([k, c]) => [k, { transfers: c.transfers, failures: failures(c) }]));
}

const faultFailures = (c: Counts) => c.errors - c.denied;
const deniedFailures = (c: Counts) => c.denied;

/** Splits "<first> <rest>" (door_pool, user_net keys: the first part never has a space). */
export function splitPair(key: string): [string, string] {
  const i = key.indexOf(' ');
  return i < 0 ? [key, ''] : [key.slice(0, i), key.slice(i + 1)];
}

/** Runs every detector over the statistics as of `nowMs`. */
export async function findAnomalies(pool: pg.Pool, o: StatisticsOptions, nowMs = Date.now()): Promise<Finding[]> {
  const d = o.detectors;
  const end = Math.floor(nowMs / MINUTE_MS) * MINUTE_MS + MINUTE_MS;
  const recentFrom = end - d.windowMinutes * MINUTE_MS;
  const baseFrom = recentFrom - d.baselineMinutes * MINUTE_MS;
  const recent = await windowCounts(pool, ['door_pool', 'client_net', 'user', 'user_net', 'all'], recentFrom, end);
  const baseline = await windowCounts(pool, ['door', 'pool', 'client_net', 'user'], baseFrom, recentFrom);
  const findings: Finding[] = [];
  const weekOf = (dimensions: readonly string[], failures: (c: Counts) => number) => hourOfWeekTallies(pool, dimensions, nowMs, d.hourOfWeek, failures);
  const faultWeeks = await weekOf(['door', 'pool'], faultFailures);

  // Faults on doors and pools.
  const cells = [...recent.get('door_pool')!.entries()].map(([key, c]) => {
    const [door, poolName] = splitPair(key);
    return { door, pool: poolName, transfers: c.transfers, failures: faultFailures(c) };
  });
  findings.push(...detectFaults(cells, new Map([['door', tallies(baseline.get('door'), faultFailures)], ['pool', tallies(baseline.get('pool'), faultFailures)]]), d.fault, faultWeeks ?? undefined));

  // Misuse: permission denied by client network and by user.
  const misuseRecent = new Map([['client_net', tallies(recent.get('client_net'), deniedFailures)], ['user', tallies(recent.get('user'), deniedFailures)]]);
  const misuseBaseline = new Map([['client_net', tallies(baseline.get('client_net'), deniedFailures)], ['user', tallies(baseline.get('user'), deniedFailures)]]);
  findings.push(...detectMisuse(misuseRecent, misuseBaseline, d.misuse, (await weekOf(['client_net', 'user'], deniedFailures)) ?? undefined));

  // Surges: users above the volume floor now, against their history since the site's first data.
  const heavy = [...recent.get('user')!.entries()].filter(([, c]) => c.bytes >= d.surge.minBytes).map(([k]) => k);
  if (heavy.length) {
    const siteFrom = Math.max(baseFrom, (await firstSiteMinuteSince(pool, baseFrom)) ?? recentFrom);
    const history = await minuteSeries(pool, 'user', 'bytes', siteFrom, recentFrom, heavy);
    const seasonal = await seasonalBytes(pool, 'user', heavy, nowMs, 28);
    const weekly = await seasonalBytes(pool, 'user', heavy, nowMs, d.hourOfWeek.weeks, 168);
    findings.push(
      ...detectSurges(
        heavy.map((key) => ({ key, recentBytes: recent.get('user')!.get(key)!.bytes, recentMinutes: d.windowMinutes, history: history.get(key) ?? [], seasonal: seasonal.get(key) ?? [], weekly: weekly.get(key) ?? [] })),
        d.surge,
        d.hourOfWeek.minWeeks,
      ),
    );
  }

  // New client networks of known users; pools that went silent.
  const seenRows = await seen(pool, ['user', 'user_net', 'pool']);
  const userFirst = new Map(seenRows.filter((s) => s.dimension === 'user').map((s) => [s.key, s.firstMs]));
  const fresh = seenRows
    .filter((s) => s.dimension === 'user_net' && s.firstMs >= recentFrom)
    .map((s) => ({ key: s.key, pair: splitPair(s.key), firstSeenMs: s.firstMs }))
    .filter((c) => userFirst.has(c.pair[1]));
  const around = await userTransfersAround(pool, fresh.map((c) => ({ user: c.pair[1], splitMs: Math.floor(c.firstSeenMs / MINUTE_MS) * MINUTE_MS })), baseFrom, end);
  const byUser = new Map<string, NewNetworkInput['networks'][number][]>();
  fresh.forEach((c, i) => {
    const [network, user] = c.pair;
    const list = byUser.get(user) ?? [];
    list.push({
      network,
      firstSeenMs: c.firstSeenMs,
      recentTransfers: recent.get('user_net')!.get(c.key)?.transfers ?? 0,
      userTransfersSince: around[i]!.since,
      userTransfersBefore: around[i]!.before,
      userTransfersBeforeFromMs: Math.max(baseFrom, userFirst.get(user)!),
    });
    byUser.set(user, list);
  });
  findings.push(...detectNewNetworks([...byUser.entries()].map(([user, networks]) => ({ user, userFirstSeenMs: userFirst.get(user)!, networks })), nowMs, d.windowMinutes, d.newNetwork));

  const pools = seenRows.filter((s) => s.dimension === 'pool');
  const siteLast = Math.max(0, ...pools.map((p) => p.lastMs));
  const silent = pools.filter((p) => siteLast - p.lastMs >= d.stopped.minSilenceSeconds * 1000 && p.lastMs > nowMs - d.baselineMinutes * MINUTE_MS);
  const stoppedInputs = [];
  for (const p of silent) {
    const to = Math.floor(p.lastMs / MINUTE_MS) * MINUTE_MS;
    const history = await minuteSeries(pool, 'pool', 'transfers', to - d.baselineMinutes * MINUTE_MS, to, [p.key]);
    const first = (history.get(p.key) ?? []).findIndex((n) => n > 0);
    stoppedInputs.push({ pool: p.key, lastSeenMs: p.lastMs, history: first < 0 ? [] : history.get(p.key)!.slice(first) });
  }
  findings.push(...detectStoppedPools(stoppedInputs, siteLast, d.stopped));

  // Pools unlike their peers (a pool already found faulty is not said twice), and the site's level.
  const library = await loadStatisticsLibrary();
  const faulty = new Set(findings.filter((f) => f.kind === 'fault' && f.dimension === 'pool').map((f) => f.key));
  findings.push(...detectPoolOutliers(await poolSteps(pool, d.poolOutlier, end), d.poolOutlier, library.outlierBands).filter((f) => !faulty.has(f.key)));
  const lastHour = Math.floor((nowMs - 10 * MINUTE_MS) / HOUR_MS) * HOUR_MS; // complete hours only, 10 min for late records
  const site = await siteHourly(pool, lastHour - Math.max(d.levelChange.lookbackHours, Math.floor(d.hourOfWeek.weeks) * 168) * HOUR_MS, lastHour);
  findings.push(
    ...detectLevelChange(
      [
        { metric: 'transfers', startMs: site.startMs, values: site.transfers },
        { metric: 'bytes', startMs: site.startMs, values: site.bytes },
      ],
      d.levelChange,
      d.hourOfWeek.minWeeks,
      library.changepoints,
    ),
  );
  return findings;
}

/** Each pool's counts per step of the pool-outlier window (whole steps up to `end`; a step without transfers: zeros). */
async function poolSteps(pool: pg.Pool, o: StatisticsOptions['detectors']['poolOutlier'], end: number): Promise<PoolSteps[]> {
  const stepMs = Math.max(1, Math.round(o.stepMinutes)) * MINUTE_MS;
  const n = Math.max(1, Math.floor(o.windowMinutes / (stepMs / MINUTE_MS)));
  const to = Math.floor(end / stepMs) * stepMs; // steps aligned as stepCounts groups them
  const from = to - n * stepMs;
  const rows = await stepCounts(pool, 'stats_minute', from, to, stepMs / 1000, 'pool');
  const byPool = new Map<string, { transfers: number; failures: number; bytes: number; durationMs: number }[]>();
  for (const r of rows) {
    const i = Math.floor((r.t * 1000 - from) / stepMs);
    if (i < 0 || i >= n) continue;
    let steps = byPool.get(r.key);
    if (!steps) byPool.set(r.key, (steps = Array.from({ length: n }, () => ({ transfers: 0, failures: 0, bytes: 0, durationMs: 0 }))));
    steps[i] = { transfers: r.transfers, failures: faultFailures(r), bytes: r.bytes, durationMs: r.durationMs };
  }
  return [...byPool.entries()].map(([p, steps]) => ({ pool: p, steps }));
}

/** Dimensions whose keys name a person or where they connect from. */
export const PERSONAL_DIMENSIONS: ReadonlySet<string> = new Set(['user', 'client_net', 'user_net']);

/** The `key` label of an open alert. */
export function anomalyKeyLabel(a: { id: number | string; dimension: string; key: string }, personalLabels: boolean): string {
  return personalLabels || !PERSONAL_DIMENSIONS.has(a.dimension) ? a.key : `alert ${a.id}`;
}

export class AnomalyMonitor {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private readonly gauge?: client.Gauge<'kind' | 'dimension' | 'key'>;
  private readonly opened?: client.Counter<'kind'>;
  private lastError = 0;
  /** The findings of the last run (tests). */
  lastFindings: Finding[] = [];

  constructor(
    private readonly pool: pg.Pool,
    private readonly log: Logger,
    private readonly options: StatisticsOptions,
    registry?: client.Registry,
    private readonly personalLabels = false,
  ) {
    if (registry) {
      this.gauge = new client.Gauge({ name: 'dcache_probe_anomaly', help: 'Open abnormal-traffic alerts (1 while open), by kind, dimension and key ("alert <id>" for personal keys unless metrics.personalLabels)', labelNames: ['kind', 'dimension', 'key'], registers: [registry] });
      this.opened = new client.Counter({ name: 'dcache_probe_anomalies_opened_total', help: 'Abnormal-traffic alerts this probe opened', labelNames: ['kind'], registers: [registry] });
    }
  }

  start(): void {
    if (this.options.detectIntervalSeconds <= 0) return;
    this.timer = setInterval(() => void this.runOnce(), this.options.detectIntervalSeconds * 1000);
    void this.runOnce();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One pass: detect, open/refresh/close alerts, export them. Never throws. */
  runOnce(nowMs = Date.now()): Promise<void> {
    if (this.running) return this.running;
    this.running = this.pass(nowMs)
      .catch((err) => {
        // A database that is away is said once by the probe (and the next pass tries again).
        if (isConnectionFault(err)) return;
        if (Date.now() - this.lastError > 60_000) this.log.warn('anomaly detection failed', { error: errorMessage(err) });
        this.lastError = Date.now();
      })
      .finally(() => {
        this.running = null;
      });
    return this.running;
  }

  private async pass(nowMs: number): Promise<void> {
    const findings = await findAnomalies(this.pool, this.options, nowMs);
    this.lastFindings = findings;
    for (const f of findings) {
      const alert = await upsertAlert(this.pool, f);
      if (alert?.inserted) {
        this.opened?.inc({ kind: f.kind });
        this.log.warn(`ANOMALY (${f.kind}): ${f.message}`, { kind: f.kind, dimension: f.dimension, key: f.key, evidence: f.evidence, alertId: alert.id });
      }
    }
    const closed = await closeStaleAlerts(this.pool, this.options.clearAfterSeconds);
    for (const c of closed) this.log.info(`anomaly over (${c.kind}): ${c.dimension} ${c.key}`, { alertId: c.id });
    if (this.gauge) {
      const open = await openAlerts(this.pool);
      this.gauge.reset();
      for (const a of open) this.gauge.set({ kind: a.kind, dimension: a.dimension, key: anomalyKeyLabel(a, this.personalLabels) }, 1);
    }
  }
}
