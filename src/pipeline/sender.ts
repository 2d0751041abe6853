/**
 * Sender: delivers multiupdate bundles to a Gratia collector over HTTP(S) with undici. The
 * bodies come ready-made (src/record/envelope.ts); this is only the HTTP delivery and its retry.
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
import { backoffDelay, errorMessage, pause } from '../lib';

export type SendOutcome =
  /** 200 "OK": every record in the bundle is durably accepted. */
  | { kind: 'accepted'; attempts: number }
  /** The collector refused the bundle's content (400, or the old collector's 200 "Error..."). */
  | { kind: 'rejected'; attempts: number; answer: string }
  /** The body was too large for the collector (413, or the old collector's "Post too large"). */
  | { kind: 'too-large'; attempts: number; answer: string }
  /** Still failing when the retry budget ran out, or the send was aborted. */
  | { kind: 'unavailable'; attempts: number; answer: string };

/**
 * What delivery needs of a sender: one bundle body delivered, with the collector's verdict.
 * CollectorSender is the real one; tests hand Delivery a fake.
 */
export interface RecordSender {
  /** The body: the urlencoded form, as a string or as its bytes. */
  send(form: string | Buffer, signal?: AbortSignal): Promise<SendOutcome>;
}

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

export class CollectorSender implements RecordSender {
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
        throw new Error(`${setting}: cannot read ${path}: ${errorMessage(err)}`);
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
  async post(form: string | Buffer, signal?: AbortSignal): Promise<{ status: number; body: string }> {
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
  async send(form: string | Buffer, signal?: AbortSignal): Promise<SendOutcome> {
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
