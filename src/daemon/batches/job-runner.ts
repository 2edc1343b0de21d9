/**
 * Runs one job on this daemon: its Puller pulls batches from the job's durable consumer while the API's pool has
 * room; the runner hands them to the worker threads in tasks (grouping.ts), enforces timeouts and stop, and hands
 * every ended batch to its Settler. It owns its job's part of the lifecycle on this daemon (marking it running,
 * reporting a handler that cannot run) and its lease extensions; it emits `idle` when no batch of the job is in
 * flight here any more (the job may be done) and `fatal` when the handler cannot be loaded or constructed.
 * Many runners share one pool through its Slots.
 */
import { EventEmitter } from 'node:events';
import type { JsMsg } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { ErrorCodes } from '../../errors.js';
import type { FleetContext } from '../../fleet/context.js';
import { markRunning } from '../../fleet/lifecycle.js';
import { encodeValue } from '../../fleet/protocol.js';
import type { ErrorInfo, JobRecord, JobSpec } from '../../types.js';
import { sleep } from '../../util/sleep.js';
import { Waiters } from '../../util/waiters.js';
import type { Outcome } from '../../worker/thread-protocol.js';
import { jobSpecOf } from '../job-spec.js';
import type { ApiPool } from '../pools/pool.js';
import { identify } from './batch-headers.js';
import { SINGLES_AFTER_CRASH, splitBurst } from './grouping.js';
import { Puller } from './puller.js';
import { localCap } from './share.js';
import type { Claimant } from '../pools/slots.js';
import type { Ending } from './decision.js';
import { handBack, Settler, type Delivered } from './settle.js';
import { OutputWriter } from './output-writer.js';
import type { StoreDeps } from '../../stores/index.js';
import { batchesTask, type Identified } from './task.js';
import { dropBody } from './body.js';
import { TaskRun } from './task-run.js';
import type { BatchSink } from './sink.js';

export interface RunnerDeps {
  ctx: FleetContext;
  pool: ApiPool;
  record: JobRecord;
  log: Logger;
  /** JetStream ack wait of job consumers, in ms; in-flight batches are marked working well within it. */
  leaseMs: number;
  sink: BatchSink;
  /** Lanes the live fleet offers for the job's API (FleetView), for the job's share on this daemon. */
  fleetLanes(): number;
  /** What the store of the job's `output` needs (the NATS connection, the config's `s3` section). */
  storeDeps: StoreDeps;
}

export interface RunnerEvents {
  /** No batch of the job is in flight on this daemon any more (worth a completion check). */
  idle: [];
  /** The handler could not be loaded or constructed: the job must end as worker_error. */
  fatal: [error: ErrorInfo];
}

interface InFlight extends Delivered {
  /** Key in #inflight: the batch id, or `seq-<stream seq>` for a batch without one. */
  key: string;
  /** Set when the batch is handed to a task. */
  run: TaskRun | undefined;
}

export class JobRunner extends EventEmitter<RunnerEvents> {
  readonly jobId: string;
  readonly spec: JobSpec;
  readonly #deps: RunnerDeps;
  readonly #pool: ApiPool;
  readonly #log: Logger;
  readonly #settler: Settler;
  /** Writes the results of a job with an `output`; undefined for the others (they store to the results stream). */
  readonly #output: OutputWriter | undefined;
  readonly #inflight = new Map<string, InFlight>();
  readonly #stop = new AbortController();
  /** Aborted when the job ended or was stopped: its pulls end at once (Puller deps.cancelled). */
  readonly #cancel = new AbortController();
  #loop: Promise<void> | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #started = false;
  /** Woken whenever a batch of the job settles here. */
  readonly #settled = new Waiters();
  /** Batches received in the current burst, not yet handed to a task. */
  #burst: InFlight[] = [];
  #burstRedelivered = 0;
  #flushScheduled = false;
  /** The JobSpec as the worker threads get it (encoded once; see BatchesTask.job). */
  readonly #jobBytes: Uint8Array;
  #singles = 0;
  #fatal = false;
  #unfollow: (() => void) | undefined;
  readonly #claimant: Claimant;
  #paused: boolean;
  readonly #resumed = new Waiters();
  /** Tasks of the job whose handleBatch has started and that have not ended: batches running now. */
  #running = 0;

  constructor(deps: RunnerDeps) {
    super();
    const { pool, record } = deps;
    this.#deps = deps;
    this.#pool = pool;
    this.#log = deps.log;
    this.jobId = record.job_id;
    this.spec = jobSpecOf(record, pool.api);
    this.#jobBytes = encodeValue(this.spec);
    this.#started = record.status === 'running';
    this.#claimant = pool.slots.claimant(record.priority ?? 0);
    this.#paused = record.paused_at != null;
    this.#output = record.output == null ? undefined : new OutputWriter(record.output, deps.storeDeps);
    this.#settler = new Settler({
      ctx: deps.ctx,
      log: deps.log,
      jobId: this.jobId,
      apiName: this.spec.api_name,
      limits: { maxAttempts: this.spec.max_attempts, backoff: { ...pool.api.backoff, ...(record.backoff ?? {}) } },
      sink: deps.sink,
      output: this.#output,
      onFatal: (error) => this.#failFatally(error),
    });
  }

  /**
   * The job's newer record: batches may start while the publisher is still enqueuing; it runs once `pending`. A pause
   * stops the pulling at once; a resume restarts it.
   */
  observe(record: JobRecord): void {
    if (record.status === 'pending' && this.#started) this.#markRunning();
    this.#claimant.priority = record.priority ?? 0;
    const paused = record.paused_at != null;
    if (paused === this.#paused) return;
    this.#paused = paused;
    this.#log.info({ job_id: this.jobId, paused }, paused ? 'job paused' : 'job resumed');
    if (!paused) this.#resumed.wake();
  }

  get inFlight(): number {
    return this.#inflight.size;
  }

  /** Batches of the job inside handleBatch on this daemon now. */
  get running(): number {
    return this.#running;
  }

  start(): void {
    const d = this.#deps;
    const puller = new Puller({
      ctx: d.ctx,
      record: d.record,
      leaseMs: d.leaseMs,
      slots: this.#pool.slots,
      claimant: this.#claimant,
      cap: () => localCap(this.spec.workers, this.#pool.slots.lanes, d.fleetLanes()),
      paused: () => this.#paused,
      whenResumed: (signal) => (this.#paused ? this.#resumed.wait(signal) : Promise.resolve()),
      log: this.#log,
      inFlight: () => this.#inflight.size,
      whenOneSettles: (signal) => this.#settled.wait(signal),
      dispatch: (msg, bytes) => this.#dispatch(msg, bytes),
      cancelled: this.#cancel.signal,
    });
    this.#unfollow = this.#pool.follow(this.jobId, (batchId, started) => this.#extendLease(batchId, started));
    this.#loop ??= puller.run(this.#stop.signal).catch((err: unknown) => this.#log.error({ err, job_id: this.jobId }, 'job runner failed'));
    this.#heartbeat = setInterval(() => {
      for (const f of this.#inflight.values()) f.msg.working();
    }, Math.max(250, Math.floor(d.leaseMs / 3)));
    this.#heartbeat.unref();
  }

  /**
   * Restarts a batch's timeout from now (handleBatch `started`, or ctx.extendLease()). ctx.extendLease() also restarts
   * its NATS lease (+WPI). A start does not: the heartbeat marks every batch in flight here in progress every lease/3,
   * from its delivery on, so its lease cannot lapse; one +WPI per task started was one more message per batch for the
   * server and this thread when batches come one at a time.
   */
  #extendLease(batchId: string, started: boolean): void {
    const f = this.#inflight.get(batchId);
    if (f?.run === undefined) return;
    if (!started) f.msg.working();
    if (f.run.extend()) this.#running++;
  }

  /**
   * Stops pulling. `abort` aborts in-flight batches (job stopped or ended: nothing is settled); `release` waits up
   * to `graceMs` for them, then aborts the rest and hands them back for immediate redelivery (shutdown).
   */
  async stop(mode: 'abort' | 'release', graceMs = 0): Promise<void> {
    this.#stop.abort();
    if (mode === 'abort') this.#cancel.abort();
    if (mode === 'abort') for (const f of this.#inflight.values()) f.run?.abort('stopped');
    if (this.#inflight.size > 0 && mode === 'release') {
      // The grace timer is cancelled when the batches drain first: a pending timer would keep the process alive.
      const grace = new AbortController();
      await Promise.race([this.#whenDrained(), sleep(graceMs, grace.signal)]);
      grace.abort();
      for (const f of this.#inflight.values()) f.run?.abort('shutdown');
    }
    await this.#whenDrained();
    await this.#loop;
    clearInterval(this.#heartbeat);
    this.#unfollow?.();
    this.#pool.slots.leave(this.#claimant);
    await this.#output?.close().catch((err: unknown) => this.#log.warn({ err, job_id: this.jobId }, 'closing the output store failed'));
  }

  /** The job ended or was stopped: abort its batches on the threads, stop, and let the threads drop its handler. */
  async retire(): Promise<void> {
    this.#pool.broadcast({ type: 'abort', jobId: this.jobId });
    await this.stop('abort');
    this.#pool.broadcast({ type: 'ended', jobId: this.jobId });
  }

  #markRunning(): void {
    void markRunning(this.#deps.ctx, this.jobId).catch(() => undefined);
  }

  /** Reported once per runner; the daemon ends the job. */
  #failFatally(error: ErrorInfo): void {
    if (this.#fatal) return;
    this.#fatal = true;
    this.emit('fatal', error);
  }

  async #whenDrained(): Promise<void> {
    while (this.#inflight.size > 0) await this.#settled.wait();
  }

  #dispatch(msg: JsMsg, bytes: number): void {
    if (!this.#started) {
      this.#started = true;
      this.#markRunning();
    }
    const id = identify(msg, this.spec.api_name, this.jobId);
    const key = id?.batchId ?? `seq-${msg.seq}`;
    const earlier = this.#inflight.get(key);
    if (earlier !== undefined && earlier.settled !== true) {
      // A redelivery of a batch still running here (its lease lapsed): keep the running attempt.
      this.#pool.slots.release(1);
      return;
    }
    const attempt = msg.info.deliveryCount;
    if (attempt > 1) this.#burstRedelivered++;
    const f: InFlight = { msg, bytes, key, id, attempt, run: undefined };
    this.#inflight.set(key, f);
    // Messages of one pull arrive together: collect them and hand them out once the burst is in. With a thread free,
    // that is as soon as the messages already read are in (after the current microtasks): waiting for the event
    // loop's check phase held a lone batch ~70 µs (p50) between its receipt and its task (handler-start latency). With every
    // thread busy, nothing is lost by waiting there, and the next read's messages may join the burst.
    this.#burst.push(f);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      if (this.#pool.threadFree) process.nextTick(() => this.#flush());
      else setImmediate(() => this.#flush());
    }
  }

  /**
   * Splits the burst over the pool's lanes (threads × concurrency): a burst no larger than the lanes goes out one batch per task;
   * a backlog goes out in groups, so one task (and one main-thread dispatch) serves several batches; a large batch
   * goes alone (grouping.ts).
   */
  #flush(): void {
    this.#flushScheduled = false;
    const burst = this.#burst;
    this.#burst = [];
    this.#deps.sink.dispatched(burst.length, this.#burstRedelivered);
    this.#burstRedelivered = 0;
    if (this.#stop.signal.aborted) {
      // Stopped between receiving and dispatching: start nothing, hand the batches back.
      for (const f of burst) {
        handBack(f.msg);
        this.#inflight.delete(f.key);
      }
      this.#pool.slots.release(burst.length);
      this.#deps.sink.finished(burst.length);
      this.#settled.wake();
      return;
    }
    for (const group of splitBurst(burst, this.#pool.api.threads * this.#pool.api.concurrency, this.#singles > 0)) this.#start(group);
  }

  /** Runs `group` as one task; when it has settled, its batches leave and their slots are freed. */
  #start(group: InFlight[]): void {
    if (this.#singles > 0) this.#singles--;
    const run = new TaskRun(group.length, this.spec.batch_timeout, this.#pool.api.initTimeoutMs);
    for (const f of group) f.run = run;
    void this.#process(group, run)
      // Not expected (settlement catches its own failures): the batches stay queued and are redelivered after the lease.
      .catch((err: unknown) => this.#log.error({ err, job_id: this.jobId }, 'running a task failed'))
      .finally(() => {
        if (run.finish()) this.#running--;
        // A batch NAKed for a retry may be back already, under the same key: only this delivery leaves.
        for (const f of group) if (this.#inflight.get(f.key) === f) this.#inflight.delete(f.key);
        this.#pool.slots.release(group.length);
        this.#deps.sink.finished(group.length);
        if (this.#inflight.size === 0 && !this.#stop.signal.aborted) this.emit('idle');
        this.#settled.wake();
      });
  }

  /** Runs a group as one task and settles every batch of it. */
  async #process(group: InFlight[], run: TaskRun): Promise<void> {
    const endings = new Array<Ending | undefined>(group.length);
    const runnable: Array<InFlight & Identified> = [];
    const at: number[] = [];
    group.forEach((f, i) => {
      if (isIdentified(f)) {
        runnable.push(f);
        at.push(i);
        return;
      }
      const outcome: Outcome = { ok: false, durationMs: 0, stage: 'decode', error: { name: 'TypeError', code: ErrorCodes.UNDECODABLE, message: 'batch message lacks the Jetbatch-Batch-Id header', permanent: true } };
      endings[i] = { outcome, attempt: f.attempt, sharedDeath: false };
    });
    if (runnable.length > 0) {
      const task = batchesTask(this.jobId, this.#jobBytes, runnable, this.spec.batch_timeout * 1000);
      // Copied or moved for the thread: a large body need not stay alive on this thread until the task ends (body.ts).
      for (const f of runnable) if (dropBody(f.msg, f.bytes)) f.bodyDropped = true;
      const result = await this.#pool.runBatches(task, this.#claimant.priority, run.signal, () => run.reason);
      for (const o of Array.isArray(result) ? result : [result]) this.#pool.slots.observe(this.#claimant, o.durationMs);
      const sharedDeath = !Array.isArray(result) && runnable.length > 1;
      if (sharedDeath) {
        // The thread died or was terminated with several batches on it: which one is to blame is unknown, so none
        // is charged. They go back to the queue at once and run one per task for a while.
        this.#singles = SINGLES_AFTER_CRASH;
        this.#log.warn({ job_id: this.jobId, batches: runnable.length, error: result.ok ? undefined : result.error }, 'a grouped task died; its batches are handed back and run singly');
      }
      runnable.forEach((f, k) => {
        endings[at[k]!] = { outcome: Array.isArray(result) ? result[k]! : result, attempt: f.attempt, sharedDeath };
      });
    }
    await this.#settler.settle(group, endings, () => (run.signal.aborted ? run.reason : null));
  }
}

function isIdentified(f: InFlight): f is InFlight & Identified {
  return f.id !== null;
}
