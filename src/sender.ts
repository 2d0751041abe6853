/**
 * Sender: delivers multiupdate bundles to a Gratia collector over HTTP(S) with undici.
 *
 * One keep-alive connection pool; server verification against a custom CA, client
 * certificates (Gratia's UseSSL/CertificateFile/KeyFile), and HTTP(S)_PROXY / NO_PROXY from the
 * environment. A bundle counts as delivered only on status 200 with body exactly "OK" (GRACC
 * answers only after its broker confirmed every record). Network errors, timeouts, 5xx and
 * unexpected answers are retried with exponential backoff and jitter within a time budget;
 * answers that say the bundle itself is bad are returned at once (retrying cannot help).
 */
import { readFileSync } from 'node:fs';
import { EnvHttpProxyAgent, request, type Dispatcher } from 'undici';
import { backoffDelay, pause } from './lib';
import { ENVELOPE_HEAD, ENVELOPE_TAIL, envelopeLine } from './xml';

export type SendOutcome =
  /** 200 "OK": every record in the bundle is durably accepted. */
  | { kind: 'accepted'; attempts: number }
  /** The collector refused the bundle's content (400, or the old collector's 200 "Error..."). */
  | { kind: 'rejected'; attempts: number; answer: string }
  /** The body was too large for the collector (413, or the old collector's "Post too large"). */
  | { kind: 'too-large'; attempts: number; answer: string }
  /** Still failing when the retry budget ran out, or the send was aborted. */
  | { kind: 'unavailable'; attempts: number; answer: string };

export interface SenderOptions {
  endpoint: URL;
  probeName: string;
  timeoutMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  retryBudgetMs: number;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  /** Called before each retry, for logs and metrics. */
  onRetry?: (attempt: number, answer: string, delayMs: number) => void;
}

export interface BundleInfo {
  /** Records still waiting in the queue, reported to the collector as "backlog". */
  backlog?: number;
  bundleSize?: number;
}

// The request body is application/x-www-form-urlencoded, byte for byte as URLSearchParams
// writes it: collectors deduplicate by content, so a record sent again must come out the same.
// URLSearchParams encodes its values in JavaScript, character by character, which for a 1 MB
// bundle cost ~50 µs per record (and splitting a bundle encoded it again). Here each record's
// line of the envelope is encoded once, with the native encodeURIComponent, and a body is the
// concatenation of the encoded parts, so its size is known before it is built.

/** encodeURIComponent's output where URLSearchParams writes something else. */
const NOT_AS_URLSEARCHPARAMS = /%20|[!'()~]/g;
const AS_URLSEARCHPARAMS: Record<string, string> = { '%20': '+', '!': '%21', "'": '%27', '(': '%28', ')': '%29', '~': '%7E' };
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * One form value exactly as URLSearchParams encodes it: UTF-8, percent-escapes in upper case,
 * space as '+', only alphanumerics and `*-._` left as they are (encodeURIComponent also leaves
 * `!'()~`). The result is ASCII, so its length is its size in bytes.
 */
export function formEncode(value: string): string {
  let encoded: string;
  try {
    encoded = encodeURIComponent(value);
  } catch (err) {
    // encodeURIComponent throws on a lone surrogate; URLSearchParams writes U+FFFD for it.
    if (!(err instanceof URIError)) throw err;
    encoded = encodeURIComponent(value.replace(LONE_SURROGATE, '\uFFFD'));
  }
  return encoded.replace(NOT_AS_URLSEARCHPARAMS, (s) => AS_URLSEARCHPARAMS[s]!);
}

/**
 * A record's part of arg1, encoded once. Encoding the parts one by one gives the same bytes as
 * encoding the whole envelope: the encoding goes code point by code point, and every part ends
 * with a newline, so no surrogate pair can straddle two parts.
 */
export function encodedRecord(recordXml: string): string {
  return formEncode(envelopeLine(recordXml));
}

/** Everything before the first record: the command and the start of arg1. */
const FORM_HEAD = `command=multiupdate&arg1=${formEncode(ENVELOPE_HEAD)}`;

/** Everything after the last record: the end of arg1 and the other fields, in Gratia's order. */
function formTail(probeName: string, backlog: number, bundleSize: number): string {
  const backlogText = formEncode(String(backlog));
  return (
    `${formEncode(ENVELOPE_TAIL)}&from=${formEncode(probeName)}&xmlfiles=${backlogText}&tarfiles=0&maxpendingfiles=0` +
    `&backlog=${backlogText}&bundlesize=${formEncode(String(bundleSize))}`
  );
}

/** The body for encoded records start..end-1 (records from encodedRecord). */
function formOfEncoded(encoded: readonly string[], start: number, end: number, probeName: string, backlog: number, bundleSize = end - start): string {
  return FORM_HEAD + encoded.slice(start, end).join('') + formTail(probeName, backlog, bundleSize);
}

/** The urlencoded form GRACC and the old collector accept for a bundle. */
export function multiupdateForm(recordsXml: readonly string[], probeName: string, info: BundleInfo = {}): string {
  const encoded = recordsXml.map(encodedRecord);
  return formOfEncoded(encoded, 0, encoded.length, probeName, info.backlog ?? 0, info.bundleSize ?? recordsXml.length);
}

/**
 * Cuts records into request bodies that stay under maxBytes (halving where one is too big).
 * Each record is encoded once; a range's size is the sum of its parts' lengths plus the fixed
 * fields, so only the bodies that are sent get built.
 */
export function planBodies(records: readonly string[], probeName: string, maxBytes: number, backlog: number): { start: number; end: number; form: string }[] {
  const encoded = records.map(encodedRecord);
  // before[i]: bytes of the encoded records before record i.
  const before = [0];
  for (const part of encoded) before.push(before[before.length - 1]! + part.length);
  const size = (start: number, end: number) => FORM_HEAD.length + before[end]! - before[start]! + formTail(probeName, backlog, end - start).length;

  const out: { start: number; end: number; form: string }[] = [];
  const plan = (start: number, end: number): void => {
    if (start >= end) return;
    if (size(start, end) <= maxBytes || end - start === 1) {
      out.push({ start, end, form: formOfEncoded(encoded, start, end, probeName, backlog) });
      return;
    }
    const mid = start + Math.ceil((end - start) / 2);
    plan(start, mid);
    plan(mid, end);
  };
  plan(0, records.length);
  return out;
}

type Verdict = SendOutcome['kind'] | 'retry';

/** What one collector answer means for the bundle. */
export function classifyAnswer(status: number, body: string): Verdict {
  if (status === 200 && body === 'OK') return 'accepted';
  if (status === 413 || /Post too large/i.test(body)) return 'too-large';
  if (status === 400) return 'rejected';
  // The old Java collector answers errors with status 200 and the error in the body.
  if (status === 200 && /^\s*Error/.test(body)) return 'rejected';
  // 5xx, 408, 429, auth and routing errors, proxies' HTML pages: not the records' fault; the
  // records stay queued and are retried.
  return 'retry';
}

function describe(status: number, body: string): string {
  const text = body.length > 300 ? body.slice(0, 300) + '…' : body;
  return `HTTP ${status}: ${text.trim() || '(empty body)'}`;
}

export class CollectorSender {
  private readonly dispatcher: Dispatcher;
  /** Time of the last 200 "OK" (epoch ms), for readiness and status. */
  lastAcceptedAt: number | null = null;

  constructor(private readonly options: SenderOptions) {
    // Certificates matter only for https; an unreadable one is named by its setting.
    const https = options.endpoint.protocol === 'https:';
    const read = (path: string | undefined, setting: string) => {
      if (!path || !https) return undefined;
      try {
        return readFileSync(path);
      } catch (err) {
        throw new Error(`${setting}: cannot read ${path}: ${(err as Error).message}`);
      }
    };
    const tls = {
      ca: read(options.caFile, 'collector.caFile'),
      cert: read(options.certFile, 'collector.certFile'),
      key: read(options.keyFile, 'collector.keyFile'),
    };
    this.dispatcher = new EnvHttpProxyAgent({
      connect: tls,
      requestTls: tls,
      keepAliveTimeout: 30_000,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      connections: 16,
    });
  }

  /** One POST; returns status and body, throws on network errors and timeouts. */
  async post(form: string, signal?: AbortSignal): Promise<{ status: number; body: string }> {
    const timeout = AbortSignal.timeout(this.options.timeoutMs);
    const response = await request(this.options.endpoint, {
      method: 'POST',
      dispatcher: this.dispatcher,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form,
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
    const body = await response.body.text();
    return { status: response.statusCode, body };
  }

  /** Delivers one bundle body, retrying what may succeed later, within the retry budget. */
  async send(form: string, signal?: AbortSignal): Promise<SendOutcome> {
    const deadline = Date.now() + this.options.retryBudgetMs;
    for (let attempt = 1; ; attempt++) {
      let answer: string;
      try {
        const { status, body } = await this.post(form, signal);
        const verdict = classifyAnswer(status, body);
        answer = describe(status, body);
        if (verdict === 'accepted') {
          this.lastAcceptedAt = Date.now();
          return { kind: 'accepted', attempts: attempt };
        }
        if (verdict !== 'retry') return { kind: verdict, attempts: attempt, answer };
      } catch (err) {
        answer = networkErrorText(err);
      }
      const delay = backoffDelay(attempt, this.options.retryBaseMs, this.options.retryMaxMs);
      if (signal?.aborted || Date.now() + delay > deadline) return { kind: 'unavailable', attempts: attempt, answer };
      this.options.onRetry?.(attempt, answer, delay);
      await pause(delay, signal);
      if (signal?.aborted) return { kind: 'unavailable', attempts: attempt, answer: `${answer} (then aborted)` };
    }
  }

  /** Gratia's ping: "update" with arg1=xxx answers OK. */
  async ping(signal?: AbortSignal): Promise<boolean> {
    try {
      const { status, body } = await this.post(new URLSearchParams({ command: 'update', arg1: 'xxx', from: this.options.probeName }).toString(), signal);
      return status === 200 && body === 'OK';
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}

function networkErrorText(err: unknown): string {
  const e = err as { code?: string; name?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = e.cause?.code ?? e.code ?? e.name ?? 'Error';
  const message = e.cause?.message ?? e.message ?? String(err);
  return `${code}: ${message}`;
}
