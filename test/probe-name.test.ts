/**
 * How the probe names itself: its version (`--version`, `status --json`, the start line) and
 * its default ProbeName, the old probe's `dCache-transfer:<fully qualified host name>`, found
 * by the steps of src/config/fqdn.ts (tested here with a resolver that needs no network, plus one
 * real lookup through the command).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { defaultProbeName } from '../src/config/schema';
import { fullyQualifiedHostName, type HostResolver } from '../src/config/fqdn';
import { withDatabaseAndCollector } from './helpers/fixture';
import type { BillingDatabase } from './helpers/database';
import type { CollectorProcess } from './helpers/collector';
import { CLI, DIST, waitFor } from './helpers/env';
import { runCli } from './helpers/probe';

const VERSION = (JSON.parse(readFileSync(join(DIST, '..', 'package.json'), 'utf8')) as { version: string }).version;

/** A resolver from tables; it fails for names and addresses it does not know (and `hostname -f` without `canonical`). */
function resolver(addresses: Record<string, string[]>, names: Record<string, string>, calls: string[] = [], canonical?: string): HostResolver {
  return {
    canonicalName: async () => {
      calls.push('hostname -f');
      if (canonical === undefined) throw new Error('hostname -f: Name or service not known');
      return canonical;
    },
    addresses: async (name) => {
      calls.push(`addresses ${name}`);
      const found = addresses[name];
      if (!found) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
      return found;
    },
    nameOf: async (address) => {
      calls.push(`name ${address}`);
      const found = names[address];
      if (!found) throw Object.assign(new Error(`getnameinfo ENOTFOUND ${address}`), { code: 'ENOTFOUND' });
      return found;
    },
  };
}

describe("the host's fully qualified name", () => {
  it('is the host name when that has a dot (nothing is looked up)', async () => {
    const calls: string[] = [];
    assert.deepEqual(await fullyQualifiedHostName('dcache01.example.org', resolver({}, {}, calls)), { name: 'dcache01.example.org', qualified: true, how: 'the host name' });
    assert.deepEqual(calls, []);
  });

  it('is else what `hostname -f` says, as the old probe took it', async () => {
    const calls: string[] = [];
    const r = resolver({ dcache01: ['192.0.2.10'] }, { '192.0.2.10': 'ptr-192-0-2-10.isp.example' }, calls, 'dcache01.example.org');
    assert.deepEqual(await fullyQualifiedHostName('dcache01', r), { name: 'dcache01.example.org', qualified: true, how: 'hostname -f' });
    assert.deepEqual(calls, ['hostname -f']);
  });

  it("is else the first name with a dot of the short name's addresses (not localhost)", async () => {
    const r = resolver({ dcache01: ['127.0.0.1', '::1', '192.0.2.10'] }, { '127.0.0.1': 'localhost', '::1': 'localhost.localdomain', '192.0.2.10': 'dcache01.example.org' }, [], 'dcache01');
    assert.deepEqual(await fullyQualifiedHostName('dcache01', r), { name: 'dcache01.example.org', qualified: true, how: 'the name of 192.0.2.10, an address of dcache01' });
  });

  it('is the short name, marked unqualified with the reason, when no lookup gives a name with a dot', async () => {
    const unresolvable = await fullyQualifiedHostName('dcache01', resolver({}, {}));
    assert.equal(unresolvable.name, 'dcache01');
    assert.equal(unresolvable.qualified, false);
    assert.equal(unresolvable.how, 'hostname -f: hostname -f: Name or service not known; cannot resolve dcache01: getaddrinfo ENOTFOUND dcache01');
    const loopbackOnly = await fullyQualifiedHostName('vm', resolver({ vm: ['127.0.0.1', '10.0.0.7'] }, { '127.0.0.1': 'localhost' }, [], 'vm'));
    assert.deepEqual(loopbackOnly, { name: 'vm', qualified: false, how: 'hostname -f says vm; 127.0.0.1 is named localhost; 10.0.0.7: getnameinfo ENOTFOUND 10.0.0.7' });
  });

  it('gives up on a resolver that does not answer', async () => {
    const silent: HostResolver = { canonicalName: () => new Promise<string>(() => undefined), addresses: () => new Promise<string[]>(() => undefined), nameOf: () => new Promise<string>(() => undefined) };
    const result = await fullyQualifiedHostName('dcache01', silent, 50);
    assert.deepEqual(result, { name: 'dcache01', qualified: false, how: 'hostname -f: no answer in 0.05 s; cannot resolve dcache01: no answer in 0.05 s' });
  });

  it("this machine's, with the system resolver: a name with a dot, or the host name", async () => {
    const real = await fullyQualifiedHostName();
    if (real.qualified) assert.ok(real.name.includes('.'), JSON.stringify(real));
    else assert.equal(real.name, hostname());
  });
});

describe('the version and the default ProbeName of the running probe', () => {
  let db: BillingDatabase;
  let collector: CollectorProcess;
  withDatabaseAndCollector('modern', (d, c) => ((db = d), (collector = c)));

  it('--version prints the version of package.json', async () => {
    for (const flag of ['--version', '-V']) {
      const result = await runCli([flag]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, `${VERSION}\n`);
    }
  });

  it('status --json and status say the version', async () => {
    const json = await runCli(['status', '--json', '--db-url', db.url]);
    assert.equal((JSON.parse(json.stdout) as { probeVersion: string }).probeVersion, VERSION, json.stderr);
    const text = await runCli(['status', '--db-url', db.url]);
    assert.match(text.stdout, new RegExp(`^probe version +${VERSION.replaceAll('.', '\\.')}$`, 'm'));
  });

  it("starts with its version and, when probe.name is not set, the ProbeName dCache-transfer:<this host's FQDN>", async () => {
    const host = await fullyQualifiedHostName();
    const child = spawn(process.execPath, [CLI, 'run', '--db-url', db.url, '--collector-url', collector.url, '--site-name', 'TEST_SITE', '--metrics-port', '0', '--passwd-file', '/dev/null'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, DCACHE_PROBE_NAME: '' },
    });
    let output = '';
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      const line = await waitFor('the start line', () => {
        if (child.exitCode !== null) throw new Error(`the probe exited: ${output}`);
        return output.split('\n').find((l) => l.includes('probe running')) ?? '';
      });
      const fields = JSON.parse(line.slice(line.indexOf('{'))) as { version: string; probeName: string };
      assert.equal(fields.version, VERSION);
      assert.equal(fields.probeName, defaultProbeName(host.name));
      assert.match(fields.probeName, /^dCache-transfer:/);
      // Without a qualified name the probe says so, and what to set.
      const warned = /fully qualified name was not found.*set probe\.name \(DCACHE_PROBE_NAME, --probe-name\)/.test(output);
      assert.equal(warned, !host.qualified, output);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });
});
