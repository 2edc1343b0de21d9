/**
 * Runs one job on this daemon: its Puller pulls batches from the job's durable consumer while the API's pool has
 * room; the runner hands them to the worker threads in tasks, enforces timeouts and stop, and settles each batch.
 * Many runners share one pool through its Slots.
 */
import type { JsMsg } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { FleetContext } from '../../fleet/context.js';
import { ErrorCodes } from '../../errors.js';
import { encodeValue, maxBodyBytes } from '../../fleet/protocol.js';
import type { BatchesTask, Outcome } from '../../worker/thread-protocol.js';
import type { BackoffOptions, ErrorInfo, JobRecord, JobSpec } from '../../types.js';
import { jobSpecOf } from '../job-spec.js';
import type { AbortReason, ApiPool } from '../pools/pool.js';
import { groupSize, SINGLES_AFTER_CRASH } from './grouping.js';
import { Puller } from './puller.js';
import { deadLetter, decideFailure, identify, storeResult, type BatchIdentity } from './settle.js';
import { toErrorInfo } from '../../errors.js';
import { sleep } from '../../util/sleep.js';

export interface RunnerHooks {
  log: Logger;
  /** JetStream ack wait of job consumers, in ms; in-flight batches are marked working well within it. */
  leaseMs: number;
  onStarted(jobId: string): void;
  /** `n` batches were pulled, `redelivered` of them with a delivery count above 1; each is later counted by onFinished. */
  onDispatched(jobId: string, n: number, redelivered: number): void;
  onFinished(jobId: string, n: number): void;
  /** Batch attempts that succeeded and were acked (reported once per task on the hot path). */
  onAcked(jobId: string, outcomes: readonly Outcome[]): void;
  /** Any other settlement: retried, dead-lettered, or released (handed back without being charged). */
  onSettled(jobId: string, outcome: Outcome, decision: 'retried' | 'dead-lettered' | 'released'): void;
  /** No batch of the job is in flight on this daemon any more (the job may be done: worth a completion check). */
  onIdle(jobId: string): void;
  /** The handler could not be loaded or constructed: the job must end as worker_error. */
  onFatal(jobId: string, error: ErrorInfo): void;
}

/** One Piscina task: a single batch, or several batches of a burst run back to back on one thread. */
interface Run {
  ac: AbortController;
  reason: AbortReason;
  timer: NodeJS.Timeout | undefined;
  deadline: number;
  size: number;
}

interface InFlight {
  msg: JsMsg;
  /** Key in #inflight: the batch id, or `seq-<stream seq>` for a batch without one. */
  key: string;
  id: BatchIdentity | null;
  attempt: number;
  /** Set when the batch is handed to a task. */
  run: Run | undefined;
}


export class JobRunner {
  readonly jobId: string;
  readonly spec: JobSpec;
  readonly #ctx: FleetContext;
  readonly #pool: ApiPool;
  readonly #hooks: RunnerHooks;
  readonly #record: JobRecord;
  readonly #backoff: BackoffOptions;
  readonly #inflight = new Map<string, InFlight>();
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #started = false;
  #drained: Array<() => void> = [];
  /** Batches received in the current burst, not yet handed to a task. */
  #burst: InFlight[] = [];
  #burstRedelivered = 0;
  #flushScheduled = false;
  /** The JobSpec as the worker threads get it (encoded once; see BatchesTask.job). */
  readonly #jobBytes: Uint8Array;
  #singles = 0;

  constructor(ctx: FleetContext, pool: ApiPool, record: JobRecord, hooks: RunnerHooks) {
    this.#ctx = ctx;
    this.#pool = pool;
    this.#record = record;
    this.#hooks = hooks;
    this.jobId = record.job_id;
    this.spec = jobSpecOf(record, pool.api);
    this.#jobBytes = encodeValue(this.spec);
    this.#backoff = { ...pool.api.backoff, ...(record.backoff ?? {}) };
    this.#started = record.status === 'running';
  }

  get pool(): ApiPool {
    return this.#pool;
  }

  /** Whether this daemon has dispatched a batch of the job. */
  get started(): boolean {
    return this.#started;
  }

  get inFlight(): number {
    return this.#inflight.size;
  }

  start(): void {
    const puller = new Puller({
      ctx: this.#ctx,
      record: this.#record,
      leaseMs: this.#hooks.leaseMs,
      slots: this.#pool.slots,
      log: this.#hooks.log,
      inFlight: () => this.#inflight.size,
      whenOneSettles: (signal) => this.#whenOneSettles(signal),
      dispatch: (msg) => this.#dispatch(msg),
    });
    this.#loop ??= puller.run(this.#stop.signal).catch((err: unknown) => this.#hooks.log.error({ err, job_id: this.jobId }, 'job runner failed'));
    this.#heartbeat = setInterval(() => {
      for (const f of this.#inflight.values()) f.msg.working();
    }, Math.max(250, Math.floor(this.#hooks.leaseMs / 3)));
    this.#heartbeat.unref();
  }

  /** Restarts a batch's timeout from now (handleBatch started, or ctx.extendLease()). */
  extendLease(batchId: string): void {
    const f = this.#inflight.get(batchId);
    if (f?.run === undefined) return;
    f.msg.working();
    const run = f.run;
    clearTimeout(run.timer);
    run.deadline = Date.now() + this.spec.batch_timeout * 1000 * run.size;
    run.timer = this.#armTimeout(run);
  }

  /**
   * Stops pulling. `abort` aborts in-flight batches (job stopped or ended: nothing is settled); `release` waits up
   * to `graceMs` for them, then aborts the rest and hands them back for immediate redelivery (shutdown).
   */
  async stop(mode: 'abort' | 'release', graceMs = 0): Promise<void> {
    this.#stop.abort();
    if (mode === 'abort') for (const f of this.#inflight.values()) this.#abortRun(f, 'stopped');
    if (this.#inflight.size > 0 && mode === 'release') {
      // The grace timer is cancelled when the batches drain first: a pending timer would keep the process alive.
      const grace = new AbortController();
      await Promise.race([this.#whenDrained(), sleep(graceMs, grace.signal)]);
      grace.abort();
      for (const f of this.#inflight.values()) this.#abortRun(f, 'shutdown');
    }
    await this.#whenDrained();
    await this.#loop;
    clearInterval(this.#heartbeat);
  }

  #wakeDrained(): void {
    const waiters = this.#drained;
    this.#drained = [];
    for (const w of waiters) w();
  }

  async #whenDrained(): Promise<void> {
    while (this.#inflight.size > 0) await new Promise<void>((resolve) => this.#drained.push(resolve));
  }

  #abortRun(f: InFlight, reason: AbortReason): void {
    const run = f.run;
    if (run === undefined || run.ac.signal.aborted) return;
    run.reason = reason;
    clearTimeout(run.timer);
    run.ac.abort();
  }

  #whenOneSettles(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        signal.removeEventListener('abort', done);
        resolve();
      };
      this.#drained.push(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  #armTimeout(run: Run): NodeJS.Timeout {
    // ctx.signal aborts at the deadline; the thread is terminated after a short grace if the handler ignores it.
    const grace = Math.min(5000, Math.max(200, this.spec.batch_timeout * 100));
    const t = setTimeout(() => {
      if (run.ac.signal.aborted) return;
      run.reason = 'timeout';
      run.ac.abort();
    }, Math.max(0, run.deadline - Date.now()) + grace);
    t.unref();
    return t;
  }

  #dispatch(msg: JsMsg): void {
    if (!this.#started) {
      this.#started = true;
      this.#hooks.onStarted(this.jobId);
    }
    const id = identify(msg, this.spec.api_name, this.jobId);
    const key = id?.batchId ?? `seq-${msg.seq}`;
    if (this.#inflight.has(key)) {
      // A redelivery of a batch still running here (its lease lapsed): keep the running attempt.
      this.#pool.slots.release(1);
      return;
    }
    const attempt = msg.info.deliveryCount;
    if (attempt > 1) this.#burstRedelivered++;
    const f: InFlight = { msg, key, id, attempt, run: undefined };
    this.#inflight.set(key, f);
    // Messages of one pull arrive together: collect them and hand them out once the burst is in.
    this.#burst.push(f);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => this.#flush());
    }
  }

  /**
   * Splits the burst over the pool's threads: a burst no larger than the thread count goes out one batch per task;
   * a backlog goes out in groups, so one task (and one main-thread dispatch) serves several batches.
   */
  #flush(): void {
    this.#flushScheduled = false;
    const burst = this.#burst;
    this.#burst = [];
    this.#hooks.onDispatched(this.jobId, burst.length, this.#burstRedelivered);
    this.#burstRedelivered = 0;
    if (this.#stop.signal.aborted) {
      // Stopped between receiving and dispatching: start nothing, hand the batches back.
      for (const f of burst) {
        f.msg.nak();
        this.#inflight.delete(f.key);
      }
      this.#pool.slots.release(burst.length);
      this.#hooks.onFinished(this.jobId, burst.length);
      this.#wakeDrained();
      return;
    }
    const size = groupSize(burst.length, this.#pool.api.threads * this.#pool.api.concurrency, this.#singles > 0);
    for (let i = 0; i < burst.length; i += size) {
      const group = burst.slice(i, i + size);
      if (this.#singles > 0) this.#singles--;
      const run: Run = {
        ac: new AbortController(),
        reason: 'timeout',
        timer: undefined,
        // Until handleBatch starts, loading and constructing the handler get init_timeout too.
        deadline: Date.now() + this.#pool.api.initTimeoutMs + this.spec.batch_timeout * 1000 * group.length,
        size: group.length,
      };
      run.timer = this.#armTimeout(run);
      for (const f of group) f.run = run;
      void this.#process(group, run).finally(() => {
        clearTimeout(run.timer);
        for (const f of group) this.#inflight.delete(f.key);
        this.#pool.slots.release(group.length);
        this.#hooks.onFinished(this.jobId, group.length);
        if (this.#inflight.size === 0 && !this.#stop.signal.aborted) this.#hooks.onIdle(this.jobId);
        this.#wakeDrained();
      });
    }
  }

  /** Runs a group as one task and settles every batch of it. */
  async #process(group: InFlight[], run: Run): Promise<void> {
    const outcomes: Array<Outcome | undefined> = new Array<Outcome | undefined>(group.length);
    const runnable: number[] = [];
    const bodies: Uint8Array[] = [];
    let total = 0;
    for (let i = 0; i < group.length; i++) {
      const f = group[i]!;
      if (f.id === null) {
        outcomes[i] = { ok: false, durationMs: 0, stage: 'decode', error: { name: 'TypeError', code: ErrorCodes.UNDECODABLE, message: 'batch message lacks the Jetbatch-Batch-Id header', permanent: true } };
        continue;
      }
      const body = f.msg.data;
      runnable.push(i);
      bodies.push(body);
      total += body.byteLength;
    }
    if (runnable.length > 0) {
      // One buffer for the whole group, copied out of the connection's read buffer (DESIGN.md §6) and transferred.
      // Not zero-filled first (every byte is written below); allocUnsafeSlow owns its ArrayBuffer, unpooled.
      const data = new Uint8Array(Buffer.allocUnsafeSlow(total).buffer, 0, total);
      const ends: number[] = [];
      let offset = 0;
      for (const body of bodies) {
        data.set(body, offset);
        offset += body.byteLength;
        ends.push(offset);
      }
      const task: BatchesTask = {
        kind: 'batches',
        jobId: this.jobId,
        job: this.#jobBytes,
        batchIds: runnable.map((i) => group[i]!.id!.batchId),
        attempts: runnable.map((i) => group[i]!.attempt),
        data,
        ends,
        timeoutMs: this.spec.batch_timeout * 1000,
      };
      const result = await this.#pool.runBatches(task, run.ac.signal, () => run.reason);
      if (Array.isArray(result)) runnable.forEach((gi, k) => (outcomes[gi] = result[k]));
      else if (runnable.length === 1) outcomes[runnable[0]!] = result;
      else {
        // The thread died or was terminated with several batches on it: which one is to blame is unknown, so none
        // is charged. They go back to the queue at once and run one per task for a while.
        this.#singles = SINGLES_AFTER_CRASH;
        this.#hooks.log.warn({ job_id: this.jobId, batches: runnable.length, error: result.ok ? undefined : result.error }, 'a grouped task died; its batches are handed back and run singly');
        for (const i of runnable) {
          group[i]!.msg.nak();
          this.#hooks.onSettled(this.jobId, result, 'released');
        }
      }
    }
    // Plain successes are acked in one synchronous pass, so their acks leave in one socket write; the rest (a result
    // to store, a failure) are settled one by one.
    const acked: Outcome[] = [];
    const rest: number[] = [];
    const released = run.ac.signal.aborted && run.reason !== 'timeout';
    for (let i = 0; i < group.length; i++) {
      const o = outcomes[i];
      if (o === undefined) continue;
      if (o.ok && o.result === null && !released) {
        group[i]!.msg.ack();
        acked.push(o);
      } else rest.push(i);
    }
    if (acked.length > 0) this.#hooks.onAcked(this.jobId, acked);
    for (const i of rest) {
      const f = group[i]!;
      try {
        await this.#settle(f, run, outcomes[i]!);
      } catch (err) {
        // Unsettled: the batch stays in the queue and is redelivered after the lease; nothing is lost.
        this.#hooks.log.warn({ err, job_id: this.jobId, batch_id: f.id?.batchId }, 'settling a batch failed; it will be redelivered');
      }
    }
  }

  #maxResultBytes(): number {
    return maxBodyBytes(this.#ctx.nc);
  }

  async #settle(f: InFlight, run: Run, outcome: Outcome): Promise<void> {
    const msg = f.msg;
    const id = f.id;
    const attempt = f.attempt;
    if (run.ac.signal.aborted && run.reason !== 'timeout') {
      // Stopped job: its queue is purged by whoever stopped it. Shutdown: hand the batch back at once.
      if (run.reason === 'shutdown') msg.nak();
      this.#hooks.onSettled(this.jobId, outcome, 'released');
      return;
    }
    if (outcome.ok && outcome.result !== null && outcome.result.byteLength > this.#maxResultBytes()) {
      // It can never be stored: retrying would loop forever. Fail the batch for good with a clear reason.
      outcome = {
        ok: false,
        durationMs: outcome.durationMs,
        stage: 'result',
        error: { name: 'RangeError', code: ErrorCodes.PAYLOAD_TOO_LARGE, message: `handleBatch returned ${outcome.result.byteLength} bytes; a result may be at most ${this.#maxResultBytes()} (the NATS max_payload minus envelope room)`, permanent: true },
      };
    }
    if (outcome.ok) {
      if (outcome.result !== null && id !== null) await storeResult(this.#ctx, id, attempt, outcome.durationMs, outcome.result);
      msg.ack();
      this.#hooks.onAcked(this.jobId, [outcome]);
      return;
    }
    if (outcome.stage === 'init' || outcome.stage === 'load') {
      // Not the batch's fault: leave it queued (the job is about to end as worker_error and be purged).
      msg.nak();
      this.#hooks.onFatal(this.jobId, toErrorInfo(outcome.error));
      this.#hooks.onSettled(this.jobId, outcome, 'released');
      return;
    }
    const decision = decideFailure(outcome.error, attempt, this.spec.max_attempts, this.#backoff);
    const fields = { job_id: this.jobId, api_name: this.spec.api_name, batch_id: id?.batchId, attempt, error: toErrorInfo(outcome.error) };
    if (decision.action === 'retry') {
      this.#hooks.log.info({ ...fields, retry_in_ms: decision.delayMs }, 'batch attempt failed; retrying');
      msg.nak(decision.delayMs);
      this.#hooks.onSettled(this.jobId, outcome, 'retried');
      return;
    }
    await deadLetter(this.#ctx, msg, id, attempt, toErrorInfo(outcome.error));
    this.#hooks.log.warn(fields, 'batch dead-lettered');
    this.#hooks.onSettled(this.jobId, outcome, 'dead-lettered');
  }
}
