/** The test collector as a real child process, and a client for its control API. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { AcceptedRecord, CollectorStats, Fault } from '../../src/tools/collector/server';
import { Agent, fetch } from 'undici';
import { COLLECTOR_MAIN } from './env';

export interface CollectorProcess {
  url: string;
  process: ChildProcess;
  stats(): Promise<CollectorStats>;
  records(): Promise<AcceptedRecord[]>;
  handshakes(): Promise<string[]>;
  fault(fault: Fault): Promise<void>;
  reset(): Promise<void>;
  stop(): Promise<void>;
  /** SIGKILL: the collector vanishes mid-request, as a crashed server does. */
  kill(): Promise<void>;
}

/** TLS material for talking to an HTTPS collector's control API. */
export interface ControlTls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

function signalAndWait(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  return new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

export async function startCollector(args: string[] = [], tls?: ControlTls): Promise<CollectorProcess> {
  const dispatcher = tls ? new Agent({ connect: tls }) : undefined;
  const child = spawn(process.execPath, [COLLECTOR_MAIN, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (line) => resolve(line.replace(/^listening /, '')));
    child.once('exit', (code) => reject(new Error(`collector exited with ${code}`)));
  });
  const control = async (path: string, body?: unknown) => {
    // Bounded: a collector that stopped answering must fail the test, not hang it.
    const res = await fetch(`${url}/_control/${path}`, { dispatcher, signal: AbortSignal.timeout(60_000), ...(body === undefined ? {} : { method: 'POST', body: JSON.stringify(body) }) });
    return res.json() as Promise<any>;
  };
  return {
    url,
    process: child,
    stats: () => control('stats'),
    records: async () => (await control('records')).accepted,
    handshakes: async () => (await control('records')).handshakes,
    fault: async (fault) => void (await control('fault', fault)),
    reset: async () => void (await control('reset', {})),
    stop: () => signalAndWait(child, 'SIGTERM'),
    kill: () => signalAndWait(child, 'SIGKILL'),
  };
}
