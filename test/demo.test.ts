/**
 * The README's first command: `npm start` runs `dcache-probe demo`, which must do something
 * real with no configuration (embedded PostgreSQL, simulated dCache, probe, collector) and end
 * with an exactness check; and stop as cleanly on Ctrl-C (SIGINT to the terminal's whole
 * process group) or SIGTERM: summary printed, server stopped, its data directory removed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { CLI, waitFor } from './helpers/env';
import { runCli } from './helpers/probe';

/** No configuration from the environment: the demo's own embedded server and collector. */
const NO_CONFIGURATION = { DCACHE_PROBE_DB_URL: '', DCACHE_PROBE_COLLECTOR_URL: '', DCACHE_PROBE_SITE_NAME: '' };
const SUMMARY = /summary: (\d+) reportable transfers committed, (\d+) delivered, 0 missing, 0 duplicates at the collector/;

describe('the demo (npm start)', () => {
  it('runs the whole pipeline on an embedded PostgreSQL with no configuration and finds every transfer delivered once', async () => {
    const result = await runCli(['demo', '--duration', '4', '--rate', '300'], NO_CONFIGURATION);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /ready in [0-9.]+ s/);
    assert.match(result.stdout, /committed \d+ \(\+\d+\)\s+delivered \d+/);
    const summary = result.stdout.match(SUMMARY);
    assert.ok(summary, result.stdout);
    assert.ok(Number(summary[1]) > 100, 'traffic flowed');
    assert.equal(summary[1], summary[2]);
  });

  for (const [signal, how] of [['SIGINT', 'Ctrl-C (SIGINT to its process group, as a terminal sends it)'], ['SIGTERM', 'SIGTERM to its process group']] as const) {
    it(`stops cleanly on ${how}: traffic stopped, queue drained, summary printed, PostgreSQL stopped and its directory removed, exit 0`, async () => {
      // Its own process group, like a shell's foreground job: the signal goes to every process in it.
      const demo = spawn(process.execPath, [CLI, 'demo', '--rate', '300'], { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...NO_CONFIGURATION } });
      let output = '';
      demo.stdout!.on('data', (d) => (output += d));
      demo.stderr!.on('data', (d) => (output += d));
      const exited = new Promise<number | null>((resolve) => demo.once('exit', (code) => resolve(code)));
      try {
        await waitFor('traffic delivered', () => {
          if (demo.exitCode !== null) throw new Error(`the demo exited: ${output}`);
          return /committed [1-9]\d* \(\+\d+\)\s+delivered [1-9]/.test(output);
        }, 120_000);
        const dataDir = /embedded PostgreSQL data directory: (\S+)/.exec(output)?.[1];
        assert.ok(dataDir && existsSync(dataDir), output);
        process.kill(-demo.pid!, signal);
        assert.equal(await exited, 0, output);
        assert.match(output, /stopping the writers and draining the queue/);
        const summary = output.match(SUMMARY);
        assert.ok(summary, output);
        assert.equal(summary[1], summary[2]);
        assert.match(output, /embedded PostgreSQL stopped; its data directory is removed/);
        assert.equal(existsSync(dataDir), false, `${dataDir} is left behind`);
        assert.doesNotMatch(output, /Unhandled|57P01|terminating connection/);
      } finally {
        if (demo.exitCode === null && demo.signalCode === null) process.kill(-demo.pid!, 'SIGKILL');
      }
    });
  }
});
