/**
 * The daemon: connects, provisions, runs one pool per configured API, follows the job registry and runs every
 * active job of its APIs, answers requests, serves metrics, and shuts down gracefully.
 */
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import { hostname } from 'node:os';
import { jetstreamManager } from '@nats-io/jetstream';
import type { KvWatchEntry } from '@nats-io/kv';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { connectNats } from '../connect.js';
import { openContext, type FleetContext } from '../context.js';
import { endJob, publishEvent } from '../lifecycle.js';
import { createLogger } from '../log.js';
import { Streams, Subjects, decodeJson, encodeJson } from '../protocol.js';
import { provision } from '../provision.js';
import { transitionJob } from '../registry.js';
import type { ErrorInfo, JobRecord } from '../types.js';
import { ErrorCodes } from '../errors.js';
import { toErrorInfo } from './settle.js';
import { isTerminal } from '../types.js';
import { checkJob, type CompletionDeps } from './completion.js';
import type { DaemonOptions } from './config.js';
import { apiEnvironment } from './env.js';
import { startHttp } from './http.js';
import { HandlerMetricsSink } from './handler-metrics.js';
import { JobRunner } from './job-runner.js';
import { DaemonMetrics } from './metrics.js';
import { ApiPool } from './pool.js';
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
  readonly #pools = new Map<string, ApiPool>();
  readonly #runners = new Map<string, JobRunner>();
  /** Latest record of every active job of our APIs. */
  readonly #active = new Map<string, JobRecord>();
  readonly #fatal = new Set<string>();
  readonly #stats: TimingStats;
  readonly #handlerMetrics: HandlerMetricsSink;
  readonly #leaseMs: number;
  readonly #subs: Subscription[] = [];
  readonly #timers: NodeJS.Timeout[] = [];
  #http: Server | undefined;
  #connected = true;
  #draining = false;
  #closing: Promise<void> | undefined;
  #checking = new Set<string>();

  private constructor(options: DaemonOptions, nc: NatsConnection, ctx: FleetContext, log: Logger, id: string, leaseMs: number) {
    this.options = options;
    this.#nc = nc;
    this.#ctx = ctx;
    this.log = log;
    this.id = id;
    this.#leaseMs = leaseMs;
    this.metrics = new DaemonMetrics({
      pools: () => [...this.#pools.values()].map((p) => ({ api: p.api.name, utilization: p.utilization, threads: p.threads, capacity: p.slots.capacity, used: p.slots.used })),
      queueDepth: () => this.#queueDepth(),
      jobStatuses: () => [...this.#statuses.values()],
    });
    this.#stats = new TimingStats(ctx.stats, id);
    this.#handlerMetrics = new HandlerMetricsSink(this.metrics.registry, log);
  }

  static async start(options: DaemonOptions, runtime: DaemonRuntime = {}): Promise<Daemon> {
    const host = hostname();
    // Used as a KV key token: no dots (an FQDN host name would split it).
    const id = `${host.replace(/[^A-Za-z0-9_-]/g, '_')}-${process.pid}-${randomBytes(3).toString('hex')}`;
    const log =
      runtime.logger ??
      createLogger({ level: options.logLevel, meta: { host, daemon: id, worker: 'main' }, maxLineBytes: options.logMaxLineBytes, pretty: runtime.pretty === true });
    const nc = await connectNats({ ...options.nats, name: options.nats.name ?? `jetbatch-daemon-${id}` }, { reconnectForever: true });
    try {
      await provision(nc, await jetstreamManager(nc), { replicas: options.replicas, retentionMs: options.retentionMs });
      const ctx = await openContext(nc);
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
    if (!this.#connected) reasons.push('disconnected from NATS');
    if (this.#draining) reasons.push('draining');
    for (const [name, pool] of this.#pools) if (pool.threads === 0) reasons.push(`pool ${name} has no threads`);
    return { ready: reasons.length === 0, reasons };
  }

  async #start(host: string, sweepMs: number, pretty: boolean): Promise<void> {
    for (const api of this.options.apis) {
      const pool = new ApiPool({
        api,
        host,
        daemonId: this.id,
        pretty,
        maxLineBytes: this.options.logMaxLineBytes,
        nats: this.options.nats,
        env: apiEnvironment(api.project, process.env),
        onEvent: (event) => {
          if (event.type === 'lease') this.#runners.get(event.jobId)?.extendLease(event.batchId);
          else this.#handlerMetrics.record(api.name, event.kind, event.name, event.value, event.labels);
        },
      });
      this.#pools.set(api.name, pool);
    }
    await this.#registerApis();
    this.#watchConnection();
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
    this.#every(30_000, () => this.#registerApis());
    if (this.options.metrics.enabled) {
      this.#http = await startHttp(this.options.metrics.listen, { registry: this.metrics.registry, ready: () => this.ready() });
    }
    this.log.info({ apis: this.options.apis.map((a) => ({ name: a.name, threads: a.threads })), metrics: this.metricsAddress }, 'daemon started');
  }

  #every(ms: number, fn: () => Promise<void>): void {
    let busy = false;
    const t = setInterval(() => {
      if (busy) return;
      busy = true;
      fn().catch((err: unknown) => this.log.warn({ err }, 'periodic task failed')).finally(() => (busy = false));
    }, ms);
    t.unref();
    this.#timers.push(t);
  }

  async #queueDepth(): Promise<Map<string, number>> {
    const depth = new Map<string, number>();
    for (const api of this.#pools.keys()) {
      const filter = `jetbatch.batch.${api}.>`;
      const info = await this.#ctx.jsm.streams.info(Streams.batches, { subjects_filter: filter }).catch(() => null);
      depth.set(api, Object.values(info?.state.subjects ?? {}).reduce((a, b) => a + b, 0));
    }
    return depth;
  }

  async #registerApis(): Promise<void> {
    for (const api of this.options.apis) {
      await this.#ctx.apis.put(api.name, encodeJson({ api_name: api.name, last_seen: new Date().toISOString(), daemon: this.id }));
    }
  }

  #watchConnection(): void {
    void (async () => {
      for await (const s of this.#nc.status()) {
        if (s.type === 'disconnect') {
          this.#connected = false;
          this.log.warn({ server: s.server }, 'disconnected from NATS');
        } else if (s.type === 'reconnect') {
          this.#connected = true;
          this.metrics.natsReconnects.inc();
          this.log.info({ server: s.server }, 'reconnected to NATS');
        }
        this.metrics.natsConnected.set(this.#connected ? 1 : 0);
      }
    })();
    this.metrics.natsConnected.set(1);
  }

  async #watchJobs(): Promise<void> {
    for (;;) {
      if (this.#draining) return;
      try {
        const watch = await this.#ctx.jobs.watch();
        for await (const entry of watch) {
          if (this.#draining) break;
          this.#onJobEntry(entry);
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
    const pool = this.#pools.get(record.api_name);
    if (pool === undefined) return;
    this.#statuses.set(record.job_id, { api: record.api_name, status: record.status });
    if (isTerminal(record.status)) {
      this.#active.delete(record.job_id);
      void this.#retire(record.job_id);
      return;
    }
    this.#active.set(record.job_id, record);
    const runner = this.#runners.get(record.job_id);
    if (runner === undefined && !this.#fatal.has(record.job_id)) this.#startRunner(pool, record);
    // Batches may start while the publisher is still enqueuing; the job turns `running` once it is `pending`.
    if (record.status === 'pending' && runner?.started === true) void this.#markRunning(record.job_id);
  }

  #startRunner(pool: ApiPool, record: JobRecord): void {
    const api = record.api_name;
    const runner = new JobRunner(this.#ctx, pool, record, {
      log: this.log,
      leaseMs: this.#leaseMs,
      onStarted: (jobId) => void this.#markRunning(jobId),
      onDispatched: (_jobId, deliveryCount) => {
        this.metrics.inFlight.inc({ api_name: api });
        if (deliveryCount > 1) this.metrics.redeliveries.inc({ api_name: api });
      },
      onFinished: () => this.metrics.inFlight.dec({ api_name: api }),
      onSucceeded: (jobId, ms) => {
        this.#stats.record(jobId, ms);
        this.metrics.duration.observe({ api_name: api }, ms / 1000);
      },
      onSettled: (jobId, outcome, decision) => {
        if (outcome.initMs !== undefined) this.metrics.handlerInit.observe({ api_name: api }, outcome.initMs / 1000);
        if (decision === 'released' && outcome.terminated !== undefined) this.metrics.workerDeaths.inc({ api_name: api, reason: outcome.terminated });
        if (decision === 'acked') this.metrics.batches.inc({ api_name: api, outcome: 'succeeded' });
        else if (decision === 'retried') this.metrics.batches.inc({ api_name: api, outcome: 'retried' });
        else if (decision === 'dead-lettered') this.metrics.batches.inc({ api_name: api, outcome: 'dead_lettered' });
        if (!outcome.ok && decision !== 'released') {
          this.metrics.duration.observe({ api_name: api }, outcome.durationMs / 1000);
          const code = outcome.error.code;
          if (code === ErrorCodes.BATCH_TIMEOUT) this.metrics.timeouts.inc({ api_name: api });
          if (outcome.terminated !== undefined) this.metrics.workerDeaths.inc({ api_name: api, reason: outcome.terminated });
          if (decision === 'dead-lettered' && code === ErrorCodes.WORKER_OOM) void this.#noteOom(jobId, toErrorInfo(outcome.error));
        }
        if (this.#runners.get(jobId)?.inFlight === 1) void this.#checkSoon(jobId);
      },
      onFatal: (jobId, error) => {
        if (this.#fatal.has(jobId)) return;
        this.#fatal.add(jobId);
        this.log.error({ job_id: jobId, api_name: api, error }, 'handler failed to load or construct; failing the job');
        void endJob(this.#ctx, jobId, 'worker_error', error).catch((err: unknown) =>
          this.log.error({ err, job_id: jobId }, 'failing the job failed'),
        );
      },
    });
    this.#runners.set(record.job_id, runner);
    this.metrics.activeJobs.inc({ api_name: api });
    runner.start();
    this.log.info({ job_id: record.job_id, api_name: api, status: record.status }, 'job picked up');
  }

  /** A batch dead-lettered after its thread hit the memory cap makes the job end as `worker_oom`. */
  async #noteOom(jobId: string, error: ErrorInfo): Promise<void> {
    await transitionJob(this.#ctx.jobs, jobId, (cur) => (cur.error === null && !isTerminal(cur.status) ? { ...cur, error } : null)).catch(
      (err: unknown) => this.log.warn({ err, job_id: jobId }, 'recording the out-of-memory error failed'),
    );
  }

  async #markRunning(jobId: string): Promise<void> {
    const r = await transitionJob(this.#ctx.jobs, jobId, (cur) => (cur.status === 'pending' ? { ...cur, status: 'running' } : null)).catch(() => null);
    if (r?.changed) await publishEvent(this.#ctx, r.record, 'running').catch(() => undefined);
  }

  /** Stops and forgets the job's runner (aborting its in-flight batches) and drops its handler instances. */
  async #retire(jobId: string): Promise<void> {
    const runner = this.#runners.get(jobId);
    if (runner === undefined) return;
    this.#runners.delete(jobId);
    this.metrics.activeJobs.dec({ api_name: runner.spec.api_name });
    const pool = this.#pools.get(runner.spec.api_name);
    pool?.broadcast({ type: 'abort', jobId });
    await runner.stop('abort');
    pool?.broadcast({ type: 'ended', jobId });
    await this.#stats.flush(jobId);
    this.#stats.forget(jobId);
  }

  #completionDeps(): CompletionDeps {
    return {
      ctx: this.#ctx,
      daemonId: this.id,
      log: this.log,
      leaseMs: this.#leaseMs,
      poolFor: (api) => this.#pools.get(api),
      flushStats: (jobId) => this.#stats.flush(jobId),
    };
  }

  async #checkSoon(jobId: string): Promise<void> {
    await new Promise((r) => setTimeout(r, 50));
    await this.#check(jobId);
  }

  async #check(jobId: string): Promise<void> {
    const record = this.#active.get(jobId);
    if (record === undefined || this.#checking.has(jobId) || this.#draining) return;
    this.#checking.add(jobId);
    try {
      await checkJob(this.#completionDeps(), record);
    } catch (err) {
      this.log.warn({ err, job_id: jobId }, 'job check failed');
    } finally {
      this.#checking.delete(jobId);
    }
  }

  async #sweep(): Promise<void> {
    for (const jobId of [...this.#active.keys()]) {
      const runner = this.#runners.get(jobId);
      if (runner !== undefined && runner.inFlight > 0 && this.#active.get(jobId)?.timeout === null) continue;
      await this.#check(jobId);
    }
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
    for (const t of this.#timers) clearInterval(t);
    const errors: unknown[] = [];
    const step = async (fn: () => Promise<unknown>): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        errors.push(err);
      }
    };
    for (const s of this.#subs) await step(async () => s.unsubscribe());
    await Promise.all([...this.#runners.values()].map((r) => step(() => r.stop('release', this.options.shutdownGraceMs))));
    this.#runners.clear();
    await step(() => this.#stats.flush());
    await Promise.all([...this.#pools.values()].map((p) => step(() => p.close())));
    if (this.#http !== undefined) {
      const http = this.#http;
      await step(() => new Promise<void>((resolve) => { http.close(() => resolve()); http.closeAllConnections(); }));
    }
    await step(() => withTimeout(this.#nc.drain(), 5000).catch(() => this.#nc.close()));
    if (errors.length > 0) this.log.warn({ errors: errors.map(String) }, 'shutdown finished with errors');
    this.log.info('daemon stopped');
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms).unref())]);
}
