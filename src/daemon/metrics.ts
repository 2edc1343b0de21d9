/**
 * Prometheus metrics of one daemon. Labels are bounded: api_name (from the config), outcome and status (fixed
 * vocabularies); never job or batch ids. docs/operations.md explains each metric.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ErrorCodes } from '../errors.js';
import type { Outcome } from '../worker/thread-protocol.js';

/** One API's pool as seen at scrape time. */
export interface PoolFigures {
  api: string;
  utilization: number;
  threads: number;
  capacity: number;
  used: number;
}

/** Live figures read at scrape time. */
export interface MetricsSource {
  pools(): PoolFigures[];
  /** Batches queued in JetStream per API (all jobs, all daemons), as last polled; absent when unknown. */
  queueDepth(): Map<string, number>;
  ready(): boolean;
  /** Status of every job of this daemon's APIs known from the registry. */
  jobStatuses(): Array<{ api: string; status: string }>;
  /** Batches inside handleBatch on this daemon now, per API. */
  running(): Map<string, number>;
}

interface HotChildren {
  duration: { observe(value: number): void };
  succeeded: { inc(value?: number): void };
  inFlight: { inc(value?: number): void; dec(value?: number): void };
}

export class DaemonMetrics {
  readonly registry = new Registry();
  /** Options of a metric with one series per API, in this registry. */
  readonly #perApi = { labelNames: ['api_name'] as const, registers: [this.registry] };
  readonly batches = new Counter({
    name: 'jetbatch_batches_total',
    help: 'Batch attempts by outcome: succeeded, retried (failed, will be retried), dead_lettered.',
    labelNames: ['api_name', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'jetbatch_batch_duration_seconds',
    help: 'Wall time of handleBatch attempts, in seconds.',
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800],
    ...this.#perApi,
  });
  readonly inFlight = new Gauge({
    name: 'jetbatch_batches_in_flight',
    help: 'Batches pulled by this daemon and not yet settled.',
    ...this.#perApi,
  });
  readonly timeouts = new Counter({
    name: 'jetbatch_batch_timeouts_total',
    help: 'Batch attempts aborted at their batch timeout.',
    ...this.#perApi,
  });
  readonly redeliveries = new Counter({
    name: 'jetbatch_redeliveries_total',
    help: 'Batches received with a delivery count above 1.',
    ...this.#perApi,
  });
  readonly workerDeaths = new Counter({
    name: 'jetbatch_worker_restarts_total',
    help: 'Worker threads, or Python handler processes, that died or were terminated and replaced, by reason: crash, oom, timeout, aborted (stop/shutdown).',
    labelNames: ['api_name', 'reason'] as const,
    registers: [this.registry],
  });
  readonly activeJobs = new Gauge({
    name: 'jetbatch_jobs_active',
    help: 'Jobs this daemon is currently running.',
    ...this.#perApi,
  });
  readonly handlerInit = new Histogram({
    name: 'jetbatch_handler_init_seconds',
    help: 'Time the handler constructor took (once per worker thread per job), in seconds.',
    buckets: [0.001, 0.01, 0.1, 0.5, 1, 5, 15, 60, 300],
    ...this.#perApi,
  });
  readonly natsConnected = new Gauge({
    name: 'jetbatch_nats_connected',
    help: '1 while connected to NATS, else 0.',
    registers: [this.registry],
  });
  readonly natsReconnects = new Counter({
    name: 'jetbatch_nats_reconnects_total',
    help: 'Reconnections to NATS.',
    registers: [this.registry],
  });

  /**
   * `processMetrics`: also collect prom-client's default process and Node.js metrics. Only when they can be read
   * (`metrics.enabled`): their event-loop lag monitor alone wakes the main thread every 10 ms, and every garbage
   * collection is reported to JavaScript.
   */
  constructor(source: MetricsSource, { processMetrics = true }: { processMetrics?: boolean } = {}) {
    if (processMetrics) collectDefaultMetrics({ register: this.registry });
    // Pool gauges: one series per API, read from source.pools() at scrape time.
    const perPool = (value: (p: PoolFigures) => number) => ({
      ...this.#perApi,
      collect(this: Gauge<'api_name'>) {
        for (const p of source.pools()) this.set({ api_name: p.api }, value(p));
      },
    });
    new Gauge({
      name: 'jetbatch_pool_utilization',
      help: 'Share of the pool threads’ time spent running tasks, 0–1 (Piscina utilization).',
      ...perPool((p) => p.utilization),
    });
    new Gauge({ name: 'jetbatch_pool_threads', help: 'Worker threads of the API’s pool that have loaded their task loop.', ...perPool((p) => p.threads) });
    new Gauge({
      name: 'jetbatch_pool_slots_used',
      help: 'Batches reserved or running in the API’s pool, out of jetbatch_pool_slots.',
      ...perPool((p) => p.used),
    });
    new Gauge({
      name: 'jetbatch_pool_slots',
      help: 'Batches the API’s pool takes at once: threads × concurrency plus a prefetch sized to about 50 ms of queued work (none for batches longer than that, at most 512).',
      ...perPool((p) => p.capacity),
    });
    new Gauge({
      name: 'jetbatch_queue_depth',
      help: 'Batches waiting or in flight in JetStream for the API, fleet-wide (all jobs).',
      ...this.#perApi,
      collect() {
        this.reset();
        for (const [api, n] of source.queueDepth()) this.set({ api_name: api }, n);
      },
    });
    new Gauge({
      name: 'jetbatch_job_running_batches',
      help: 'Batches inside handleBatch on this daemon now (all jobs of the API); sum over daemons for the fleet.',
      ...this.#perApi,
      collect() {
        for (const p of source.pools()) this.set({ api_name: p.api }, 0);
        for (const [api, n] of source.running()) this.set({ api_name: api }, n);
      },
    });
    new Gauge({
      name: 'jetbatch_ready',
      help: '1 when /readyz would answer 200 (connected to NATS, pools up, not draining), else 0.',
      registers: [this.registry],
      collect() {
        this.set(source.ready() ? 1 : 0);
      },
    });
    new Gauge({
      name: 'jetbatch_jobs',
      help: 'Jobs of this daemon’s APIs in the registry, by status.',
      labelNames: ['api_name', 'status'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const j of source.jobStatuses()) this.inc({ api_name: j.api, status: j.status });
      },
    });
  }

  /** Creates every labelled series of an API at 0, so rate() and increase() see the first events. */
  initApi(api: string): void {
    for (const outcome of ['succeeded', 'retried', 'dead_lettered']) this.batches.inc({ api_name: api, outcome }, 0);
    for (const reason of ['crash', 'oom', 'timeout', 'aborted']) this.workerDeaths.inc({ api_name: api, reason }, 0);
    this.timeouts.inc({ api_name: api }, 0);
    this.redeliveries.inc({ api_name: api }, 0);
    this.inFlight.inc({ api_name: api }, 0);
  }

  /** Label-bound children per API, so the hot path does not hash a label set per batch. */
  readonly #hot = new Map<string, HotChildren>();

  #hotFor(api: string): HotChildren {
    let h = this.#hot.get(api);
    if (h === undefined) {
      h = { duration: this.duration.labels(api), succeeded: this.batches.labels(api, 'succeeded'), inFlight: this.inFlight.labels(api) };
      this.#hot.set(api, h);
    }
    return h;
  }

  /** Batches pulled (`n`, of which `redelivered` were redeliveries) or finished (negative `n`). */
  inFlightBy(api: string, n: number, redelivered = 0): void {
    const h = this.#hotFor(api);
    if (n > 0) h.inFlight.inc(n);
    else if (n < 0) h.inFlight.dec(-n);
    if (redelivered > 0) this.redeliveries.inc({ api_name: api }, redelivered);
  }

  /** Accounts for batch attempts that succeeded and were acked (the hot path: once per task, not per batch). */
  acked(api: string, outcomes: readonly Outcome[]): void {
    const h = this.#hotFor(api);
    for (const o of outcomes) {
      if (o.initMs !== undefined) this.handlerInit.observe({ api_name: api }, o.initMs / 1000);
      h.duration.observe(o.durationMs / 1000);
    }
    h.succeeded.inc(outcomes.length);
  }

  /** Accounts for a batch attempt that was not acked: retried, dead-lettered or released. */
  settled(api: string, outcome: Outcome, decision: 'retried' | 'dead-lettered' | 'released'): void {
    const labels = { api_name: api };
    if (outcome.initMs !== undefined) this.handlerInit.observe(labels, outcome.initMs / 1000);
    if (outcome.terminated !== undefined) this.workerDeaths.inc({ api_name: api, reason: outcome.terminated });
    if (decision === 'released') return;
    this.duration.observe(labels, outcome.durationMs / 1000);
    this.batches.inc({ api_name: api, outcome: decision === 'retried' ? 'retried' : 'dead_lettered' });
    if (!outcome.ok && outcome.error.code === ErrorCodes.BATCH_TIMEOUT) this.timeouts.inc(labels);
  }
}
