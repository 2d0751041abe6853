/**
 * Listener: a dedicated connection LISTENing on our channel. Every notification, every
 * (re)connect and the start-up self-test call `onWake`; the probe then drains the queue.
 *
 * It is its own small loop on a pg.Client rather than a library's, so that every way the
 * connection can end is handled in one place and can never end the process: the client's
 * 'error' and 'end' events, a failed LISTEN, and a heartbeat query that does not answer in
 * time (a half-open connection: server gone, socket silent) all end the session, and the loop
 * connects again with backoff, forever, until stop(). The loss is logged once and the
 * reconnect once, not every attempt in between (failed attempts go to the probe's outage
 * report, which also says things once).
 */
import pg from 'pg';
import { connectionConfig, describeDatabaseError, isConnectionFault, pause, type DatabaseOptions, type DatabaseOutage } from './db';
import type { Logger } from './logger';
import { backoffDelay } from './sender';
import { WAKE_CHANNEL } from './queue';

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


export class WakeListener {
  connected = false;
  lastNotificationAt: number | null = null;
  /** Resolvers waiting for the self-test notification. */
  private selfTestWaiters: ((ok: boolean) => void)[] = [];
  private readonly stopping = new AbortController();
  private loop: Promise<void> | null = null;
  /** Ends the current session at once (stop() must not wait for a silent socket to close). */
  private endSession: (() => void) | null = null;

  constructor(private readonly options: ListenerOptions) {}

  /**
   * Starts the loop; resolves true once the first LISTEN is in place, or false if stop() came
   * first. It keeps trying meanwhile, however long the database takes to come up.
   */
  start(): Promise<boolean> {
    return new Promise((resolve) => {
      this.loop = this.run(() => resolve(true));
      void this.loop.then(() => resolve(false));
    });
  }

  private async run(onFirstConnect: () => void): Promise<void> {
    let failures = 0;
    let lostAt: number | null = null;
    let everConnected = false;
    while (!this.stopping.signal.aborted) {
      const { ended, listened } = await this.session(() => {
        if (everConnected) {
          this.options.log.info('listener reconnected; draining what arrived meanwhile', {
            downSeconds: lostAt === null ? 0 : Math.round((Date.now() - lostAt) / 100) / 10,
            attempts: failures,
          });
        }
        everConnected = true;
        failures = 0;
        lostAt = null;
        onFirstConnect();
        this.options.onWake('connected');
      });
      if (this.stopping.signal.aborted) break;
      failures++;
      if (listened) {
        lostAt = Date.now();
        this.options.log.warn('listener connection lost; reconnecting', { error: describeDatabaseError(ended) });
      } else if (isConnectionFault(ended) && this.options.outage) {
        this.options.outage.fault(ended, 'listening');
      } else if (failures === 1 || !isConnectionFault(ended)) {
        this.options.log.warn('listener cannot connect; retrying', { error: describeDatabaseError(ended) });
      }
      await pause(backoffDelay(failures, 250, 5_000), this.stopping.signal);
    }
  }

  /**
   * One connection: connect, LISTEN, then heartbeats until something ends it. Resolves with
   * what ended it, and whether it got as far as listening (never rejects).
   */
  private async session(onListening: () => void): Promise<{ ended: unknown; listened: boolean }> {
    const heartbeatMs = this.options.heartbeatMs ?? 10_000;
    const client = new pg.Client({ ...connectionConfig(this.options.database), application_name: 'dcache-probe listener', query_timeout: heartbeatMs });
    let end!: (why: unknown) => void;
    const ended = new Promise<unknown>((resolve) => (end = resolve));
    this.endSession = () => end(new Error('stopped'));
    client.on('error', (err) => end(err));
    client.on('end', () => end(new Error('Connection ended')));
    client.on('notification', (n) => {
      if (n.channel !== WAKE_CHANNEL) return;
      this.lastNotificationAt = Date.now();
      if (n.payload === 'self-test') {
        for (const resolve of this.selfTestWaiters.splice(0)) resolve(true);
        return;
      }
      this.options.onWake('notification');
    });
    let heartbeat: NodeJS.Timeout | undefined;
    const beat = () => {
      heartbeat = setTimeout(() => {
        client.query('SELECT 1').then(beat, end);
      }, heartbeatMs);
    };
    try {
      const listening = (async () => {
        await client.connect();
        await client.query(`LISTEN ${client.escapeIdentifier(WAKE_CHANNEL)}`);
      })();
      // Whichever comes first: LISTEN in place, or the session ended (error, stop()).
      const first = await Promise.race([listening.then(() => null), ended.then((why) => ({ why }))]);
      if (first) return { ended: first.why, listened: false };
      if (this.stopping.signal.aborted) return { ended: new Error('stopped'), listened: false };
      this.connected = true;
      beat();
      onListening();
      return { ended: await ended, listened: true };
    } catch (err) {
      return { ended: err, listened: false };
    } finally {
      clearTimeout(heartbeat);
      this.connected = false;
      this.endSession = null;
      // Not awaited: a half-open socket may never finish closing; TCP keep-alive ends it.
      client.end().catch(() => undefined);
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
      await pool.query('SELECT pg_notify($1, $2)', [WAKE_CHANNEL, 'self-test']);
    } catch {
      return null;
    }
    return received;
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    this.endSession?.();
    await this.loop;
  }
}
