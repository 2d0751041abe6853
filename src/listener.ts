/**
 * Listener: a dedicated connection LISTENing on our channel (pg-listen), which reconnects by
 * itself. Every notification, every (re)connect and the start-up self-test call `onWake`;
 * the probe then drains the queue. A heartbeat query with a timeout catches half-open
 * connections (server gone, socket silent) and forces a reconnect.
 */
import createSubscriber, { type Subscriber } from 'pg-listen';
import type pg from 'pg';
import { connectionConfig, type DatabaseOptions } from './db';
import type { Logger } from './logger';
import { backoffDelay } from './sender';
import { WAKE_CHANNEL } from './queue';

export interface ListenerOptions {
  database: DatabaseOptions;
  /** Heartbeat period; the heartbeat query must answer within the same time. */
  heartbeatMs?: number;
  onWake: (reason: 'notification' | 'connected') => void;
  log: Logger;
}

export class WakeListener {
  private subscriber: Subscriber | null = null;
  connected = false;
  private everConnected = false;
  lastNotificationAt: number | null = null;
  /** Resolvers waiting for the self-test notification. */
  private selfTestWaiters: ((ok: boolean) => void)[] = [];

  constructor(private readonly options: ListenerOptions) {}

  async start(): Promise<void> {
    const heartbeatMs = this.options.heartbeatMs ?? 10_000;
    const config: pg.ClientConfig = { ...connectionConfig(this.options.database), application_name: 'dcache-probe listener', query_timeout: heartbeatMs };
    const subscriber = createSubscriber(config, {
      paranoidChecking: heartbeatMs,
      retryInterval: (attempt) => backoffDelay(attempt, 250, 10_000),
      retryLimit: Infinity,
      retryTimeout: 0, // never give up reconnecting
      parse: (payload: string) => payload,
    });
    this.subscriber = subscriber;
    subscriber.events.on('notification', ({ payload }) => {
      this.lastNotificationAt = Date.now();
      if (payload === 'self-test') {
        for (const resolve of this.selfTestWaiters.splice(0)) resolve(true);
        return;
      }
      this.options.onWake('notification');
    });
    subscriber.events.on('reconnect', (attempt) => {
      this.connected = false;
      this.options.log.warn('listener connection lost; reconnecting', { attempt });
    });
    subscriber.events.on('connected', () => {
      if (this.everConnected) this.options.log.info('listener reconnected; draining what arrived meanwhile');
      this.everConnected = true;
      this.connected = true;
      this.options.onWake('connected');
    });
    subscriber.events.on('error', (err) => {
      this.connected = false;
      this.options.log.error('listener error', { error: err.message });
    });
    await subscriber.connect();
    await subscriber.listenTo(WAKE_CHANNEL);
    this.connected = true;
  }

  /**
   * Sends a notification through the given pool and waits for it on the listening
   * connection. False means LISTEN does not deliver (e.g. behind a transaction-mode pooler):
   * the probe then relies on polling.
   */
  async selfTest(pool: pg.Pool, timeoutMs = 5000): Promise<boolean> {
    const received = new Promise<boolean>((resolve) => {
      this.selfTestWaiters.push(resolve);
      setTimeout(() => resolve(false), timeoutMs).unref();
    });
    await pool.query('SELECT pg_notify($1, $2)', [WAKE_CHANNEL, 'self-test']);
    return received;
  }

  async stop(): Promise<void> {
    const subscriber = this.subscriber;
    this.subscriber = null;
    this.connected = false;
    if (subscriber) await subscriber.close().catch(() => undefined);
  }
}
