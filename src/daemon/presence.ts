/**
 * What a daemon tells the world and watches about itself: its heartbeat (JETBATCH_DAEMONS, by which other daemons
 * tell it is alive), its API registrations (JETBATCH_APIS, refreshed so publishers know the API is served), the NATS
 * connection state, and the queue depth per API (polled in the background so a metrics scrape never waits on NATS).
 */
import type { Logger } from 'pino';
import type { FleetContext } from '../fleet/context.js';
import { Streams, encodeJson } from '../fleet/protocol.js';
import type { DaemonRecord } from '../types.js';
import type { DaemonMetrics } from './metrics.js';

export class Presence {
  readonly #ctx: FleetContext;
  readonly #daemonId: string;
  readonly #log: Logger;
  readonly #metrics: DaemonMetrics;
  #connected = true;
  readonly #started = new Date().toISOString();
  #heartbeatFailing = false;
  /** When (monotonic ms) a heartbeat was last written. */
  #lastHeartbeat: number | undefined;
  /** Batches queued per API, as last polled; an API whose figure is unknown is absent. */
  depth = new Map<string, number>();

  constructor(ctx: FleetContext, daemonId: string, log: Logger, metrics: DaemonMetrics) {
    this.#ctx = ctx;
    this.#daemonId = daemonId;
    this.#log = log;
    this.#metrics = metrics;
  }

  get connected(): boolean {
    return this.#connected;
  }

  /**
   * Rewrites this daemon's entry in JETBATCH_DAEMONS; other daemons count it gone once it stops changing. It carries
   * the lanes this daemon offers per API (the fleet's capacity, for scheduling) and the batches running per job (for
   * status).
   */
  async heartbeat(beat: Pick<DaemonRecord, 'host' | 'presence_timeout_ms' | 'lanes' | 'running' | 'unhealthy'>): Promise<void> {
    const record: DaemonRecord = {
      daemon: this.#daemonId,
      host: beat.host,
      pid: process.pid,
      apis: Object.keys(beat.lanes ?? {}),
      started: this.#started,
      last_seen: new Date().toISOString(),
      presence_timeout_ms: beat.presence_timeout_ms,
      lanes: beat.lanes ?? {},
      running: beat.running ?? {},
      unhealthy: beat.unhealthy ?? {},
    };
    try {
      await this.#ctx.daemons.put(this.#daemonId, encodeJson(record));
      this.#lastHeartbeat = performance.now();
      if (this.#heartbeatFailing) this.#log.info('heartbeat written again');
      this.#heartbeatFailing = false;
    } catch (err) {
      // Logged once per outage: a heartbeat every few seconds would flood the log while NATS is away.
      if (!this.#heartbeatFailing) this.#log.warn({ err: (err as Error).message }, 'writing the heartbeat failed; retrying');
      this.#heartbeatFailing = true;
    }
  }

  /** Whether a heartbeat was written within `maxAgeMs`. */
  heartbeatWithin(maxAgeMs: number): boolean {
    return this.#lastHeartbeat !== undefined && performance.now() - this.#lastHeartbeat < maxAgeMs;
  }

  /** Removes this daemon's entry (shutdown): the fleet knows at once that it is gone. */
  async leave(): Promise<void> {
    await this.#ctx.daemons.delete(this.#daemonId);
  }

  async register(apis: readonly string[]): Promise<void> {
    for (const api of apis) {
      await this.#ctx.apis.put(api, encodeJson({ api_name: api, last_seen: new Date().toISOString(), daemon: this.#daemonId }));
    }
  }

  async pollQueueDepth(apis: readonly string[]): Promise<void> {
    const depth = new Map<string, number>();
    for (const api of apis) {
      const info = await this.#ctx.jsm.streams.info(Streams.batches, { subjects_filter: `jetbatch.batch.${api}.>` }).catch(() => null);
      if (info !== null) depth.set(api, Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0));
    }
    this.depth = depth;
  }

  /** Follows the connection's status events until it closes. */
  watchConnection(): void {
    this.#metrics.natsConnected.set(1);
    void (async () => {
      for await (const s of this.#ctx.nc.status()) {
        if (s.type === 'disconnect') {
          this.#connected = false;
          this.#log.warn({ server: s.server }, 'disconnected from NATS');
        } else if (s.type === 'reconnect') {
          this.#connected = true;
          this.#metrics.natsReconnects.inc();
          this.#log.info({ server: s.server }, 'reconnected to NATS');
        }
        this.#metrics.natsConnected.set(this.#connected ? 1 : 0);
      }
    })();
  }
}
