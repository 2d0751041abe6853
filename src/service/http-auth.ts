/**
 * Who may read what on the probe's HTTP server (src/service/metrics.ts), and which requests it admits.
 *
 * Why: the dashboard and /api/ show people's DNs, the networks they connect from and security
 * alerts about them, and in a container the server listens on 0.0.0.0. So, bound to anything but
 * loopback, the page and /api/ need credentials on every request, and without credentials the
 * probe refuses to start (ConfigError, exit 2). Once credentials are configured they are
 * required on any address. /metrics, /healthz and /readyz stay open (Prometheus, health checks)
 * unless `metrics.openPaths` closes them.
 *
 * HTTP Basic, not a login form with a session cookie. The sites run the probe behind a firewall
 * or a reverse proxy: Basic is what proxies (nginx, Apache, an SSO front end) speak and pass on,
 * and what curl and Prometheus send, so the page, scripts reading /api/ and a scraper of a closed
 * /metrics use the same credentials. It keeps no session state (a restart or a second probe logs
 * no one out; there is no session store to bound or expire), needs no cookie attributes that
 * cannot be right on plain HTTP (Secure), and has no login form to guard against CSRF (the API
 * is read-only: GET and HEAD). What it costs: the browser keeps the credentials until it is
 * closed (no log-out), and they cross the network with every request, as a session cookie
 * would: use TLS at the proxy where the path is not trusted.
 *
 * Credentials come from files (a flag would show them in `ps`): a token (`metrics.tokenFile`,
 * sent as `Authorization: Bearer <token>` or as the Basic password with any user name) and/or
 * users with scrypt hashes (`metrics.usersFile`, `user:$scrypt$…` lines, made by
 * `dcache-probe hash-password`). A reverse proxy that authenticates may name the user in a header
 * (`metrics.proxyUserHeader`), believed only from `metrics.trustedProxies` (the socket's peer
 * address; X-Forwarded-For is never read).
 *
 * Secrets are compared in constant time (timingSafeEqual of SHA-256 digests or scrypt outputs),
 * and an unknown user name costs the same scrypt as a known one. The outcome for an
 * Authorization header is remembered by the header's SHA-256 digest, so the page's API calls
 * cost one scrypt per browser rather than one per request; at most MAX_VERIFICATIONS scrypt runs
 * at a time (they use libuv's thread pool, shared with DNS lookups and file reads), more are
 * answered 429.
 *
 * Request targets must be canonical before anything else looks at them (400 otherwise: no `.`
 * or `..` segments, no `//`, no `%`, `\`, NUL or other characters outside [A-Za-z0-9._~/-]), so
 * no spelling of a path can reach a protected route as an open one, or a file outside src/features/dashboard/web.
 */
import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BlockList, isIP } from 'node:net';
import { ConfigError, OPERATIONAL_PATHS, SETTINGS, networkOf, type Config } from '../config/schema';
import { errorMessage } from '../lib';

type HttpSettings = Config['metrics'];

/** Sent with every answer of the HTTP server (the page's scripts and styles are files of src/features/dashboard/web). */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'cache-control': 'no-store',
};

export const ALLOWED_METHODS = ['GET', 'HEAD'] as const;
const REALM = 'Basic realm="dcache-probe", charset="UTF-8"';
/** scrypt runs in flight at once; more distinct credentials at the same time are answered 429. */
export const MAX_VERIFICATIONS = 2;
/** Outcomes remembered (by header digest); the oldest is forgotten first. */
const REMEMBERED = 256;
const MIN_TOKEN_LENGTH = 32;
export const MIN_PASSWORD_LENGTH = 8;

// ---------------------------------------------------------------------------------------------
// Password hashes: the PHC string form `$scrypt$ln=15,r=8,p=3$<salt>$<hash>` (unpadded base64).

export interface ScryptHash {
  ln: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

/** OWASP's scrypt choice for 32 MB of memory: N = 2^15, r = 8, p = 3 (about 0.4 s here). */
export const DEFAULT_SCRYPT = { ln: 15, r: 8, p: 3 } as const;

const b64 = (b: Buffer) => b.toString('base64').replace(/=+$/, '');

export function formatScryptHash(h: ScryptHash): string {
  return `$scrypt$ln=${h.ln},r=${h.r},p=${h.p}$${b64(h.salt)}$${b64(h.hash)}`;
}

/** The parsed hash, or null when `text` is not one we can verify. */
export function parseScryptHash(text: string): ScryptHash | null {
  const m = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]{22,})\$([A-Za-z0-9+/]{43,})$/.exec(text);
  if (!m) return null;
  const [ln, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (ln < 10 || ln > 20 || r < 1 || r > 32 || p < 1 || p > 16) return null;
  return { ln, r, p, salt: Buffer.from(m[4]!, 'base64'), hash: Buffer.from(m[5]!, 'base64') };
}

function scryptOf(password: string, salt: Buffer, h: { ln: number; r: number; p: number }, length: number): Promise<Buffer> {
  const N = 2 ** h.ln;
  return new Promise((resolve, reject) =>
    scrypt(password.normalize('NFC'), salt, length, { N, r: h.r, p: h.p, maxmem: 256 * N * h.r + 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

export async function hashPassword(password: string, params: { ln: number; r: number; p: number } = DEFAULT_SCRYPT): Promise<string> {
  const salt = randomBytes(16);
  return formatScryptHash({ ...params, salt, hash: await scryptOf(password, salt, params, 32) });
}

export async function verifyPassword(password: string, h: ScryptHash): Promise<boolean> {
  return timingSafeEqual(await scryptOf(password, h.salt, h, h.hash.length), h.hash);
}

// ---------------------------------------------------------------------------------------------
// Settings -> credentials (read once, at start-up: restart the probe after changing a file).

/** "metrics.usersFile (DCACHE_PROBE_HTTP_USERS_FILE, --http-users-file)". */
export function settingName(key: string): string {
  const s = SETTINGS.find((x) => x.key === key);
  return s ? `${key} (${s.env}, --${s.flag})` : key;
}

export interface Credentials {
  /** SHA-256 of the token. */
  token: Buffer | null;
  users: ReadonlyMap<string, ScryptHash>;
  proxy: { header: string; from: BlockList } | null;
}

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/** A users file's lines. Errors name the file and the line, never the line's text (it may be a password). */
export function parseUsers(text: string, where: string): Map<string, ScryptHash> {
  const users = new Map<string, ScryptHash>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    const name = line.slice(0, colon);
    const hash = colon > 0 ? parseScryptHash(line.slice(colon + 1)) : null;
    if (!hash || !validUserName(name)) throw new ConfigError(`${where} line ${i + 1}: expected "user:$scrypt$ln=…" (make the line with: dcache-probe hash-password --user NAME)`);
    if (users.has(name)) throw new ConfigError(`${where} line ${i + 1}: user "${name}" is listed twice`);
    users.set(name, hash);
  });
  if (!users.size) throw new ConfigError(`${where}: no users in the file (add lines made by: dcache-probe hash-password --user NAME)`);
  return users;
}

export const validUserName = (name: string) => /^[^\s:]+$/.test(name);

export function parseToken(text: string, where: string): Buffer {
  const token = text.trim();
  if (/\s/.test(token)) throw new ConfigError(`${where}: the token must be one word (the whole file, without spaces)`);
  if (token.length < MIN_TOKEN_LENGTH) throw new ConfigError(`${where}: the token is too short (${token.length} characters; use ${MIN_TOKEN_LENGTH} or more random ones, e.g. openssl rand -hex 32)`);
  return sha256(token);
}

function readSetting(key: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${settingName(key)}: cannot read ${file}: ${errorMessage(err)}`);
  }
}

/** The configured credentials, or null when none are. */
export function readCredentials(s: HttpSettings): Credentials | null {
  if (s.proxyUserHeader && !s.trustedProxies.length) throw new ConfigError(`${settingName('metrics.proxyUserHeader')} is set: set ${settingName('metrics.trustedProxies')} to the proxies' addresses too (the header is believed from them only)`);
  if (s.trustedProxies.length && !s.proxyUserHeader) throw new ConfigError(`${settingName('metrics.trustedProxies')} is set: set ${settingName('metrics.proxyUserHeader')} too (the header in which they name the user)`);
  const token = s.tokenFile ? parseToken(readSetting('metrics.tokenFile', s.tokenFile), `${settingName('metrics.tokenFile')}: ${s.tokenFile}`) : null;
  const users = s.usersFile ? parseUsers(readSetting('metrics.usersFile', s.usersFile), `${settingName('metrics.usersFile')}: ${s.usersFile}`) : new Map<string, ScryptHash>();
  let proxy: Credentials['proxy'] = null;
  if (s.proxyUserHeader) {
    const from = new BlockList();
    for (const entry of s.trustedProxies) {
      const n = networkOf(entry)!; // validated by the schema
      from.addSubnet(n.address, n.prefix, n.family);
    }
    proxy = { header: s.proxyUserHeader.toLowerCase(), from };
  }
  return token || users.size || proxy ? { token, users, proxy } : null;
}

/** The settings of who may read the server (the demo takes these, and only these, from its environment). */
export const ACCESS_SETTINGS = ['metrics.tokenFile', 'metrics.usersFile', 'metrics.proxyUserHeader', 'metrics.trustedProxies', 'metrics.openPaths'] as const;

export function accessEnvironment(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const names = SETTINGS.filter((s) => (ACCESS_SETTINGS as readonly string[]).includes(s.key)).map((s) => s.env);
  return Object.fromEntries(names.filter((n) => env[n] !== undefined).map((n) => [n, env[n]]));
}

export function isLoopback(host: string): boolean {
  const h = host.trim().replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  const v4 = h.replace(/^::ffff:/, '');
  return isIP(v4) === 4 && v4.startsWith('127.');
}

// ---------------------------------------------------------------------------------------------
// Requests.

/** The path of an origin-form request target, or null when it is not canonical. */
export function requestPath(target: string | undefined): string | null {
  const path = (target ?? '').split('?')[0]!;
  if (!/^\/[A-Za-z0-9._~/-]*$/.test(path) || path.includes('//')) return null;
  if (path.split('/').some((segment) => segment === '.' || segment === '..')) return null;
  return path;
}

/** The peer's address, IPv4-mapped IPv6 as IPv4. */
function peer(req: IncomingMessage): { address: string; family: 'ipv4' | 'ipv6' } | null {
  const raw = (req.socket.remoteAddress ?? '').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
  const version = isIP(raw);
  return version ? { address: raw, family: version === 4 ? 'ipv4' : 'ipv6' } : null;
}

function refuse(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): false {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
  res.end(body);
  return false;
}

type Outcome = 'ok' | 'denied' | 'busy';

export class HttpGuard {
  private readonly remembered = new Map<string, boolean>();
  private readonly verifying = new Map<string, Promise<boolean>>();

  /** `credentials` null: nothing needs them (loopback, no credentials configured). */
  constructor(
    private readonly credentials: Credentials | null,
    private readonly open: ReadonlySet<string>,
  ) {}

  /** Whether the request may go on to the routes; if not, it has been answered. */
  async admit(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
    const path = requestPath(req.url);
    if (path === null) return refuse(res, 400, 'bad request path\n');
    if (this.credentials && !this.open.has(path)) {
      const outcome = await this.authenticate(req, this.credentials);
      if (outcome === 'busy') return refuse(res, 429, 'too many logins at once; try again\n', { 'retry-after': '1' });
      if (outcome === 'denied') return refuse(res, 401, 'authentication required\n', { 'www-authenticate': REALM });
    }
    if (!(ALLOWED_METHODS as readonly string[]).includes(req.method ?? '')) return refuse(res, 405, `only ${ALLOWED_METHODS.join(' and ')}\n`, { allow: ALLOWED_METHODS.join(', ') });
    return true;
  }

  private authenticate(req: IncomingMessage, c: Credentials): Outcome | Promise<Outcome> {
    if (c.proxy) {
      const user = req.headers[c.proxy.header];
      const from = peer(req);
      if (typeof user === 'string' && user.trim() && from && c.proxy.from.check(from.address, from.family)) return 'ok';
    }
    const authorization = req.headers.authorization;
    if (!authorization) return 'denied';
    // Keyed by a digest: the lookup's timing tells nothing about the secret.
    const key = sha256(authorization).toString('hex');
    const known = this.remembered.get(key);
    if (known !== undefined) return known ? 'ok' : 'denied';
    let pending = this.verifying.get(key);
    if (!pending) {
      if (this.verifying.size >= MAX_VERIFICATIONS) return 'busy';
      pending = verifyAuthorization(authorization, c).then((ok) => {
        this.remember(key, ok);
        return ok;
      });
      this.verifying.set(key, pending);
      void pending.finally(() => this.verifying.delete(key)).catch(() => undefined);
    }
    return pending.then((ok) => (ok ? 'ok' : 'denied'));
  }

  private remember(key: string, ok: boolean): void {
    this.remembered.set(key, ok);
    if (this.remembered.size > REMEMBERED) this.remembered.delete(this.remembered.keys().next().value!);
  }
}

/** Does the Authorization header carry the token, or a user and their password? */
export async function verifyAuthorization(authorization: string, c: Credentials): Promise<boolean> {
  const space = authorization.indexOf(' ');
  const scheme = authorization.slice(0, Math.max(0, space)).toLowerCase();
  const value = authorization.slice(space + 1).trim();
  const tokenIs = (given: string) => c.token !== null && timingSafeEqual(sha256(given), c.token);
  if (scheme === 'bearer') return tokenIs(value);
  if (scheme !== 'basic' || !/^[A-Za-z0-9+/]+={0,2}$/.test(value)) return false;
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return false;
  const [user, password] = [decoded.slice(0, colon), decoded.slice(colon + 1)];
  if (tokenIs(password)) return true;
  if (!c.users.size) return false;
  // An unknown name costs the same scrypt (against a random salt, never equal) as a known one.
  const known = c.users.get(user);
  const h = known ?? { ...c.users.values().next().value!, salt: randomBytes(16) };
  const ok = await verifyPassword(password, h);
  return ok && known !== undefined;
}

/**
 * The guard of a server with these settings; `privateRoutes`: it serves the dashboard and /api/.
 * Throws ConfigError when they would be open to the network, or when a route the settings close
 * could not be opened by any credentials.
 */
export function httpGuard(s: HttpSettings, privateRoutes: boolean): HttpGuard {
  const credentials = readCredentials(s);
  if (!credentials) {
    if (privateRoutes && !isLoopback(s.host)) {
      throw new ConfigError(
        `${settingName('metrics.host')} is ${s.host}, not a loopback address, and no credentials are configured: the dashboard and /api/ (user DNs, client networks, security alerts) would be open to anyone who reaches the port. ` +
          `Set ${settingName('metrics.usersFile')} or ${settingName('metrics.tokenFile')} (or, behind an authenticating reverse proxy, ${settingName('metrics.proxyUserHeader')} and ${settingName('metrics.trustedProxies')}), or listen on 127.0.0.1.`,
      );
    }
    const closed = OPERATIONAL_PATHS.filter((p) => !s.openPaths.includes(p));
    if (closed.length) throw new ConfigError(`${settingName('metrics.openPaths')} closes ${closed.join(', ')}, but no credentials are configured: set ${settingName('metrics.usersFile')} or ${settingName('metrics.tokenFile')}`);
  }
  return new HttpGuard(credentials, new Set(s.openPaths));
}
