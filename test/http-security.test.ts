/**
 * The probe's HTTP surface as an attacker and an operator meet it, over real HTTP against
 * `dcache-probe run` (a child process, the real PostgreSQL, the test collector): start-up refuses
 * settings that would leave the dashboard open or cannot work; every protected route refuses
 * without credentials and with wrong ones and accepts the right ones; /metrics, /healthz and
 * /readyz stay open unless closed; a forwarded user header counts only from a trusted proxy
 * address; only GET and HEAD; security headers; no request target walks out of the page's
 * files; /api/ lists the API; no personal data in metric labels unless allowed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../src/config/schema';
import { freePort } from '../src/tools/demo/embedded';
import { HttpGuard, MAX_VERIFICATIONS, hashPassword, parseUsers, readCredentials, requestPath } from '../src/service/http-auth';
import { API_ENDPOINTS, STATIC } from '../src/features/dashboard/routes';
import type { CollectorProcess } from './helpers/collector';
import type { BillingDatabase } from './helpers/database';
import { CLI, waitFor } from './helpers/env';
import { withDatabaseAndCollector } from './helpers/fixture';
import { runCli, startProbe, type ProbeProcess } from './helpers/probe';
import { FAST_RETRIES } from './helpers/scenario';

const ROOT = join(__dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'probe-http-'));
const file = (name: string, content: string) => {
  const path = join(dir, name);
  writeFileSync(path, content, { mode: 0o600 });
  return path;
};

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One request; `localAddress` picks the client's address (127.0.0.2 is this host too). */
function get(port: number, path: string, options: { method?: string; headers?: Record<string, string>; localAddress?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: options.headers, localAddress: options.localAddress, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A request line sent byte for byte (no client normalises or refuses it); the whole answer. */
function raw(port: number, target: string, authorization: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (text += d));
    socket.on('end', () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), text }));
    socket.on('error', reject);
    socket.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${authorization}\r\nConnection: close\r\n\r\n`, 'latin1');
  });
}

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

/** Every route of the page and its API, with the parameters it needs to answer 200. */
const SAMPLE_QUERY: Record<string, string> = {
  '/api/series': '?dimension=user',
  '/api/top': '?dimension=user&by=bytes',
  '/api/histogram': '?metric=duration',
  '/api/outlook': '?scope=site&metric=written',
  '/api/outlook.csv': '?scope=site&metric=written',
};
const PRIVATE_ROUTES = [...Object.keys(STATIC), '/api/', ...API_ENDPOINTS.map((e) => e.path + (SAMPLE_QUERY[e.path] ?? ''))];

describe('the HTTP surface', () => {
  let db: BillingDatabase;
  let collector: CollectorProcess;
  withDatabaseAndCollector('modern', (d, c) => ((db = d), (collector = c)));

  const PASSWORD = 'correct horse battery staple';
  const TOKEN = 'b7d1f0c29e4a4f6f8a0d3e5c7b9a1f2e4d6c8b0a';
  let usersFile: string;
  let tokenFile: string;

  before(async () => {
    // The operator's way: the hash-password command, the password on stdin (never a flag).
    const child = spawn(process.execPath, [CLI, 'hash-password', '--user', 'alice'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stdin!.end(`${PASSWORD}\n`);
    assert.equal(await new Promise((r) => child.once('exit', r)), 0);
    assert.match(out, /^alice:\$scrypt\$ln=15,r=8,p=3\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+\n$/);
    assert.ok(!out.includes(PASSWORD));
    usersFile = file('users', `# dashboard users\n${out}bob:${await hashPassword('another password', { ln: 10, r: 8, p: 1 })}\n`);
    tokenFile = file('token', `${TOKEN}\n`);
  });

  const run = (args: string[], env: Record<string, string> = {}) => runCli(['run', '--db-url', db.url, '--collector-url', collector.url, '--site-name', 'X', '--passwd-file', '/dev/null', ...args], env);
  const withProbe = async (args: string[], body: (port: number, probe: ProbeProcess) => Promise<void>, env?: Record<string, string>) => {
    const port = await freePort();
    const probe = await startProbe({ dbUrl: db.url, collectorUrl: collector.url, extraArgs: [...FAST_RETRIES, '--metrics-port', String(port), ...args], env });
    try {
      await body(port, probe);
    } finally {
      await probe.stop('SIGTERM');
    }
  };

  describe('refuses to start', () => {
    it('on a non-loopback address without credentials, naming the settings (exit 2)', async () => {
      const port = String(await freePort());
      for (const host of ['0.0.0.0', '::']) {
        const r = await run(['--metrics-port', port, '--metrics-host', host]);
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, new RegExp(`metrics\\.host \\(DCACHE_PROBE_METRICS_HOST, --metrics-host\\) is ${host.replace(/\./g, '\\.')}, not a loopback address`));
        assert.match(r.stderr, /metrics\.usersFile \(DCACHE_PROBE_HTTP_USERS_FILE, --http-users-file\) or metrics\.tokenFile \(DCACHE_PROBE_HTTP_TOKEN_FILE/);
      }
      // The same from the environment, as the container sets it.
      const r = await run(['--metrics-port', port], { DCACHE_PROBE_METRICS_HOST: '0.0.0.0' });
      assert.equal(r.code, 2, r.stderr);
    });

    it('when a credentials file is missing or wrong, naming the setting, the file and the line, never the line itself (exit 2)', async () => {
      const port = String(await freePort());
      const cases: [string[], RegExp][] = [
        [['--http-users-file', join(dir, 'absent')], /metrics\.usersFile \(DCACHE_PROBE_HTTP_USERS_FILE, --http-users-file\): cannot read .*absent/],
        [['--http-users-file', file('plain', '# users\nalice:my-plaintext-secret\n')], /plain line 2: expected "user:\$scrypt\$ln=…" \(make the line with: dcache-probe hash-password --user NAME\)/],
        [['--http-users-file', file('empty', '# nobody yet\n')], /empty: no users in the file/],
        [['--http-token-file', file('short', 'abc123\n')], /metrics\.tokenFile .*short: the token is too short \(6 characters; use 32 or more/],
        [['--http-proxy-user-header', 'X-Remote-User'], /metrics\.proxyUserHeader .* is set: set metrics\.trustedProxies/],
        [['--http-trusted-proxies', '10.0.0.1, nonsense'], /metrics\.trustedProxies: "nonsense" is not an IP address or network/],
        [['--http-open-paths', '/metrics,/api/'], /metrics\.openPaths: "\/api\/" is not one of \/metrics, \/healthz, \/readyz/],
        [['--http-open-paths', 'none'], /metrics\.openPaths .* closes \/metrics, \/healthz, \/readyz, but no credentials are configured/],
      ];
      for (const [args, message] of cases) {
        const r = await run(['--metrics-port', port, ...args]);
        assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, message);
        assert.ok(!r.stderr.includes('my-plaintext-secret'), r.stderr);
      }
    });
  });

  it('refuses every protected route without credentials and with wrong ones, and accepts the right ones', async () => {
    await withProbe(['--http-users-file', usersFile, '--http-token-file', tokenFile], async (port) => {
      assert.ok(PRIVATE_ROUTES.includes('/') && PRIVATE_ROUTES.includes('/api/alerts'));
      const wrong: [string, Record<string, string>][] = [
        ['no credentials', {}],
        ['a wrong password', { authorization: basic('alice', PASSWORD + 'x') }],
        ["another user's password", { authorization: basic('alice', 'another password') }],
        ['an unknown user', { authorization: basic('mallory', PASSWORD) }],
        ['a wrong token', { authorization: `Bearer ${TOKEN.slice(0, -1)}0` }],
        ['the token hash-like garbage', { authorization: 'Basic !!!' }],
        ['another scheme', { authorization: `Digest username="alice"` }],
        ['a forwarded user header (no proxy is trusted)', { 'x-remote-user': 'alice', 'x-forwarded-user': 'alice' }],
      ];
      const right: [string, Record<string, string>][] = [
        ['a user and password', { authorization: basic('alice', PASSWORD) }],
        ['the second user', { authorization: basic('bob', 'another password') }],
        ['the token as a bearer', { authorization: `Bearer ${TOKEN}` }],
        ['the token as the Basic password', { authorization: basic('token', TOKEN) }],
      ];
      for (const route of [...PRIVATE_ROUTES, '/favicon.ico', '/no-such-page']) {
        for (const [what, headers] of wrong) {
          const a = await get(port, route, { headers });
          assert.equal(a.status, 401, `${route} with ${what}`);
          assert.equal(a.headers['www-authenticate'], 'Basic realm="dcache-probe", charset="UTF-8"');
          assert.equal(a.body, 'authentication required\n', 'nothing of the route');
        }
        for (const [what, headers] of right) {
          const a = await get(port, route, { headers });
          const expected = route === '/favicon.ico' ? 204 : route === '/no-such-page' ? 404 : 200;
          assert.equal(a.status, expected, `${route} with ${what}: ${a.body}`);
        }
      }
      // Open by default: Prometheus and health checks need no credentials.
      for (const route of ['/metrics', '/healthz', '/readyz']) {
        const a = await get(port, route);
        assert.notEqual(a.status, 401, route);
        assert.notEqual(a.status, 400, route);
      }
      assert.match((await get(port, '/metrics')).body, /dcache_probe_records_delivered_total/);
      // A path cannot borrow an open route's spelling to reach a protected one.
      for (const target of ['/metrics/../api/alerts', '/healthz/..%2fapi/alerts', '//api/alerts', '/metrics/%2e%2e/api/alerts']) {
        assert.equal((await raw(port, target, 'none')).status, 400, target);
      }
    });
  });

  it('closes /metrics and /readyz when metrics.openPaths says so, and the credentials open them', async () => {
    await withProbe(['--http-token-file', tokenFile], async (port) => {
      assert.equal((await get(port, '/metrics')).status, 401);
      assert.equal((await get(port, '/readyz')).status, 401);
      assert.equal((await get(port, '/healthz')).status, 200);
      assert.equal((await get(port, '/metrics', { headers: { authorization: `Bearer ${TOKEN}` } })).status, 200);
    }, { DCACHE_PROBE_HTTP_OPEN_PATHS: '/healthz' });
  });

  it('believes a forwarded user header only from a trusted proxy address', async () => {
    await withProbe(['--http-proxy-user-header', 'X-Remote-User', '--http-trusted-proxies', '127.0.0.2/32,2001:db8::/32'], async (port) => {
      const proxy = { localAddress: '127.0.0.2' };
      assert.equal((await get(port, '/api/summary', { ...proxy, headers: { 'x-remote-user': 'alice@EXAMPLE.ORG' } })).status, 200);
      assert.equal((await get(port, '/', { ...proxy, headers: { 'x-remote-user': 'alice@EXAMPLE.ORG' } })).status, 200);
      assert.equal((await get(port, '/api/summary', proxy)).status, 401, 'the proxy did not name a user');
      assert.equal((await get(port, '/api/summary', { ...proxy, headers: { 'x-remote-user': ' ' } })).status, 401, 'an empty user');
      assert.equal((await get(port, '/api/summary', { ...proxy, headers: { 'x-forwarded-user': 'alice' } })).status, 401, 'another header');
      // The same header from an address that is not the proxy: not believed.
      assert.equal((await get(port, '/api/summary', { localAddress: '127.0.0.1', headers: { 'x-remote-user': 'alice' } })).status, 401);
      assert.equal((await get(port, '/api/summary', { localAddress: '127.0.0.3', headers: { 'x-remote-user': 'alice', 'x-forwarded-for': '127.0.0.2' } })).status, 401);
    });
  });

  it('answers only GET and HEAD (405 with Allow), sends the security headers, and has no inline script or style', async () => {
    await withProbe(['--http-users-file', usersFile], async (port) => {
      const auth = { authorization: basic('bob', 'another password') };
      for (const route of ['/', '/api/summary', '/api/', '/metrics', '/healthz']) {
        for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
          const a = await get(port, route, { method, headers: auth });
          assert.equal(a.status, 405, `${method} ${route}`);
          assert.equal(a.headers.allow, 'GET, HEAD');
        }
        const head = await get(port, route, { method: 'HEAD', headers: auth });
        assert.equal(head.status, 200, `HEAD ${route}`);
        assert.equal(head.body, '');
      }
      assert.equal((await get(port, '/api/summary', { method: 'POST' })).status, 401, 'credentials first');

      const page = await get(port, '/', { headers: auth });
      const csp = String(page.headers['content-security-policy']);
      assert.match(csp, /script-src 'self'/);
      assert.match(csp, /style-src 'self'/);
      assert.match(csp, /frame-ancestors 'none'/);
      assert.match(csp, /default-src 'none'/);
      assert.ok(!csp.includes('unsafe'), csp);
      assert.equal(page.headers['x-content-type-options'], 'nosniff');
      assert.equal(page.headers['x-frame-options'], 'DENY');
      for (const route of ['/api/summary', '/dashboard.js', '/metrics']) assert.equal((await get(port, route, { headers: auth })).headers['x-content-type-options'], 'nosniff', route);
      // What the CSP would block: inline scripts, inline styles, style attributes, event handlers.
      const html = page.body;
      const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
      assert.ok(scripts.length >= 2);
      for (const s of scripts) {
        assert.match(s[1]!, /\bsrc="[^"]+"/, 'every script is a file');
        assert.equal(s[2]!.trim(), '', 'no inline script');
      }
      assert.ok(!/<style\b/i.test(html), 'no <style>');
      assert.ok(!/\sstyle\s*=/i.test(html), 'no style attribute');
      assert.ok(!/\son[a-z]+\s*=/i.test(html), 'no event handler attribute');
      const js = readFileSync(join(ROOT, 'src', 'features', 'dashboard', 'web', 'dashboard.js'), 'utf8');
      assert.ok(!/setAttribute\(\s*'style'|\bstyle:\s*'|innerHTML|\beval\(|new Function/.test(js), 'the script sets no style attribute and evaluates no strings');
    });
  });

  it('cannot be walked out of the page files: .., encoded, double-encoded, backslashes, NUL', async () => {
    await withProbe(['--http-users-file', usersFile], async (port) => {
      const auth = basic('bob', 'another password');
      const secrets = [readFileSync(join(ROOT, 'package.json'), 'utf8').slice(0, 60), 'root:x:0:0', "from './config'", 'probe_test_'];
      const targets = [
        '/../package.json',
        '/vendor/../../package.json',
        '/vendor/../../../../../../etc/passwd',
        '/%2e%2e/package.json',
        '/%2E%2E/%2E%2E/etc/passwd',
        '/vendor/%2e%2e%2f%2e%2e%2fpackage.json',
        '/vendor/..%2f..%2fpackage.json',
        '/vendor/%2e%2e/%2e%2e/src/config.ts',
        '/%252e%252e/package.json',
        '/vendor/%252e%252e%252f%252e%252e%252fpackage.json',
        '/..%5c..%5cpackage.json',
        '/vendor/..%255c..%255cpackage.json',
        '/..\\..\\package.json',
        '/vendor\\..\\..\\package.json',
        '/dashboard.js%00.css',
        '/index.html%00',
        '/vendor/uPlot.min.css%00/../../package.json',
        '/./dashboard.js',
        '/vendor/./uPlot.min.css',
        '//etc/passwd',
        '/vendor//../../package.json',
        '/%c0%ae%c0%ae/package.json',
        '/..%c0%af..%c0%afpackage.json',
        'http://127.0.0.1/../package.json',
        '*',
      ];
      for (const target of targets) {
        const a = await raw(port, target, auth);
        assert.equal(a.status, 400, `${target}: ${a.text.slice(0, 200)}`);
        for (const s of secrets) assert.ok(!a.text.includes(s), `${target} showed ${s}`);
      }
      // A raw NUL byte in the request line is refused by the HTTP parser before any route.
      const nul = await raw(port, '/\u0000/../package.json', auth);
      assert.equal(nul.status, 400);
      for (const s of secrets) assert.ok(!nul.text.includes(s));
      // The canonical names still work.
      assert.equal((await raw(port, '/dashboard.js', auth)).status, 200);
      assert.equal((await raw(port, '/vendor/uPlot.min.css', auth)).status, 200);
    });
  });

  it('lists the API at /api/, one line each, and the page and docs/DASHBOARD.md link it', async () => {
    await withProbe(['--http-users-file', usersFile], async (port) => {
      const auth = { authorization: basic('bob', 'another password') };
      const index = await get(port, '/api/', { headers: auth });
      assert.equal(index.status, 200);
      assert.match(String(index.headers['content-type']), /^text\/plain/);
      const lines = index.body.split('\n').filter((l) => l.startsWith('GET '));
      assert.deepEqual(lines.map((l) => l.split(/[?\s]/)[1]), API_ENDPOINTS.map((e) => e.path));
      for (const e of API_ENDPOINTS) {
        const a = await get(port, e.path + (SAMPLE_QUERY[e.path] ?? ''), { headers: auth });
        assert.equal(a.status, 200, `${e.path}: ${a.body}`);
        assert.match(String(a.headers['content-type']), e.path.endsWith('.csv') ? /^text\/csv/ : /^application\/json/);
      }
      assert.equal((await get(port, '/api', { headers: auth })).body, index.body);
      assert.match((await get(port, '/api/nothing', { headers: auth })).body, /no API \/api\/nothing \(the list: \/api\/\)/);
      assert.match((await get(port, '/', { headers: auth })).body, /<a href="api\/"/);
    });
    const doc = readFileSync(join(ROOT, 'docs', 'DASHBOARD.md'), 'utf8');
    assert.match(doc, /\[`\/api\/`\]/);
    const table = [...doc.matchAll(/^\| `(\/api\/[a-z][a-z./]*)/gm)].map((m) => m[1]!);
    assert.deepEqual(table, API_ENDPOINTS.map((e) => e.path), 'DASHBOARD.md lists the same endpoints');
  });

  it('keeps DNs, user names and client networks out of metric labels unless metrics.personalLabels allows them', async () => {
    const dn = '/DC=org/DC=example/OU=People/CN=Jane Doe 4711';
    const { rows } = await db.query<{ id: string; dimension: string }>(
      `INSERT INTO dcache_probe.stats_alert (kind, dimension, key, message, evidence) VALUES
         ('misuse', 'user', $1, 'm', '{}'), ('misuse', 'client_net', '198.51.100.0/24', 'm', '{}'),
         ('new-network', 'user_net', '203.0.113.0/24 ' || $1, 'm', '{}'), ('fault', 'pool', 'pool_a@pool_aDomain', 'm', '{}')
       RETURNING id, dimension`,
      [dn],
    );
    const id = (dimension: string) => rows.find((r) => r.dimension === dimension)!.id;
    const anomalies = async (port: number) =>
      waitFor('the detectors to export the open alerts', async () => {
        const text = (await get(port, '/metrics')).body;
        const lines = text.split('\n').filter((l) => l.startsWith('dcache_probe_anomaly{'));
        return lines.length === 4 ? { text, lines } : null;
      });
    const env = { DCACHE_PROBE_ANOMALY_INTERVAL_SECONDS: '0.2' };
    try {
      await withProbe([], async (port) => {
        const { text, lines } = (await anomalies(port))!;
        assert.deepEqual(lines.sort(), [
          `dcache_probe_anomaly{kind="fault",dimension="pool",key="pool_a@pool_aDomain"} 1`,
          `dcache_probe_anomaly{kind="misuse",dimension="client_net",key="alert ${id('client_net')}"} 1`,
          `dcache_probe_anomaly{kind="misuse",dimension="user",key="alert ${id('user')}"} 1`,
          `dcache_probe_anomaly{kind="new-network",dimension="user_net",key="alert ${id('user_net')}"} 1`,
        ]);
        for (const personal of ['Jane Doe', '198.51.100', '203.0.113']) assert.ok(!text.includes(personal), personal);
      }, env);
      await withProbe(['--metrics-personal-labels', 'true'], async (port) => {
        const { lines } = (await anomalies(port))!;
        assert.ok(lines.includes(`dcache_probe_anomaly{kind="misuse",dimension="user",key="${dn}"} 1`), lines.join('\n'));
        assert.ok(lines.includes(`dcache_probe_anomaly{kind="misuse",dimension="client_net",key="198.51.100.0/24"} 1`));
      }, env);
    } finally {
      await db.query('DELETE FROM dcache_probe.stats_alert');
    }
  });
});

describe('the guard in-process', () => {
  it('parses what hash-password writes, and canonical paths only', async () => {
    const users = parseUsers(`x:${await hashPassword('p4ssw0rd-long', { ln: 10, r: 8, p: 1 })}\n`, 'f');
    assert.deepEqual([...users.keys()], ['x']);
    assert.equal(requestPath('/api/summary?window=/../x'), '/api/summary');
    for (const bad of ['', 'api', '/a/../b', '/a/./b', '/a//b', '/%41', '/a\\b', '/a b', '/a\u0000']) assert.equal(requestPath(bad), null, JSON.stringify(bad));
  });

  it(`runs at most ${MAX_VERIFICATIONS} password checks at once (more distinct logins at that moment are answered 429), and checks one header once`, async () => {
    const usersFile = join(dir, 'guard-users');
    writeFileSync(usersFile, `u:${await hashPassword('a good password', { ln: 12, r: 8, p: 1 })}\n`);
    const settings = loadConfig({ env: { DCACHE_PROBE_HTTP_USERS_FILE: usersFile } }, ['metrics']).metrics;
    const guard = new HttpGuard(readCredentials(settings), new Set(settings.openPaths));
    const answered: number[] = [];
    const exchange = (authorization: string) => {
      const req = { url: '/api/summary', method: 'GET', headers: { authorization }, socket: { remoteAddress: '127.0.0.1' } } as unknown as IncomingMessage;
      const res = { setHeader() {}, writeHead: (status: number) => answered.push(status), end() {} } as unknown as ServerResponse;
      return guard.admit(req, res);
    };
    // All started in the same tick, before any scrypt can finish.
    const started = [...[1, 2, 3].map((n) => exchange(basic('u', `wrong ${n}`))), exchange(basic('u', 'wrong 1'))];
    const admitted = await Promise.all(started);
    assert.deepEqual(admitted, [false, false, false, false]);
    assert.deepEqual(answered.sort(), [401, 401, 401, 429], 'the third distinct login waits; the repeated one shares the first check');
    answered.length = 0;
    assert.equal(await exchange(basic('u', 'a good password')), true);
    assert.equal(await exchange(basic('u', 'wrong 3')), false);
    assert.deepEqual(answered, [401]);
  });
});
