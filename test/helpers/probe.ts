/** The probe as a real child process (`dcache-probe run` and the one-shot commands). */
import { spawn, type ChildProcess } from 'node:child_process';
import { CLI, waitFor } from './env';

export interface ProbeProcess {
  process: ChildProcess;
  /** Everything the probe logged so far. */
  output(): string;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface ProbeSettings {
  dbUrl: string;
  collectorUrl: string;
  extraArgs?: string[];
  env?: Record<string, string>;
}

function baseArgs(s: ProbeSettings): string[] {
  return ['--db-url', s.dbUrl, '--collector-url', s.collectorUrl, '--site-name', 'TEST_SITE', '--probe-name', 'dcache-transfer:test.example.org', '--dcache-server-host', 'dcache.example.org', '--metrics-port', '0',
    // No host accounts: LocalUserId stays the owner unless a test gives identity files.
    '--passwd-file', '/dev/null', ...(s.extraArgs ?? [])];
}

/** Starts `dcache-probe run` and resolves once it says it runs. */
export async function startProbe(s: ProbeSettings): Promise<ProbeProcess> {
  const probe = spawnProbe(s);
  await waitFor('the probe to start', () => {
    if (probe.process.exitCode !== null) throw new Error(`probe exited with ${probe.process.exitCode}: ${probe.output()}`);
    return probe.output().includes('probe running');
  });
  return probe;
}

/** Starts `dcache-probe run` without waiting for anything (e.g. for a database that is down). */
export function spawnProbe(s: ProbeSettings): ProbeProcess {
  const child = spawn(process.execPath, [CLI, 'run', ...baseArgs(s)], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...s.env } });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  return {
    process: child,
    output: () => output,
    stop: (signal = 'SIGTERM') =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
        child.once('exit', (code) => resolve(code));
        child.kill(signal);
      }),
  };
}

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a one-shot dcache-probe command to completion. */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

export function pollOnce(s: ProbeSettings): Promise<CommandResult> {
  return runCli(['poll', '--once', ...baseArgs(s)], s.env);
}
