/**
 * Child processes and what they cost: the collector and the probe run as separate processes,
 * and their CPU time and peak memory are read from the kernel (/usr/bin/time, /proc).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type pg from 'pg';
import type { AcceptedRecord, CollectorStats } from '../../src/tools/collector/server';
import { CLI, COLLECTOR_MAIN, probeNodeFlags, sleep, waitFor } from './env';

const CLK_TCK = 100; // getconf CLK_TCK on Linux/x86_64
const GNU_TIME = '/usr/bin/time';

/** user+system CPU seconds of a live process, or null when it is gone. */
export function cpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return null;
  }
}

/** VmHWM (peak resident set) and VmRSS of a live process, kB. */
export function memoryKb(pid: number): { hwm: number; rss: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const get = (key: string) => Number(status.match(new RegExp(`^${key}:\\s+(\\d+)`, 'm'))?.[1] ?? NaN);
    return { hwm: get('VmHWM'), rss: get('VmRSS') };
  } catch {
    return null;
  }
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export interface MeasuredRun {
  code: number | null;
  wallMs: number;
  /** The process's own user and system CPU seconds. */
  userS: number;
  sysS: number;
  /** Peak resident set (VmHWM / ru_maxrss), MB. */
  peakRssMb: number;
  /** How these were obtained: "gnu-time" (exact) or "proc-sampling" (sampled every 50 ms). */
  method: string;
  stdout: string;
  stderr: string;
  /** RSS samples (MB) every ~250 ms while it ran: shows whether memory stays flat. */
  rssSamplesMb: number[];
}

export interface RunOptions {
  env?: Record<string, string>;
  /** Called every ~50 ms with the measured process's pid while it runs. */
  onSample?: (pid: number) => void;
  /** Extra node flags (e.g. --cpu-prof). */
  nodeFlags?: string[];
  cwd?: string;
}

/**
 * Runs `node <args>` to completion and measures it: wall time, the process's own CPU and its
 * peak RSS. With GNU time the CPU and peak RSS are the kernel's exact rusage of the node process.
 */
export async function runMeasured(args: string[], options: RunOptions = {}): Promise<MeasuredRun> {
  const useTime = existsSync(GNU_TIME);
  const dir = mkdtempSync(join(tmpdir(), 'dcache-bench-'));
  const timeFile = join(dir, 'time');
  const nodeArgs = [...(options.nodeFlags ?? []), ...args];
  const command = useTime ? GNU_TIME : process.execPath;
  const commandArgs = useTime ? ['-f', '%e %U %S %M', '-o', timeFile, process.execPath, ...nodeArgs] : nodeArgs;
  const started = performance.now();
  const child = spawn(command, commandArgs, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env }, cwd: options.cwd });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let done = false;
  let sampledCpu = 0;
  let sampledHwm = 0;
  const rssSamplesMb: number[] = [];
  const sampler = (async () => {
    let nodePid: number | undefined = useTime ? undefined : child.pid;
    let tick = 0;
    while (!done) {
      if (nodePid === undefined && child.pid !== undefined) nodePid = childrenOf(child.pid)[0];
      if (nodePid !== undefined) {
        const cpu = cpuSeconds(nodePid);
        const mem = memoryKb(nodePid);
        if (cpu !== null) sampledCpu = cpu;
        if (mem) {
          sampledHwm = Math.max(sampledHwm, mem.hwm);
          if (tick % 5 === 0) rssSamplesMb.push(mem.rss / 1024);
        }
        options.onSample?.(nodePid);
      }
      tick++;
      await sleep(50);
    }
  })();
  const code = await exited;
  const wallMs = performance.now() - started;
  done = true;
  await sampler;
  let userS = sampledCpu;
  let sysS = 0;
  let peakRssMb = sampledHwm / 1024;
  let method = 'proc-sampling';
  if (useTime) {
    try {
      const text = readFileSync(timeFile, 'utf8').trim().split('\n').pop() ?? '';
      const [, user, sys, maxKb] = text.split(' ').map(Number);
      if ([user, sys, maxKb].every((v) => Number.isFinite(v))) {
        userS = user!;
        sysS = sys!;
        peakRssMb = maxKb! / 1024;
        method = 'gnu-time';
      }
    } catch {
      /* fall back to the samples */
    }
  }
  rmSync(dir, { recursive: true, force: true });
  return { code, wallMs, userS, sysS, peakRssMb, method, stdout, stderr, rssSamplesMb };
}

// ---------------------------------------------------------------------------------------
// The collector process

export interface CollectorProcess {
  url: string;
  pid: number;
  process: ChildProcess;
  stats(): Promise<CollectorStats>;
  records(): Promise<AcceptedRecord[]>;
  reset(): Promise<void>;
  stop(): Promise<void>;
}

/** The project's collector (`script` defaults to dist/src/tools/collector/main.js) as a child process. */
export async function startCollector(keep: 'none' | 'ids' | 'records', script = COLLECTOR_MAIN, nodeFlags: string[] = [], scriptArgs: string[] = []): Promise<CollectorProcess> {
  const args = script === COLLECTOR_MAIN ? ['--port', '0', '--keep', keep, ...scriptArgs] : scriptArgs;
  const child = spawn(process.execPath, [...nodeFlags, script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (line) => resolve(line.replace(/^listening /, '').trim()));
    child.once('exit', (code) => reject(new Error(`collector exited with ${code}`)));
  });
  const control = async (path: string, body?: unknown): Promise<any> => {
    const res = await fetch(`${url}/_control/${path}`, body === undefined ? {} : { method: 'POST', body: JSON.stringify(body) });
    return res.json();
  };
  return {
    url,
    pid: child.pid!,
    process: child,
    stats: () => control('stats'),
    records: async () => (await control('records')).accepted,
    reset: async () => void (await control('reset', {})),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

// ---------------------------------------------------------------------------------------
// The probe

export interface ProbeArgs {
  /** The CLI script to run (default dist/src/cli/bin.js; experiments use a patched launcher). */
  cli?: string;
  dbUrl: string;
  collectorUrl: string;
  bundleSize?: number;
  workers?: number;
  extra?: string[];
  /** Run node without the deployed flags (PROBE_NODE_FLAGS), as an `npm i -g` install runs it. */
  bare?: boolean;
}

export function probeArgs(p: ProbeArgs): string[] {
  return [
    '--db-url', p.dbUrl,
    '--collector-url', p.collectorUrl,
    '--site-name', 'BENCH',
    '--probe-name', 'dcache-transfer:bench.example.org',
    '--dcache-server-host', 'dcache.example.org',
    '--log-level', 'warn',
    ...(p.bundleSize !== undefined ? ['--bundle-size', String(p.bundleSize)] : []),
    ...(p.workers !== undefined ? ['--workers', String(p.workers)] : []),
    ...(p.extra ?? []),
  ];
}

/** `dcache-probe poll --once`, measured. */
export function pollOnce(p: ProbeArgs, options: RunOptions = {}): Promise<MeasuredRun> {
  return runMeasured([p.cli ?? CLI, 'poll', '--once', ...probeArgs(p)], { ...options, nodeFlags: probeNodeFlags(options.nodeFlags, p.bare) });
}

export interface DaemonStop {
  code: number | null;
  /** SIGTERM to the log line "stopped" (the probe closed its connections), ms. */
  stoppedMs: number;
  /** SIGTERM to process exit, ms (null: it had not exited `exitWaitMs` after "stopped" and was killed). */
  exitMs: number | null;
}

export interface DaemonProcess {
  pid: number;
  output(): string;
  cpuSeconds(): number | null;
  memoryKb(): { hwm: number; rss: number } | null;
  /**
   * SIGTERM, then wait for its "stopped" log line. If the process has not exited
   * `exitWaitMs` (0.5 s) after that, it is killed (SIGKILL): a timer left behind in src/service/probe.ts keeps
   * a stopped daemon alive for up to doorGraceSeconds (see docs/PERFORMANCE.md).
   */
  stop(exitWaitMs?: number): Promise<DaemonStop>;
}

/** Every daemon stop of this run, for the report. */
export const daemonStops: DaemonStop[] = [];

/** `dcache-probe run` as a daemon; resolves once it says it is running. */
export async function startDaemon(p: ProbeArgs, nodeFlags: string[] = [], cwd?: string, env?: Record<string, string>): Promise<DaemonProcess> {
  const child = spawn(process.execPath, [...probeNodeFlags(nodeFlags, p.bare), p.cli ?? CLI, 'run', ...probeArgs({ ...p, extra: ['--log-level', 'info', ...(p.extra ?? [])] })], {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd,
    env: env ? { ...process.env, ...env } : undefined,
  });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await waitFor('the probe daemon to start', () => {
    if (child.exitCode !== null) throw new Error(`probe exited with ${child.exitCode}: ${output}`);
    return output.includes('probe running');
  });
  return {
    pid: child.pid!,
    output: () => output,
    cpuSeconds: () => cpuSeconds(child.pid!),
    memoryKb: () => memoryKb(child.pid!),
    async stop(exitWaitMs = 500) {
      const t0 = Date.now();
      let exitedAt: number | null = null;
      void exited.then(() => (exitedAt = Date.now()));
      if (child.exitCode === null) child.kill('SIGTERM');
      await waitFor('the probe daemon to stop', () => exitedAt !== null || /\binfo\s+stopped\b/.test(output), 60_000, 20);
      const stoppedMs = Date.now() - t0;
      const deadline = Date.now() + exitWaitMs;
      while (exitedAt === null && Date.now() < deadline) await sleep(20);
      if (exitedAt === null) child.kill('SIGKILL');
      const code = await exited;
      const result: DaemonStop = { code, stoppedMs, exitMs: exitedAt === null ? null : (exitedAt as number) - t0 };
      daemonStops.push(result);
      return result;
    },
  };
}

// ---------------------------------------------------------------------------------------
// PostgreSQL backends serving a given application_name

/**
 * Samples the CPU of the PostgreSQL backends that serve connections named `applicationName`
 * to the pool's database (a lower bound: the last <100 ms of a backend that exits is not seen).
 * Only that database: on a shared server other developers' tests run probes with the same name.
 */
export class BackendCpu {
  private readonly last = new Map<number, number>();
  private readonly base = new Map<number, number>();
  private timer: NodeJS.Timeout | null = null;
  private busy = false;

  constructor(private readonly pool: pg.Pool, private readonly applicationName: string) {}

  private async sample(initial = false): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const { rows } = await this.pool.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()', [this.applicationName]);
      for (const { pid } of rows) {
        const cpu = cpuSeconds(pid);
        if (cpu === null) continue;
        if (!this.last.has(pid)) this.base.set(pid, initial ? cpu : 0);
        this.last.set(pid, cpu);
      }
    } catch {
      /* sampling is best effort */
    } finally {
      this.busy = false;
    }
  }

  async start(): Promise<void> {
    await this.sample(true);
    this.timer = setInterval(() => void this.sample(), 100);
  }

  async stop(): Promise<number> {
    if (this.timer) clearInterval(this.timer);
    await this.sample();
    let total = 0;
    for (const [pid, cpu] of this.last) total += cpu - (this.base.get(pid) ?? 0);
    return total;
  }
}
