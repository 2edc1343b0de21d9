/**
 * The daemon: connects, provisions, runs one pool per configured API (pools/), follows the job registry (jobs.ts)
 * and runs every active job of its APIs (runners.ts), completes jobs once fleet-wide (completion/), answers
 * requests, serves metrics, and shuts down gracefully. This file wires those parts and owns start, reload and close.
 */
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import { hostname } from 'node:os';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { connectNats } from '../fleet/connect.js';
import { openContext, type FleetContext } from '../fleet/context.js';
import { purgeLeftoversLater } from '../fleet/lifecycle.js';
import { Subjects } from '../fleet/protocol.js';
import { provisionWithRetry } from '../fleet/provision.js';
import { createLogger } from '../util/log.js';
import { Peers } from './completion/peers.js';
import { SourceEnqueuer } from './enqueue/source-enqueuer.js';
import { CompletionScheduler } from './completion/scheduler.js';
import type { DaemonOptions } from './config.js';
import { HandlerMetricsSink } from './handler-metrics.js';
import { startHttp } from './http.js';
import { JobTable } from './jobs.js';
import { DaemonMetrics } from './metrics.js';
import { ApiHost } from './pools/api-host.js';
import { FleetView } from './fleet-view.js';
import { Presence } from './presence.js';
import { serveRequests } from './requests.js';
import { Runners } from './runners.js';
import { serverWarnings } from './server-version.js';
import { TimingStats } from './stats.js';

/** Longest time between two heartbeats (they carry the running counts that status shows). */
const HEARTBEAT_MAX_MS = 2000;

export interface DaemonRuntime {
  /** Where logs go; by default pino JSON lines on stdout at the configured level. */
  logger?: Logger;
  /** Human-readable logs (pino-pretty) from the daemon and its worker threads. */
  pretty?: boolean;
}

export class Daemon {
  readonly id: string;
  readonly options: DaemonOptions;
  readonly log: Logger;
  readonly metrics: DaemonMetrics;
  readonly #nc: NatsConnection;
  readonly #ctx: FleetContext;
  readonly #host: ApiHost;
  readonly #jobs: JobTable;
  readonly #runners: Runners;
  readonly #completions: CompletionScheduler;
  readonly #enqueuer: SourceEnqueuer;
  readonly #stats: TimingStats;
  readonly #presence: Presence;
  readonly #fleet: FleetView;
  readonly #subs: Subscription[] = [];
  readonly #timers: NodeJS.Timeout[] = [];
  /** Beats on through shutdown until the daemon's entry is deleted, so a completion finishing in the grace keeps its claim. */
  #heartbeat: NodeJS.Timeout | undefined;
  #http: Server | undefined;
  #draining = false;
  #closing: Promise<void> | undefined;

  private constructor(options: DaemonOptions, nc: NatsConnection, ctx: FleetContext, log: Logger, id: string, host: string, pretty: boolean) {
    this.options = options;
    this.#nc = nc;
    this.#ctx = ctx;
    this.log = log;
    this.id = id;
    this.metrics = new DaemonMetrics({
      pools: () => this.#host.pools().map((p) => ({ api: p.api.name, utilization: p.utilization, threads: p.threads, capacity: p.slots.capacity, used: p.slots.used })),
      queueDepth: () => this.#presence.depth,
      ready: () => this.ready().ready,
      jobStatuses: () => this.#jobs.statuses(),
      running: () => this.#runners.runningByApi(),
    }, { processMetrics: options.metrics.enabled });
    this.#stats = new TimingStats(ctx.stats, id);
    this.#presence = new Presence(ctx, id, log, this.metrics);
    this.#fleet = new FleetView(ctx.daemons, log, id, (api) => this.#lanes()[api] ?? 0);
    const handlerMetrics = new HandlerMetricsSink(this.metrics.registry, log);
    this.#host = new ApiHost(
      {
        ctx,
        host,
        daemonId: id,
        pretty,
        maxLineBytes: options.logMaxLineBytes,
        nats: options.nats,
        s3: options.s3,
        stateDir: options.stateDir,
        environment: options.environment,
        log,
        onMetric: (api, event) => handlerMetrics.record(api, event.kind, event.name, event.value, event.labels),
      },
      options.apis,
    );
    this.#jobs = new JobTable(ctx.jobs, log, (api) => this.#host.serves(api));
    const storeDeps = { js: ctx.js, s3: options.s3 };
    const peers = new Peers(ctx.daemons);
    this.#runners = new Runners({ ctx, host: this.#host, log, leaseMs: options.leaseMs, metrics: this.metrics, stats: this.#stats, isActive: (jobId) => !this.#draining && this.#jobs.get(jobId) !== undefined, fleetLanes: (api) => this.#fleet.lanes(api), storeDeps });
    this.#completions = new CompletionScheduler({
      log,
      record: (jobId) => this.#jobs.get(jobId),
      activeIds: () => this.#jobs.activeIds(),
      inFlight: (jobId) => this.#runners.inFlight(jobId),
      completion: {
        ctx,
        daemonId: id,
        log,
        leaseMs: options.leaseMs,
        presenceTimeoutMs: options.presenceTimeoutMs,
        peers,
        poolFor: (record) => this.#host.poolFor(record),
        flushStats: (jobId) => this.#stats.flush(jobId),
        closing: () => this.#draining,
        present: () => this.#presence.heartbeatWithin(options.presenceTimeoutMs / 2),
        storeDeps,
      },
    });
    // Jobs over stored data are enqueued by a daemon serving their API (it has the stores' access).
    this.#enqueuer = new SourceEnqueuer({
      ctx,
      daemonId: id,
      log,
      leaseMs: options.leaseMs,
      presenceTimeoutMs: options.presenceTimeoutMs,
      peers,
      present: () => !this.#draining && this.#presence.heartbeatWithin(options.presenceTimeoutMs / 2),
      storeDeps,
    });
    this.#jobs.on('active', (record) => {
      this.#runners.ensure(record);
      this.#enqueuer.consider(record);
    });
    this.#jobs.on('ended', (record) => {
      const ranHere = this.#runners.has(record.job_id);
      void this.#runners.retire(record.job_id);
      if (ranHere) purgeLeftoversLater(ctx, record);
    });
    this.#jobs.on('deleted', (jobId) => void this.#runners.retire(jobId));
    this.#runners.on('idle', (jobId) => this.#completions.soon(jobId));
  }

  static async start(options: DaemonOptions, runtime: DaemonRuntime = {}): Promise<Daemon> {
    const host = hostname();
    // Used as a KV key token: no dots (an FQDN host name would split it).
    const id = `${host.replace(/[^A-Za-z0-9_-]/g, '_')}-${process.pid}-${randomBytes(3).toString('hex')}`;
    const log =
      runtime.logger ??
      createLogger({ level: options.logLevel, meta: { host, daemon: id, worker: 'main', pid: process.pid }, maxLineBytes: options.logMaxLineBytes, pretty: runtime.pretty === true });
    const nc = await connectNats({ ...options.nats, name: options.nats.name ?? `jetbatch-daemon-${id}` }, { reconnectForever: true });
    try {
      await provisionWithRetry(nc, { replicas: options.replicas, retentionMs: options.retentionMs }, 120_000, (err) =>
        log.warn({ err: (err as Error).message }, 'JetStream not ready; retrying provisioning'),
      );
      const ctx = await openContext(nc);
      for (const warning of serverWarnings(nc.info?.version, options.replicas)) log.warn({ server_version: nc.info?.version }, warning);
      const daemon = new Daemon(options, nc, ctx, log, id, host, runtime.pretty === true);
      try {
        await daemon.#start(host);
      } catch (err) {
        // Half started (watches, timers, pools): stop all of it, or the process would live on without a daemon.
        await daemon.close().catch(() => undefined);
        throw err;
      }
      return daemon;
    } catch (err) {
      await nc.close().catch(() => undefined);
      throw err;
    }
  }

  /** The address /metrics listens on (useful when configured with port 0). */
  get metricsAddress(): { host: string; port: number } | undefined {
    const a = this.#http?.address();
    return a !== null && typeof a === 'object' ? { host: a.address, port: a.port } : undefined;
  }

  ready(): { ready: boolean; reasons: string[] } {
    const reasons: string[] = [];
    if (!this.#presence.connected) reasons.push('disconnected from NATS');
    if (this.#draining) reasons.push('draining');
    for (const pool of this.#host.pools()) if (pool.threads === 0) reasons.push(`pool ${pool.api.name} has no threads`);
    // A project still being checked does not count against readiness: its pool is up, and most checks pass.
    for (const [api, h] of this.#host.health()) if (h.state === 'unhealthy') reasons.push(`api ${api} unhealthy: ${h.error.message}`);
    return { ready: reasons.length === 0, reasons };
  }

  async #start(host: string): Promise<void> {
    // First: a port that is taken is a configuration error, reported before anything else starts.
    if (this.options.metrics.enabled) {
      this.#http = await startHttp(this.options.metrics.listen, { registry: this.metrics.registry, ready: () => this.ready() });
    }
    await this.#host.start();
    // The first heartbeat precedes any claim this daemon can make, so a claim's daemon always has an entry.
    const heartbeat = (): Promise<void> =>
      this.#presence.heartbeat({ host, presence_timeout_ms: this.options.presenceTimeoutMs, lanes: this.#lanes(), running: this.#runners.runningByJob(), unhealthy: this.#host.unhealthy() });
    await heartbeat();
    // At least every 2 s: the running counts in it are what `jetbatch status` shows.
    this.#heartbeat = this.#every(Math.max(200, Math.min(HEARTBEAT_MAX_MS, Math.floor(this.options.presenceTimeoutMs / 5))), heartbeat);
    this.#fleet.start();
    await this.#presence.register(this.#apiNames());
    this.#presence.watchConnection();
    this.#subs.push(
      this.#nc.subscribe(Subjects.controlWildcard, {
        callback: (err, msg) => {
          if (err !== null) return;
          const jobId = msg.subject.split('.')[2] ?? '';
          if (this.#runners.has(jobId)) void this.#runners.retire(jobId);
        },
      }),
    );
    this.#subs.push(...serveRequests(this.#ctx, this.log));
    this.#jobs.follow();
    const sweepMs = this.options.checkIntervalMs;
    this.#every(sweepMs, () => this.#completions.sweep());
    // An enqueue whose owner is gone changes no record: found by this sweep.
    this.#every(sweepMs, async () => {
      for (const record of this.#jobs.ours()) this.#enqueuer.consider(record);
    });
    this.#every(1000, () => this.#stats.flush());
    this.#every(30_000, () => this.#presence.register(this.#apiNames()));
    this.#every(Math.max(1000, sweepMs), () => this.#presence.pollQueueDepth(this.#apiNames()));
    for (const api of this.#host.apis()) this.metrics.initApi(api.name);
    this.log.info({ apis: this.#host.apis().map((a) => ({ name: a.name, threads: a.threads, deployed: a.deployed })), metrics: this.metricsAddress }, 'daemon started');
  }

  #every(ms: number, fn: () => Promise<void>): NodeJS.Timeout {
    let busy = false;
    const t = setInterval(() => {
      if (busy) return;
      busy = true;
      fn().catch((err: unknown) => this.log.warn({ err }, 'periodic task failed')).finally(() => (busy = false));
    }, ms);
    t.unref();
    this.#timers.push(t);
    return t;
  }

  #apiNames(): string[] {
    return this.#host.apis().map((a) => a.name);
  }

  /** Batches this daemon runs at once per API: threads × concurrency. */
  #lanes(): Record<string, number> {
    return Object.fromEntries(this.#host.apis().map((a) => [a.name, a.threads * a.concurrency]));
  }

  /**
   * Applies a re-read configuration (SIGHUP): APIs added, removed or changed (threads, config, timeouts…). Jobs of
   * removed or changed APIs stop pulling, their in-flight batches get the shutdown grace to finish and the rest are
   * handed back for redelivery; changed and added APIs then start on fresh pools. NATS settings need a restart.
   */
  async reload(next: DaemonOptions): Promise<{ closed: string[]; added: string[]; reloaded: string[] }> {
    if (this.#draining) return { closed: [], added: [], reloaded: [] };
    await this.#runners.release(this.options.shutdownGraceMs, new Set(this.#host.outdatedBy(next.apis)));
    const result = await this.#host.reconfigure(next.apis);
    for (const record of this.#jobs.ours()) this.#runners.ensure(record);
    await this.#presence.register(this.#apiNames()).catch(() => undefined);
    for (const api of this.#host.apis()) this.metrics.initApi(api.name);
    this.log.info({ closed: result.closed, added: result.added, reloaded: result.reloaded }, 'configuration reloaded');
    return result;
  }

  /**
   * Graceful stop (idempotent): stop pulling, let in-flight batches finish within the shutdown grace, hand the
   * rest back for immediate redelivery, close the pools, drain the connection.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#draining = true;
    this.log.info({ grace_ms: this.options.shutdownGraceMs }, 'shutting down');
    await this.#jobs.stop();
    await this.#fleet.stop();
    for (const t of this.#timers) if (t !== this.#heartbeat) clearInterval(t);
    const errors: unknown[] = [];
    const step = async (fn: () => Promise<unknown>): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        errors.push(err);
      }
    };
    for (const s of this.#subs) await step(async () => s.unsubscribe());
    await Promise.all([step(() => this.#runners.release(this.options.shutdownGraceMs)), this.#completions.close(this.options.shutdownGraceMs), step(() => this.#enqueuer.close(this.options.shutdownGraceMs))]);
    clearInterval(this.#heartbeat);
    await step(() => withTimeout(this.#presence.leave(), 5000));
    await step(() => this.#stats.flush());
    await step(() => this.#host.close());
    if (this.#http !== undefined) {
      const http = this.#http;
      await step(() => new Promise<void>((resolve) => { http.close(() => resolve()); http.closeAllConnections(); }));
    }
    await step(() => withTimeout(this.#nc.drain(), 5000).catch(() => this.#nc.close()));
    if (errors.length > 0) this.log.warn({ errors: errors.map(String) }, 'shutdown finished with errors');
    this.log.info('daemon stopped');
  }
}

/** Rejects if `p` has not settled within `ms`; leaves no timer behind. */
function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
