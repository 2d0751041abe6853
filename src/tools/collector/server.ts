/**
 * A Gratia collector that speaks the protocol as GRACC does, for tests, the demo and the
 * benchmarks. It is strict where GRACC is strict (form encoding, body size, UTF-8, XML
 * well-formedness, RFC 3339 times, commands), answers exactly as GRACC answers, and keeps what
 * it accepted for inspection. Faults can be injected through its control API.
 *
 * Control API (JSON, never used by the probe):
 *   GET  /_control/records  -> { accepted: [{ localJobId, xml }], requests, ... }
 *   GET  /_control/stats    -> counts only
 *   POST /_control/fault    -> body { mode, ... } (see Fault)
 *   POST /_control/reset    -> forget everything
 */
import { createHash } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { errorMessage } from '../../lib';
import { BadRequest, XML_ERROR, parseEnvelope, type EnvelopeRecord } from './envelope';

/** GRACC reads at most this much form body. */
export const GRACC_MAX_BODY = 10 * 1024 * 1024;

export interface Fault {
  /**
   * ok: normal; unavailable: 503; reset: destroy the socket; hang: never answer; error500;
   * slow-ack: store the bundle, then answer OK only after delayMs (the window in which a probe
   * can die after the collector accepted but before it knows).
   */
  mode: 'ok' | 'unavailable' | 'reset' | 'hang' | 'error500' | 'slow-ack';
  delayMs?: number;
  /** Refuse (400 "Error processing record") any bundle with a record whose XML matches this regex. */
  rejectPattern?: string;
  /** Answer like the old Java collector above this many body bytes ("Post too large", 200). */
  postTooLargeAbove?: number;
  /** Refuse like the old Java collector: status 200 with "Error: ..." in the body, not 400. */
  oldCollectorAnswers?: boolean;
  /** Apply the mode only to the next n requests, then go back to ok. */
  count?: number;
}

export interface AcceptedRecord {
  localJobId: string;
  xml: string;
  /** GRACC-style content hash: the record without RecordIdentity and the user/VO/site fields. */
  contentHash: string;
  /** When the bundle holding it was accepted (epoch ms). */
  receivedAt: number;
}

export type KeepMode = 'records' | 'ids' | 'none';

export interface CollectorOptions {
  port?: number;
  host?: string;
  /** records: keep every record's XML; ids: keep LocalJobIds only; none: count only. */
  keep?: KeepMode;
  tls?: { cert: Buffer; key: Buffer; clientCa?: Buffer };
}

export interface CollectorStats {
  requests: number;
  bundlesAccepted: number;
  recordsAccepted: number;
  uniqueRecords: number;
  duplicateRecords: number;
  refused: number;
  pings: number;
  tooLarge: number;
  faultsInjected: number;
  lastAcceptedAt: number | null;
}

/** Decodes one form value strictly: invalid UTF-8 is an error, as in GRACC. */
function decodeFormValue(raw: string): string {
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    throw new BadRequest(XML_ERROR);
  }
}

export function parseForm(body: string): Map<string, string> {
  const form = new Map<string, string>();
  for (const pair of body.split('&')) {
    if (!pair) continue;
    const eq = pair.indexOf('=');
    const key = decodeFormValue(eq < 0 ? pair : pair.slice(0, eq));
    form.set(key, eq < 0 ? '' : decodeFormValue(pair.slice(eq + 1)));
  }
  return form;
}

/** The GRACC document id idea: hash the record without the fields it ignores for identity. */
export function contentHash(recordXml: string): string {
  const stripped = recordXml
    .replace(/<RecordIdentity\b[^>]*?(\/>|>[\s\S]*?<\/RecordIdentity>)/, '')
    .replace(/<(VOName|ReportableVOName|LocalUserId|SiteName|Grid)>[\s\S]*?<\/\1>/g, '');
  return createHash('sha256').update(stripped).digest('hex');
}

export class GratiaCollector {
  readonly stats: CollectorStats = {
    requests: 0,
    bundlesAccepted: 0,
    recordsAccepted: 0,
    uniqueRecords: 0,
    duplicateRecords: 0,
    refused: 0,
    pings: 0,
    tooLarge: 0,
    faultsInjected: 0,
    lastAcceptedAt: null,
  };
  readonly accepted: AcceptedRecord[] = [];
  /** ProbeDetails handshakes received (GRACC ignores them; the old collector kept them). */
  readonly handshakes: string[] = [];
  readonly acceptedIds: string[] = [];
  private readonly seen = new Set<string>();
  private fault: Fault = { mode: 'ok' };
  private server: Server | null = null;
  private readonly keep: KeepMode;

  constructor(private readonly options: CollectorOptions = {}) {
    this.keep = options.keep ?? 'records';
  }

  async start(): Promise<string> {
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res);
    const tls = this.options.tls;
    this.server = tls
      ? createHttpsServer({ cert: tls.cert, key: tls.key, ca: tls.clientCa, requestCert: Boolean(tls.clientCa), rejectUnauthorized: Boolean(tls.clientCa) }, handler)
      : createHttpServer(handler);
    this.server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => this.server!.listen(this.options.port ?? 0, this.options.host ?? '127.0.0.1', resolve));
    const { port } = this.server.address() as AddressInfo;
    return `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  setFault(fault: Fault): void {
    this.fault = fault;
  }

  reset(): void {
    this.accepted.length = 0;
    this.acceptedIds.length = 0;
    this.handshakes.length = 0;
    this.seen.clear();
    Object.assign(this.stats, { requests: 0, bundlesAccepted: 0, recordsAccepted: 0, uniqueRecords: 0, duplicateRecords: 0, refused: 0, pings: 0, tooLarge: 0, faultsInjected: 0, lastAcceptedAt: null });
    this.fault = { mode: 'ok' };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://collector');
    if (url.pathname.startsWith('/_control/')) return this.control(url.pathname, req, res);
    if (req.method !== 'POST' || url.pathname !== '/gratia-servlets/rmi') return this.answer(res, 404, 'Not found');
    this.stats.requests++;

    const body = await readBody(req, GRACC_MAX_BODY);
    if (body === null) {
      // GRACC stops reading at 10 MiB: the form is then incomplete, and the connection closes.
      res.setHeader('connection', 'close');
      return this.answer(res, 400, 'Error handling request: missing key "command"');
    }

    if (this.fault.mode !== 'ok' && this.fault.mode !== 'slow-ack' && this.injectFault(res)) return;
    if (this.fault.postTooLargeAbove !== undefined && body.length > this.fault.postTooLargeAbove) {
      this.stats.tooLarge++;
      return this.answer(res, 200, 'java.lang.IllegalStateException: Post too large');
    }

    const contentType = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    let form: Map<string, string>;
    try {
      form = contentType === 'application/x-www-form-urlencoded' ? parseForm(body.toString('latin1')) : new Map();
    } catch (err) {
      return this.answer(res, 400, errorMessage(err));
    }
    const command = form.get('command');
    if (command === undefined) return this.answer(res, 400, 'Error handling request: missing key "command"');
    if (command === 'update') {
      this.stats.pings++;
      return this.answer(res, 200, 'OK');
    }
    if (command !== 'multiupdate') return this.answer(res, 400, 'Error handling request: unknown command');
    const arg1 = form.get('arg1');
    if (arg1 === undefined) return this.answer(res, 400, 'Error handling request: missing key "arg1"');
    if (form.get('from') === undefined) return this.answer(res, 400, 'Error handling request: missing key "from"');

    let records: EnvelopeRecord[];
    try {
      records = parseEnvelope(arg1);
    } catch (err) {
      this.stats.refused++;
      return this.answer(res, 400, err instanceof BadRequest ? err.message : XML_ERROR);
    }
    if (this.fault.rejectPattern) {
      const pattern = new RegExp(this.fault.rejectPattern);
      const bad = records.find((r) => pattern.test(r.xml));
      if (bad) {
        this.stats.refused++;
        if (this.fault.oldCollectorAnswers) return this.answer(res, 200, `Error: record refused ${bad.localJobId}`);
        return this.answer(res, 400, `Error processing record: refused ${bad.localJobId}`);
      }
    }
    const now = Date.now();
    for (const r of records) this.store(r, now);
    for (const h of arg1.match(/<ProbeDetails\b[\s\S]*?<\/ProbeDetails>/g) ?? []) this.handshakes.push(h);
    this.stats.bundlesAccepted++;
    this.stats.lastAcceptedAt = Date.now();
    if (this.fault.mode === 'slow-ack' && this.consumeFault()) {
      const delay = this.fault.delayMs ?? 5000;
      setTimeout(() => this.answer(res, 200, 'OK'), delay).unref();
      return;
    }
    return this.answer(res, 200, 'OK');
  }

  private store(r: EnvelopeRecord, receivedAt: number): void {
    this.stats.recordsAccepted++;
    const hash = contentHash(r.xml);
    if (this.seen.has(hash)) this.stats.duplicateRecords++;
    else {
      this.seen.add(hash);
      this.stats.uniqueRecords++;
    }
    if (this.keep === 'records') this.accepted.push({ localJobId: r.localJobId, xml: r.xml, contentHash: hash, receivedAt });
    else if (this.keep === 'ids') this.acceptedIds.push(r.localJobId);
  }

  /** Counts one use of the current fault; false (and back to ok) once its count is used up. */
  private consumeFault(): boolean {
    const fault = this.fault;
    if (fault.count !== undefined) {
      if (fault.count <= 0) {
        this.fault = { mode: 'ok' };
        return false;
      }
      fault.count--;
    }
    this.stats.faultsInjected++;
    return true;
  }

  /** Applies the current fault; true if the request was answered (or dropped) by it. */
  private injectFault(res: ServerResponse): boolean {
    if (!this.consumeFault()) return false;
    switch (this.fault.mode) {
      case 'unavailable':
        this.answer(res, 503, 'Service unavailable right now');
        return true;
      case 'error500':
        this.answer(res, 500, 'Internal server error');
        return true;
      case 'reset':
        res.socket?.destroy();
        return true;
      case 'hang':
        return true; // never answer; the client's timeout must fire
      default:
        return false;
    }
  }

  private async control(path: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const json = (status: number, value: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(value));
    };
    if (path === '/_control/stats') return json(200, this.stats);
    if (path === '/_control/records') return json(200, { stats: this.stats, accepted: this.accepted, acceptedIds: this.acceptedIds, handshakes: this.handshakes });
    if (path === '/_control/reset' && req.method === 'POST') {
      this.reset();
      return json(200, { ok: true });
    }
    if (path === '/_control/fault' && req.method === 'POST') {
      const body = await readBody(req, 1 << 20);
      this.setFault(JSON.parse(body?.toString('utf8') || '{"mode":"ok"}') as Fault);
      return json(200, { ok: true });
    }
    return json(404, { error: 'unknown control path' });
  }

  private answer(res: ServerResponse, status: number, body: string): void {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(body);
  }
}

/** Reads a request body; null if it is longer than limit (the rest is discarded). */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on('end', () => resolve(tooLarge ? null : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
