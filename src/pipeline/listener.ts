/**
 * Listener: a dedicated connection LISTENing on our channel, kept by pg-listen (1.7), which
 * reconnects by itself (retryLimit Infinity, retryTimeout 0: forever; retryInterval 250 ms
 * doubling to 5 s) and re-LISTENs; its paranoid check (`SELECT pg_backend_pid()` every
 * heartbeat, answered within the client's query_timeout of the same length) is the heartbeat
 * that catches a half-open connection. Every notification, every (re)connect and the start-up
 * self-test call `onWake`; the probe then drains the queue. No connection error ends the
 * process; the loss is logged once and the reconnect once, and the failed attempts in between
 * go to the probe's outage report (which also says things once).
 *
 * pg-listen has three defects (node_modules/pg-listen/dist/index.js; each was reproduced with
 * a TCP proxy in front of PostgreSQL), worked around here. The lever is node-postgres's
 * `stream` option: every client pg-listen makes gets its socket from us, so we see how each
 * connection ends (and why) and can end any of them.
 * 1. Stuck after a failed re-LISTEN. reinitialize() ignores its client's 'error' and 'end'
 *    while it runs (`reinitializingRightNow`), so a connection that dies during the LISTEN
 *    after a reconnect is noticed by nobody (without paranoid checks: no reconnect and no
 *    notification ever again); and one whose LISTEN failed but which lives on passes every
 *    paranoid check without listening. Either way pg-listen emits 'error' (the only time it
 *    does: parse is the identity, a payload cannot fail it). On it we destroy that client's
 *    socket: a live one ends, and its 'end' starts a new reinitialize(); one already gone
 *    fails the paranoid check, scheduled on it before the LISTEN, within one heartbeat.
 * 2. A second connection when the first connect failed. The failed client's 'end' already
 *    starts reinitialize() in the background, so whoever retries (connect() again, a new
 *    subscriber) has two. We call connect() once and let pg-listen's reconnect finish the job;
 *    the channel is subscribed (listenTo) at the first 'connected', whichever way it came, and
 *    pg-listen re-LISTENs it on every reconnect after that.
 * 3. close() does not stop a reconnect: the loop in reconnect() never looks at `closing`, and
 *    reinitialize() then LISTENs on the new client, schedules its paranoid check and emits
 *    'connected' (close() 0.8 s into an outage, the database back: 'connected' 0.2 s later,
 *    and the process stays alive). After stop() our 'reconnect' listener throws (pg-listen
 *    calls it at the start of every attempt, outside the attempt's try), as do retryInterval
 *    (called after a failed attempt) and the socket factory: reconnect() rejects, and
 *    reinitialize() ends with 'error'. stop() destroys every socket (an attempt in flight
 *    fails at once), closes again any client a reconnect brought up meanwhile (at its
 *    'connected' or 'error'), and resolves when pg-listen's loop has ended and every socket
 *    is closed. What cannot be cut short is pg-listen's wait between two attempts (a plain
 *    setTimeout): a stop() during it ends when the wait does, at most 5 s later.
 *
 * A failed attempt is reported when its socket closes before LISTEN is in place, with the
 * first error seen on it; the loss is said at pg-listen's first 'reconnect' after listening.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import type pg from 'pg';
import createSubscriber, { type Subscriber } from 'pg-listen';
import { connectionConfig, describeDatabaseError, isConnectionFault, type DatabaseOptions, type DatabaseOutage } from '../db/pool';
import type { Logger } from '../logger';
import { backoffDelay, pause } from '../lib';
import { WAKE_CHANNEL, wakeProbes } from '../db/wake-up';

export interface ListenerOptions {
  database: DatabaseOptions;
  /** Heartbeat period; the heartbeat query must answer within the same time. */
  heartbeatMs?: number;
  onWake: (reason: 'notification' | 'connected') => void;
  log: Logger;
  /**
   * Told when a connection attempt fails (the database cannot be reached): while the probe is
   * idle, the listener's attempts are the ones that notice. (That it is back is for the drain
   * that every reconnect starts to say: a delivery's connection broken during the outage
   * fails only then, and still belongs to it.)
   */
  outage?: DatabaseOutage;
}

/** Thrown into pg-listen's reconnect loop after stop(), to end it (defect 3). */
export class ListenerStopped extends Error {
  readonly code = 'LISTENER_STOPPED';
  constructor() {
    super('the listener is stopped');
    this.name = 'ListenerStopped';
  }
}

/** The socket under one of pg-listen's clients. */
interface Session {
  socket: net.Socket;
  /** The first error on it (the socket's, or what the server said): why it ended. */
  error: unknown;
  /** LISTEN is in place on it. */
  listening: boolean;
  isClosed: boolean;
  closed: Promise<void>;
}

/** How long stop() lets the listening connection say goodbye before cutting it. */
const GOODBYE_MS = 1_000;

/** Why a connection we listened on was given up. */
export function lossReason(session: Pick<Session, 'error' | 'isClosed'>, heartbeatMs: number): string {
  if (session.error !== undefined) return describeDatabaseError(session.error);
  if (session.isClosed) return 'the server closed the connection';
  // pg-listen gives up a client on its 'error' (we saw it), its 'end' (the socket closed), or
  // a failed paranoid check: what is left.
  return `the heartbeat got no answer within ${heartbeatMs / 1000} s`;
}

export class WakeListener {
  connected = false;
  lastNotificationAt: number | null = null;
  /** Resolvers waiting for the self-test notification. */
  private selfTestWaiters: ((ok: boolean) => void)[] = [];
  private readonly heartbeatMs: number;
  private subscriber: Subscriber | null = null;
  /** Every socket not yet closed, and the newest one (that of pg-listen's current client). */
  private readonly sessions = new Set<Session>();
  private current: Session | null = null;
  private listeningOn: Session | null = null;
  /** pg-listen's reinitialize() runs: from its first 'reconnect' to its 'connected' or 'error'. */
  private reconnecting: { ended: Promise<void>; end: () => void } | null = null;
  private everConnected = false;
  private failures = 0;
  private lostAt: number | null = null;
  private stopped = false;
  private stopping: Promise<void> | null = null;
  private settleStart: (listening: boolean) => void = () => undefined;

  constructor(private readonly options: ListenerOptions) {
    this.heartbeatMs = options.heartbeatMs ?? 10_000;
  }

  /**
   * Starts listening; resolves true once the first LISTEN is in place, or false if stop() came
   * first. pg-listen keeps trying meanwhile, however long the database takes to come up.
   */
  start(): Promise<boolean> {
    if (this.stopped) return Promise.resolve(false);
    return new Promise((resolve) => {
      this.settleStart = resolve;
      const subscriber = createSubscriber(this.clientConfig(), {
        paranoidChecking: this.heartbeatMs,
        retryInterval: (previousAttempts) => this.retryDelay(previousAttempts),
        retryLimit: Infinity,
        retryTimeout: 0,
        parse: (payload: string) => payload,
      });
      this.subscriber = subscriber;
      subscriber.events.on('notification', ({ channel, payload }) => this.onNotification(channel, payload));
      subscriber.events.on('reconnect', (attempt) => this.onReconnect(attempt));
      subscriber.events.on('connected', () => this.onConnected());
      subscriber.events.on('error', (err) => this.onError(err));
      // Once only (defect 2). A failed attempt is reported when its socket closes; one that
      // failed and still holds its socket is cut, so that its 'end' starts pg-listen's reconnect.
      const first = this.current;
      subscriber.connect().catch(() => first?.socket.destroy());
    });
  }

  private clientConfig(): pg.ClientConfig {
    const open = (connection: unknown) => this.openSocket(connection);
    return {
      ...connectionConfig(this.options.database),
      application_name: 'dcache-probe listener',
      query_timeout: this.heartbeatMs,
      // node-postgres calls this as a method of the client's Connection (`this`): its
      // 'errorMessage' is what the server said (57P01, 57P03, a refused login).
      stream: function (this: unknown) {
        return open(this);
      },
    };
  }

  private openSocket(connection: unknown): net.Socket {
    if (this.stopped) throw new ListenerStopped();
    const socket = new net.Socket();
    const session: Session = { socket, error: undefined, listening: false, isClosed: false, closed: Promise.resolve() };
    const noteError = (err: unknown) => {
      session.error ??= err;
    };
    socket.on('error', noteError);
    if (connection instanceof EventEmitter) connection.on('errorMessage', noteError);
    session.closed = new Promise((resolve) =>
      socket.once('close', () => {
        session.isClosed = true;
        this.sessions.delete(session);
        this.onSocketClosed(session);
        resolve();
      }),
    );
    this.sessions.add(session);
    this.current = session;
    return socket;
  }

  private retryDelay(previousAttempts: number): number {
    if (this.stopped) throw new ListenerStopped();
    return backoffDelay(previousAttempts + 1, 250, 5_000);
  }

  private onNotification(channel: string, payload: unknown): void {
    if (this.stopped || channel !== WAKE_CHANNEL) return;
    this.lastNotificationAt = Date.now();
    if (payload === 'self-test') {
      for (const resolve of this.selfTestWaiters.splice(0)) resolve(true);
      return;
    }
    this.options.onWake('notification');
  }

  /** pg-listen starts a connection attempt (attempt 1: it has just given up its client). */
  private onReconnect(attempt: number): void {
    if (this.stopped) throw new ListenerStopped();
    if (!this.reconnecting) {
      let end!: () => void;
      const ended = new Promise<void>((resolve) => (end = resolve));
      this.reconnecting = { ended, end };
    }
    const lost = this.listeningOn;
    if (lost) {
      this.listeningOn = null;
      this.connected = false;
      this.lostAt = Date.now();
      this.options.log.warn('listener connection lost; reconnecting', { error: lossReason(lost, this.heartbeatMs) });
    }
    // Earlier attempts that failed without closing their socket: pg-listen never ends them.
    if (attempt > 1) for (const s of this.sessions) if (!s.listening) s.socket.destroy();
  }

  /** pg-listen's client is connected (and, after a reconnect, has re-LISTENed). */
  private onConnected(): void {
    this.endReconnecting();
    const session = this.current;
    if (this.stopped) return this.closeAgain();
    if (!session || !this.subscriber) return;
    if (this.subscriber.getSubscribedChannels().includes(WAKE_CHANNEL)) return this.listening(session);
    this.subscriber.listenTo(WAKE_CHANNEL)?.then(
      () => this.listening(session),
      (err: unknown) => this.forceReconnect(session, err),
    );
  }

  /** pg-listen's reinitialize() failed: the re-LISTEN (defect 1), or our ListenerStopped. */
  private onError(err: unknown): void {
    this.endReconnecting();
    if (this.stopped) return this.closeAgain();
    if (this.current) this.forceReconnect(this.current, err);
  }

  private endReconnecting(): void {
    this.reconnecting?.end();
    this.reconnecting = null;
  }

  /**
   * Ends a connection that is not listening: a live one's 'end' makes pg-listen reconnect; one
   * already gone fails the paranoid check scheduled on it, within a heartbeat (defect 1).
   */
  private forceReconnect(session: Session, err: unknown): void {
    if (this.stopped) return;
    session.error ??= err;
    session.socket.destroy();
  }

  /** After stop(): ends the client a pending reconnect brought up, and its paranoid check (defect 3). */
  private closeAgain(): void {
    void this.subscriber?.close().catch(() => undefined);
    for (const s of this.sessions) s.socket.destroy();
  }

  private listening(session: Session): void {
    if (this.stopped || session.isClosed || session !== this.current) return;
    session.listening = true;
    this.listeningOn = session;
    this.connected = true;
    if (this.everConnected) {
      this.options.log.info('listener reconnected; draining what arrived meanwhile', {
        downSeconds: this.lostAt === null ? 0 : Math.round((Date.now() - this.lostAt) / 100) / 10,
        attempts: this.failures,
      });
    }
    this.everConnected = true;
    this.failures = 0;
    this.lostAt = null;
    this.settleStart(true);
    this.options.onWake('connected');
  }

  private onSocketClosed(session: Session): void {
    if (this.stopped) return;
    if (session.listening) {
      // pg-listen reconnects (its 'reconnect' says the loss); until then we are not listening.
      if (session === this.listeningOn) this.connected = false;
      return;
    }
    this.attemptFailed(session.error ?? new Error('Connection terminated unexpectedly'));
  }

  private attemptFailed(err: unknown): void {
    this.failures++;
    if (isConnectionFault(err) && this.options.outage) {
      this.options.outage.fault(err, 'listening');
    } else if (this.failures === 1 || !isConnectionFault(err)) {
      this.options.log.warn('listener cannot connect; retrying', { error: describeDatabaseError(err) });
    }
  }

  /**
   * Sends a notification through the given pool and waits for it on the listening
   * connection. False means LISTEN does not deliver (e.g. behind a transaction-mode pooler):
   * the probe then relies on polling. Null: the notification could not be sent (the database
   * went away meanwhile), so nothing is known.
   */
  async selfTest(pool: pg.Pool, timeoutMs = 5000): Promise<boolean | null> {
    const received = new Promise<boolean>((resolve) => {
      this.selfTestWaiters.push(resolve);
      setTimeout(() => resolve(false), timeoutMs).unref();
    });
    try {
      await wakeProbes(pool, 'self-test');
    } catch {
      return null;
    }
    return received;
  }

  /** Ends everything: resolves when pg-listen's reconnect loop, if one runs, has ended and every socket is closed. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    this.stopped = true;
    this.connected = false;
    this.settleStart(false);
    const subscriber = this.subscriber;
    if (!subscriber) return;
    // close(): no new reconnect starts, the paranoid check ends, the current client is ended.
    const goodbye = subscriber.close().catch(() => undefined);
    for (const s of this.sessions) if (s !== this.listeningOn) s.socket.destroy();
    const waited = new AbortController(); // ends the pause once the goodbye came first
    await Promise.race([goodbye, pause(GOODBYE_MS, waited.signal)]);
    waited.abort();
    for (const s of this.sessions) s.socket.destroy();
    await this.reconnecting?.ended;
    await Promise.all([...this.sessions].map((s) => s.closed));
  }
}
