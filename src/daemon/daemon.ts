/**
 * The daemon: connects, provisions, runs one pool per configured API, follows the job registry and runs every
 * active job of its APIs, answers requests, serves metrics, and shuts down gracefully.
 */
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import { hostname } from 'node:os';
import type { KvWatchEntry } from '@nats-io/kv';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { connectNats } from '../fleet/connect.js';
import { openContext, type FleetContext } from '../fleet/context.js';
import { endJob, markRunning, noteOutOfMemory, purgeLeftoversLater } from '../fleet/lifecycle.js';

import { createLogger } from '../util/log.js';
import { Subjects, decodeJson } from '../fleet/protocol.js';
import { provisionWithRetry } from '../fleet/provision.js';
import type { ErrorInfo, JobRecord } from '../types.js';
import { ErrorCodes, toErrorInfo } from '../errors.js';
import { isTerminal } from '../types.js';
import { checkJob, type CompletionDeps } from './completion/completion.js';
import { Peers } from './completion/peers.js';
import { serverWarnings } from './server-version.js';
import type { DaemonOptions } from './config.js';
import { startHttp } from './http.js';
import { HandlerMetricsSink } from './handler-metrics.js';
import { Presence } from './presence.js';
import { JobRunner } from './batches/job-runner.js';
import { DaemonMetrics } from './metrics.js';
import { ApiHost } from './pools/api-host.js';
import type { ApiPool } from './pools/pool.js';
import { serveRequests } from './requests.js';
import { TimingStats } from './stats.js';

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
  /** Status of every job of our APIs seen in the registry (for jetbatch_jobs). */
  readonly #statuses = new Map<string, { api: string; status: string }>();
  readonly #nc: NatsConnection;
  readonly #ctx: FleetContext;
  #host!: ApiHost;
  /** Every active job of any API (so a reload that adds an API finds its jobs). */
  readonly #allActive = new Map<string, JobRecord>();
  readonly #starting = new Set<string>();
  readonly #runners = new Map<string, JobRunner>();
  /** Latest record of every active job of our APIs. */
  readonly #active = new Map<string, JobRecord>();
  readonly #fatal = new Set<string>();
  readonly #stats: TimingStats;
  readonly #handlerMetrics: HandlerMetricsSink;
  readonly #leaseMs: number;
  readonly #subs: Subscription[] = [];
  readonly #timers: NodeJS.Timeout[] = [];
  /** Beats on through shutdown until the daemon's entry is deleted, so a completion finishing in the grace keeps its claim. */
  #heartbeat: NodeJS.Timeout | undefined;
  #http: Server | undefined;
  readonly #presence: Presence;
  #draining = false;
  #closing: Promise<void> | undefined;
  /** The check of each job under way (at most one per job; a completion runs inside its check). */
  readonly #checking = new Map<string, Promise<void>>();
  readonly #peers: Peers;
  readonly #checkPending = new Set<string>();
  /** The job registry watch, from the moment it is asked for until it ends. */
  #watch: Promise<{ stop(): void }> | undefined;

  private constructor(options: DaemonOptions, nc: NatsConnection, ctx: FleetContext, log: Logger, id: string, leaseMs: number) {
    this.options = options;
    this.#nc = nc;
    this.#ctx = ctx;
    this.log = log;
    this.id = id;
    this.#leaseMs = leaseMs;
    this.metrics = new DaemonMetrics({
      pools: () => this.#host.pools().map((p) => ({ api: p.api.name, utilization: p.utilization, threads: p.threads, capacity: p.slots.capacity, used: p.slots.used })),
      queueDepth: () => this.#presence.depth,
      ready: () => this.ready().ready,
      jobStatuses: () => [...this.#statuses.values()],
    });
    this.#stats = new TimingStats(ctx.stats, id);
    this.#handlerMetrics = new HandlerMetricsSink(this.metrics.registry, log);
    this.#presence = new Presence(ctx, id, log, this.metrics);
    this.#peers = new Peers(ctx.daemons);
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
      const daemon = new Daemon(options, nc, ctx, log, id, options.leaseMs);
      await daemon.#start(host, options.checkIntervalMs, runtime.pretty === true);
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
    return { ready: reasons.length === 0, reasons };
  }

  async #start(host: string, sweepMs: number, pretty: boolean): Promise<void> {
    this.#host = new ApiHost(
      {
        ctx: this.#ctx,
        host,
        daemonId: this.id,
        pretty,
        maxLineBytes: this.options.logMaxLineBytes,
        nats: this.options.nats,
        stateDir: this.options.stateDir,
        log: this.log,
        onEvent: (api, event) => {
          if (event.type === 'lease' || event.type === 'started') this.#runners.get(event.jobId)?.extendLease(event.batchId);
          else this.#handlerMetrics.record(api, event.kind, event.name, event.value, event.labels);
        },
      },
      this.options.apis,
    );
    await this.#host.start();
    // The first heartbeat precedes any claim this daemon can make, so a claim's daemon always has an entry.
    const heartbeat = (): Promise<void> => this.#presence.heartbeat(host, this.#apiNames(), this.options.presenceTimeoutMs);
    await heartbeat();
    this.#heartbeat = this.#every(Math.max(200, Math.floor(this.options.presenceTimeoutMs / 5)), heartbeat);
    await this.#presence.register(this.#apiNames());
    this.#presence.watchConnection();
    this.#subs.push(
      this.#nc.subscribe(Subjects.controlWildcard, {
        callback: (err, msg) => {
          if (err !== null) return;
          const jobId = msg.subject.split('.')[2] ?? '';
          const runner = this.#runners.get(jobId);
          if (runner !== undefined) void this.#retire(runner.jobId);
        },
      }),
    );
    this.#subs.push(...serveRequests(this.#ctx, this.log));
    void this.#watchJobs();
    this.#every(sweepMs, () => this.#sweep());
    this.#every(1000, () => this.#stats.flush());
    this.#every(30_000, () => this.#presence.register(this.#apiNames()));
    this.#every(Math.max(1000, sweepMs), () => this.#presence.pollQueueDepth(this.#apiNames()));
    for (const api of this.#host.apis()) this.metrics.initApi(api.name);
    if (this.options.metrics.enabled) {
      this.#http = await startHttp(this.options.metrics.listen, { registry: this.metrics.registry, ready: () => this.ready() });
    }
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

  async #watchJobs(): Promise<void> {
    for (;;) {
      if (this.#draining) return;
      try {
        // close() stops the watch, waiting for one still being set up: a watch that outlives the connection keeps
        // a heartbeat timer running, and with it the process.
        const starting = this.#ctx.jobs.watch();
        this.#watch = starting;
        const watch = await starting;
        if (this.#draining) return;
        try {
          for await (const entry of watch) {
            if (this.#draining) break;
            this.#onJobEntry(entry);
          }
        } finally {
          if (this.#watch === starting) this.#watch = undefined;
        }
      } catch (err) {
        if (this.#draining) return;
        this.log.warn({ err }, 'job registry watch failed; restarting it');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  #onJobEntry(entry: KvWatchEntry): void {
    if (entry.operation !== 'PUT' || entry.value.length === 0) {
      this.#statuses.delete(entry.key);
      this.#allActive.delete(entry.key);
      void this.#retire(entry.key);
      return;
    }
    let record: JobRecord;
    try {
      record = decodeJson(entry.value) as JobRecord;
    } catch (err) {
      this.log.warn({ err, key: entry.key }, 'ignoring an undecodable job record');
      return;
    }
    if (isTerminal(record.status)) this.#allActive.delete(record.job_id);
    else this.#allActive.set(record.job_id, record);
    if (!this.#host.serves(record.api_name)) return;
    this.#statuses.set(record.job_id, { api: record.api_name, status: record.status });
    if (isTerminal(record.status)) {
      const hadRunner = this.#runners.has(record.job_id);
      this.#active.delete(record.job_id);
      void this.#retire(record.job_id);
      if (hadRunner) purgeLeftoversLater(this.#ctx, record);
      return;
    }
    this.#active.set(record.job_id, record);
    const runner = this.#runners.get(record.job_id);
    if (runner === undefined && !this.#fatal.has(record.job_id)) void this.#startRunner(record).catch((err: unknown) => this.#fail(record.job_id, record.api_name, cannotRun(err)));
    // Batches may start while the publisher is still enqueuing; the job turns `running` once it is `pending`.
    if (record.status === 'pending' && runner?.started === true) void markRunning(this.#ctx, record.job_id).catch(() => undefined);
  }

  async #startRunner(record: JobRecord): Promise<void> {
    const api = record.api_name;
    if (this.#starting.has(record.job_id) || this.#runners.has(record.job_id) || this.#draining) return;
    this.#starting.add(record.job_id);
    let pool: ApiPool;
    try {
      pool = await this.#host.poolFor(record);
    } catch (err) {
      this.#fail(record.job_id, api, toErrorInfo(err, ErrorCodes.HANDLER_LOAD_FAILED));
      return;
    } finally {
      this.#starting.delete(record.job_id);
    }
    if (this.#draining || !this.#active.has(record.job_id)) {
      this.#host.release(record.job_id);
      return;
    }
    const runner = new JobRunner(this.#ctx, pool, record, {
      log: this.log,
      leaseMs: this.#leaseMs,
      onStarted: (jobId) => void markRunning(this.#ctx, jobId).catch(() => undefined),
      onDispatched: (_jobId, n, redelivered) => this.metrics.inFlightBy(api, n, redelivered),
      onFinished: (_jobId, n) => this.metrics.inFlightBy(api, -n),
      onAcked: (jobId, outcomes) => {
        this.metrics.acked(api, outcomes);
        for (const o of outcomes) this.#stats.record(jobId, o.durationMs);
      },
      onSettled: (jobId, outcome, decision) => {
        this.metrics.settled(api, outcome, decision);
        if (!outcome.ok && decision === 'dead-lettered' && outcome.error.code === ErrorCodes.WORKER_OOM) void noteOutOfMemory(this.#ctx, jobId, toErrorInfo(outcome.error)).catch((err: unknown) => this.log.warn({ err, job_id: jobId }, 'recording the out-of-memory error failed'));
      },
      onIdle: (jobId) => void this.#checkSoon(jobId),
      onFatal: (jobId, error) => this.#fail(jobId, api, error),
    });
    this.#runners.set(record.job_id, runner);
    this.metrics.activeJobs.inc({ api_name: api });
    runner.start();
    this.log.info({ job_id: record.job_id, api_name: api, status: record.status }, 'job picked up');
  }

  /** The handler cannot be loaded or constructed here: the job ends as worker_error (once per job). */
  #fail(jobId: string, api: string, error: ErrorInfo): void {
    if (this.#fatal.has(jobId)) return;
    this.#fatal.add(jobId);
    this.log.error({ job_id: jobId, api_name: api, error }, 'handler failed to load or construct; failing the job');
    void endJob(this.#ctx, jobId, 'worker_error', error).catch((err: unknown) => this.log.error({ err, job_id: jobId }, 'failing the job failed'));
  }

  /** Stops and forgets the job's runner (aborting its in-flight batches) and drops its handler instances. */
  async #retire(jobId: string): Promise<void> {
    const runner = this.#runners.get(jobId);
    if (runner === undefined) {
      this.#host.release(jobId);
      return;
    }
    this.#runners.delete(jobId);
    this.metrics.activeJobs.dec({ api_name: runner.spec.api_name });
    runner.pool.broadcast({ type: 'abort', jobId });
    await runner.stop('abort');
    runner.pool.broadcast({ type: 'ended', jobId });
    this.#host.release(jobId);
    await this.#stats.flush(jobId);
    this.#stats.forget(jobId);
  }

  #completionDeps(): CompletionDeps {
    return {
      ctx: this.#ctx,
      daemonId: this.id,
      log: this.log,
      leaseMs: this.#leaseMs,
      presenceTimeoutMs: this.options.presenceTimeoutMs,
      peers: this.#peers,
      poolFor: (record) => this.#host.poolFor(record),
      flushStats: (jobId) => this.#stats.flush(jobId),
      closing: () => this.#draining,
      present: () => this.#presence.heartbeatWithin(this.options.presenceTimeoutMs / 2),
    };
  }

  /** A completion check of the job 50 ms from now (one pending at a time per job). */
  async #checkSoon(jobId: string): Promise<void> {
    if (this.#checkPending.has(jobId)) return;
    this.#checkPending.add(jobId);
    await new Promise((r) => setTimeout(r, 50));
    this.#checkPending.delete(jobId);
    await this.#check(jobId);
  }

  async #check(jobId: string): Promise<void> {
    const record = this.#active.get(jobId);
    if (record === undefined || this.#checking.has(jobId) || this.#draining) return;
    const check = checkJob(this.#completionDeps(), record)
      .catch((err: unknown) => this.log.warn({ err, job_id: jobId }, 'job check failed'))
      .finally(() => this.#checking.delete(jobId));
    this.#checking.set(jobId, check);
    await check;
  }

  async #sweep(): Promise<void> {
    for (const jobId of [...this.#active.keys()]) {
      const runner = this.#runners.get(jobId);
      if (runner !== undefined && runner.inFlight > 0 && this.#active.get(jobId)?.timeout === null) continue;
      await this.#check(jobId);
    }
  }

  /**
   * Applies a re-read configuration (SIGHUP): APIs added, removed or changed (threads, config, timeouts…). Jobs of
   * removed or changed APIs stop pulling, their in-flight batches get the shutdown grace to finish and the rest are
   * handed back for redelivery; changed and added APIs then start on fresh pools. NATS settings need a restart.
   */
  async reload(next: DaemonOptions): Promise<{ closed: string[]; added: string[] }> {
    if (this.#draining) return { closed: [], added: [] };
    const outdated = new Set(this.#host.outdatedBy(next.apis));
    const stopping = [...this.#runners.values()].filter((r) => outdated.has(r.spec.api_name));
    await Promise.all(
      stopping.map(async (r) => {
        this.#runners.delete(r.jobId);
        this.metrics.activeJobs.dec({ api_name: r.spec.api_name });
        await r.stop('release', this.options.shutdownGraceMs);
        this.#host.release(r.jobId);
      }),
    );
    const result = await this.#host.reconfigure(next.apis);
    for (const jobId of [...this.#active.keys()]) if (!this.#host.serves(this.#active.get(jobId)!.api_name)) this.#active.delete(jobId);
    for (const record of this.#allActive.values()) {
      if (!this.#host.serves(record.api_name)) continue;
      this.#active.set(record.job_id, record);
      if (!this.#runners.has(record.job_id)) void this.#startRunner(record).catch((err: unknown) => this.#fail(record.job_id, record.api_name, cannotRun(err)));
    }
    await this.#presence.register(this.#apiNames()).catch(() => undefined);
    for (const api of this.#host.apis()) this.metrics.initApi(api.name);
    this.log.info({ closed: result.closed, added: result.added }, 'configuration reloaded');
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
    const watch = this.#watch;
    if (watch !== undefined) await withTimeout(watch.then((w) => w.stop()), 5000).catch(() => undefined);
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
    await Promise.all([
      ...[...this.#runners.values()].map((r) => step(() => r.stop('release', this.options.shutdownGraceMs))),
      // A completion under way gets the grace to finish; one still running after it is left to another daemon,
      // which takes it over once this daemon's heartbeat entry is gone (deleted below).
      withTimeout(Promise.all(this.#checking.values()), this.options.shutdownGraceMs).catch(() =>
        this.log.warn({ jobs: [...this.#checking.keys()] }, 'job checks or completions still running after the shutdown grace; other daemons take them over'),
      ),
    ]);
    this.#runners.clear();
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

/** An unexpected error starting a job's runner: the job cannot run here. */
function cannotRun(err: unknown): ErrorInfo {
  const info = toErrorInfo(err);
  return { ...info, message: `the job cannot run: ${info.message}` };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms).unref())]);
}
