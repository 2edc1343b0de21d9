/**
 * The job runners of this daemon, one per active job of its APIs: started when a job is active and its pool is
 * ready, retired when it ends, released (in-flight batches get a grace, the rest go back) on reload and shutdown.
 * A job whose handler cannot be loaded or constructed here is ended as worker_error, once. Emits `idle` (job id)
 * when a runner has no batch in flight any more.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { ErrorCodes, toErrorInfo } from '../errors.js';
import type { FleetContext } from '../fleet/context.js';
import { endJob } from '../fleet/lifecycle.js';
import type { ErrorInfo, JobRecord } from '../types.js';
import { JobRunner } from './batches/job-runner.js';
import type { BatchSink } from './batches/sink.js';
import type { DaemonMetrics } from './metrics.js';
import type { ApiHost } from './pools/api-host.js';
import type { ApiPool } from './pools/pool.js';
import type { TimingStats } from './stats.js';
import type { StoreDeps } from '../stores/index.js';

export interface RunnersDeps {
  ctx: FleetContext;
  host: ApiHost;
  log: Logger;
  leaseMs: number;
  metrics: DaemonMetrics;
  stats: TimingStats;
  /** Whether the job is (still) to run here: an active job of ours and the daemon not shutting down. */
  isActive(jobId: string): boolean;
  /** Lanes the live fleet offers for an API (FleetView). */
  fleetLanes(api: string): number;
  /** What the stores of jobs' outputs need (the NATS connection, the config's `s3` section). */
  storeDeps: StoreDeps;
}

export class Runners extends EventEmitter<{ idle: [jobId: string] }> {
  readonly #deps: RunnersDeps;
  readonly #runners = new Map<string, JobRunner>();
  readonly #starting = new Set<string>();
  /** Jobs this daemon ended as worker_error (never restarted here). */
  readonly #failed = new Set<string>();
  #closed = false;

  constructor(deps: RunnersDeps) {
    super();
    this.#deps = deps;
  }

  has(jobId: string): boolean {
    return this.#runners.has(jobId);
  }

  /** Batches of the job in flight on this daemon. */
  inFlight(jobId: string): number {
    return this.#runners.get(jobId)?.inFlight ?? 0;
  }

  /** Batches inside handleBatch now, per job (jobs with none are left out). */
  runningByJob(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.#runners.values()) if (r.running > 0) out[r.jobId] = r.running;
    return out;
  }

  /** Batches inside handleBatch now, per API. */
  runningByApi(): Map<string, number> {
    const out = new Map<string, number>();
    for (const r of this.#runners.values()) out.set(r.spec.api_name, (out.get(r.spec.api_name) ?? 0) + r.running);
    return out;
  }

  /** A job of ours is active (new or changed record): run it here unless it already runs or failed here. */
  ensure(record: JobRecord): void {
    const runner = this.#runners.get(record.job_id);
    if (runner !== undefined) runner.observe(record);
    else if (!this.#failed.has(record.job_id)) void this.#start(record).catch((err: unknown) => this.#fail(record.job_id, record.api_name, cannotRun(err)));
  }

  /** Stops and forgets the job's runner (aborting its in-flight batches) and drops its handler instances. */
  async retire(jobId: string): Promise<void> {
    const runner = this.#runners.get(jobId);
    if (runner === undefined) {
      this.#deps.host.release(jobId);
      return;
    }
    this.#forget(runner);
    await runner.retire();
    this.#deps.host.release(jobId);
    await this.#deps.stats.flush(jobId);
    this.#deps.stats.forget(jobId);
  }

  /**
   * Stops the runners of `apis` (all when omitted): they stop pulling, their in-flight batches get `graceMs` to
   * finish and the rest are handed back for redelivery. With no `apis`, no runner starts any more (shutdown).
   */
  async release(graceMs: number, apis?: ReadonlySet<string>): Promise<void> {
    if (apis === undefined) this.#closed = true;
    const stopping = [...this.#runners.values()].filter((r) => apis === undefined || apis.has(r.spec.api_name));
    await Promise.all(
      stopping.map(async (r) => {
        this.#forget(r);
        await r.stop('release', graceMs);
        this.#deps.host.release(r.jobId);
      }),
    );
  }

  async #start(record: JobRecord): Promise<void> {
    const { job_id: jobId, api_name: api } = record;
    if (this.#starting.has(jobId) || this.#runners.has(jobId) || this.#closed || !this.#deps.isActive(jobId)) return;
    this.#starting.add(jobId);
    let pool: ApiPool;
    try {
      pool = await this.#deps.host.poolFor(record);
    } catch (err) {
      this.#fail(jobId, api, toErrorInfo(err, ErrorCodes.HANDLER_LOAD_FAILED));
      return;
    } finally {
      this.#starting.delete(jobId);
    }
    if (this.#closed || !this.#deps.isActive(jobId)) {
      this.#deps.host.release(jobId);
      return;
    }
    const d = this.#deps;
    const runner = new JobRunner({
      ctx: d.ctx,
      pool,
      record,
      log: d.log,
      leaseMs: d.leaseMs,
      sink: fleetSink(d.metrics, d.stats, api, jobId),
      fleetLanes: () => d.fleetLanes(api),
      storeDeps: d.storeDeps,
    });
    runner.on('idle', () => this.emit('idle', jobId));
    runner.on('fatal', (error) => this.#fail(jobId, api, error));
    this.#runners.set(jobId, runner);
    d.metrics.activeJobs.inc({ api_name: api });
    runner.start();
    d.log.info({ job_id: jobId, api_name: api, status: record.status }, 'job picked up');
  }

  #forget(runner: JobRunner): void {
    this.#runners.delete(runner.jobId);
    this.#deps.metrics.activeJobs.dec({ api_name: runner.spec.api_name });
  }

  /** The handler cannot be loaded or constructed here: the job ends as worker_error (once per job). */
  #fail(jobId: string, api: string, error: ErrorInfo): void {
    if (this.#failed.has(jobId)) return;
    this.#failed.add(jobId);
    const log = this.#deps.log;
    log.error({ job_id: jobId, api_name: api, error }, 'handler failed to load or construct; failing the job');
    void endJob(this.#deps.ctx, jobId, 'worker_error', error).catch((err: unknown) => log.error({ err, job_id: jobId }, 'failing the job failed'));
  }
}

/** The runner's measurements, bound to its API and job: Prometheus (metrics.ts) and the fleet-wide timing stats. */
export function fleetSink(metrics: DaemonMetrics, stats: TimingStats, api: string, jobId: string): BatchSink {
  return {
    dispatched: (n, redelivered) => metrics.inFlightBy(api, n, redelivered),
    finished: (n) => metrics.inFlightBy(api, -n),
    acked: (outcomes) => {
      metrics.acked(api, outcomes);
      for (const o of outcomes) stats.record(jobId, o.durationMs);
    },
    settled: (outcome, how) => metrics.settled(api, outcome, how),
  };
}

/** An unexpected error starting a job's runner: the job cannot run here. */
function cannotRun(err: unknown): ErrorInfo {
  const info = toErrorInfo(err);
  return { ...info, message: `the job cannot run: ${info.message}` };
}
