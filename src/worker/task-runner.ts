/**
 * A worker thread's task loop: runs the tasks the main thread sends (a job's batches, or its onJobComplete) through
 * the thread's runtime, and owns what both runtimes share: one handler instance per job on this thread, constructed
 * on the job's first batch here; each batch's timeout, abort, lease and start event; and the outcomes. Every task
 * resolves with outcomes; nothing is rethrown. The thread's setup (runtime, channels, services) is worker.ts.
 */
import type { Logger } from 'pino';
import { ErrorCodes } from '../errors.js';
import type { HandlerContext } from '../handler.js';
import { decodeValue } from '../fleet/protocol.js';
import type { JobSpec } from '../types.js';
import { withMeta } from '../util/log.js';
import { BatchAbort } from './batch-abort.js';
import { BatchContext, type ThreadServices } from './context.js';
import { Deadlines } from './deadlines.js';
import { batchFailure, failure, initFailure, succeeded, withInit } from './outcomes.js';
import { StageError, type BatchEnd, type JobHandler, type Runtime } from './runtime.js';
import type { BatchesTask, CompleteTask, Outcome, WorkerEvent } from './thread-protocol.js';

export interface TaskRunnerDeps {
  runtime: Runtime;
  services: ThreadServices;
  /** The thread's logger; a job's logger binds its job_id. */
  log: Logger;
  /** Posts an event to the main thread (batch started). */
  emit(event: WorkerEvent): void;
}

/** A job's handler on this thread, and how long its constructor took (ms). */
interface Instance {
  handler: JobHandler<unknown>;
  initMs: number;
}

/** One batch of a task. */
interface Batch {
  job: JobSpec;
  batchId: string;
  attempt: number;
  payload: Uint8Array;
  timeoutMs: number;
}

export class TaskRunner {
  readonly #runtime: Runtime;
  readonly #services: ThreadServices;
  readonly #log: Logger;
  readonly #emit: (event: WorkerEvent) => void;
  readonly #encodeResult: (value: unknown) => Uint8Array | null;
  /** The timeouts of the batches running on this thread. */
  readonly #deadlines = new Deadlines();
  /** Aborters of running batches, by job id, so a stop or shutdown reaches the handler's ctx.signal. */
  readonly #running = new Map<string, Set<BatchAbort>>();
  readonly #instances = new Map<string, Promise<Instance>>();
  /** Job specs decoded from their bytes, by job id (a task carries the spec encoded; see BatchesTask.job). */
  readonly #specs = new Map<string, { bytes: Uint8Array; spec: JobSpec }>();
  /** The job's logger (job_id bound), one per job per thread. */
  readonly #jobLogs = new Map<string, Logger>();

  constructor(deps: TaskRunnerDeps) {
    this.#runtime = deps.runtime;
    this.#services = deps.services;
    this.#log = deps.log;
    this.#emit = deps.emit;
    this.#encodeResult = (value) => this.#runtime.encodeResult(value);
  }

  /** Aborts the running batches of `jobId` (every job's when undefined) with `reason`. */
  abort(jobId: string | undefined, reason: Error): void {
    const targets = jobId === undefined ? [...this.#running.values()] : [this.#running.get(jobId) ?? new Set<BatchAbort>()];
    for (const set of targets) for (const ac of set) ac.abort(reason);
  }

  /** The job ended: its handler on this thread is dropped. */
  ended(jobId: string): void {
    this.#instances.delete(jobId);
    this.#specs.delete(jobId);
    this.#jobLogs.delete(jobId);
    this.#runtime.dropped(jobId);
  }

  /** The runtime's process was replaced: every job's handler must be constructed again. */
  reset(): void {
    this.#instances.clear();
  }

  /**
   * The batches of a task, one after the other. The main thread's limit for the task covers them all; only the
   * first batch announces its start (after the handler is loaded), which starts that limit.
   */
  async runBatches(task: BatchesTask): Promise<Outcome[]> {
    const job = this.#specOf(task);
    const batches: Batch[] = [];
    let start = 0;
    for (let i = 0; i < task.batchIds.length; i++) {
      const end = task.ends[i]!;
      batches.push({ job, batchId: task.batchIds[i]!, attempt: task.attempts[i]!, payload: task.data.subarray(start, end), timeoutMs: task.timeoutMs });
      start = end;
    }
    const { outcomes, initMs } = batches.length > 1 ? await this.#runAtOnce(job, batches) : { outcomes: [], initMs: undefined };
    const rest = batches.slice(outcomes.length);
    const done = rest.length > 1 ? this.#runtime.pipeline?.(job.job_id, rest) : undefined;
    try {
      for (const batch of rest) outcomes.push(await this.#runBatch(batch, outcomes.length === 0));
    } finally {
      done?.();
    }
    if (outcomes.length > 0) withInit(outcomes[0]!, initMs);
    return outcomes;
  }

  async runComplete(task: CompleteTask): Promise<Outcome> {
    const started = performance.now();
    const log = this.#jobLog(task.job.job_id);
    let initMs: number | undefined;
    try {
      const instance = await this.#instanceFor(task.job, log);
      initMs = instance.initMs;
      const hook = instance.handler.onJobComplete;
      if (hook !== undefined) await hook(task.summary, this.#context(task.job, 0, log, new AbortController().signal, null));
      return withInit({ ok: true, durationMs: performance.now() - started, result: null }, initMs);
    } catch (err) {
      if (err instanceof StageError) return failure(err.stage, err.original, performance.now() - started);
      return withInit(failure('complete', err, performance.now() - started), initMs);
    } finally {
      this.ended(task.job.job_id);
    }
  }

  /** See BatchContext: `log` and `signal` are made only if the handler reads them. */
  #context(job: JobSpec, attempt: number, log: Logger | (() => Logger), signal: AbortSignal | BatchAbort, batchId: string | null, onExtend?: () => void): HandlerContext {
    return new BatchContext(this.#services, job.job_id, attempt, log, signal, batchId, onExtend);
  }

  #jobLog(jobId: string): Logger {
    let log = this.#jobLogs.get(jobId);
    if (log === undefined) this.#jobLogs.set(jobId, (log = withMeta(this.#log, { job_id: jobId })));
    return log;
  }

  /**
   * The job's handler, constructed on the first call for the job on this thread. Only the call that constructed it
   * gets `initMs`, so the constructor's time is reported once, with the outcome of the task that ran it (another task
   * of the thread may run or finish in between: concurrency > 1, or another job's batches).
   */
  async #instanceFor(job: JobSpec, log: Logger): Promise<{ handler: JobHandler<unknown>; initMs?: number }> {
    const existing = this.#instances.get(job.job_id);
    if (existing !== undefined) return { handler: (await existing).handler };
    const created = this.#runtime.create(job, this.#context(job, 0, log, new AbortController().signal, null));
    this.#instances.set(job.job_id, created);
    created.catch(() => {
      if (this.#instances.get(job.job_id) === created) this.#instances.delete(job.job_id);
    });
    return created;
  }

  async #runBatch(task: Batch, announce: boolean): Promise<Outcome> {
    let started = performance.now();
    const log = this.#jobLog(task.job.job_id);
    let payload: unknown;
    try {
      payload = this.#runtime.decode(task.payload);
    } catch (err) {
      return failure('decode', err, performance.now() - started);
    }
    let instance: { handler: JobHandler<unknown>; initMs?: number };
    const loading = performance.now();
    try {
      instance = await this.#instanceFor(task.job, log);
    } catch (err) {
      return initFailure(err, performance.now() - started);
    }
    // A batch's duration is its own work: loading and constructing the handler (reported as initMs) do not count.
    started += performance.now() - loading;
    return withInit(await this.#callHandleBatch(instance.handler, task, payload, log, announce, started), instance.initMs);
  }

  /** Runs handleBatch with the batch's timeout, abort and lease; `started` is when the batch's own work began. */
  async #callHandleBatch(handler: JobHandler<unknown>, task: Batch, payload: unknown, log: Logger, announce: boolean, started: number): Promise<Outcome> {
    const ac = new BatchAbort();
    const deadlines = this.#deadlines;
    const deadline = deadlines.start(task.timeoutMs, () => ac.abort(timeoutError(task)));
    if (announce) this.#emit({ type: 'started', jobId: task.job.job_id, batchId: task.batchId });
    this.#track(task.job.job_id, ac);
    const ctx = this.#context(task.job, task.attempt, () => withMeta(log, { batch_id: task.batchId }), ac, task.batchId, () => deadlines.extend(deadline, task.timeoutMs));
    let value: unknown;
    try {
      value = await handler.handleBatch(payload, task.batchId, ctx);
    } catch (err) {
      return batchFailure(err, ac.aborted ? ac : undefined, performance.now() - started);
    } finally {
      deadlines.clear(deadline);
      this.#untrack(task.job.job_id, ac);
    }
    return succeeded(value, performance.now() - started, this.#encodeResult);
  }

  /**
   * The task's batches through the handler's handleBatches, when the runtime has it (Python): the outcomes of the
   * first k of them, and the constructor's time if this call constructed the handler. None when a batch cannot be
   * decoded (#runBatch then reports each); only the first when the handler cannot be constructed.
   */
  async #runAtOnce(job: JobSpec, batches: readonly Batch[]): Promise<{ outcomes: Outcome[]; initMs?: number }> {
    if (!this.#runtime.atOnce) return { outcomes: [] };
    const log = this.#jobLog(job.job_id);
    let instance: { handler: JobHandler<unknown>; initMs?: number };
    try {
      for (const b of batches) this.#runtime.decode(b.payload);
    } catch {
      return { outcomes: [] };
    }
    const started = performance.now();
    try {
      instance = await this.#instanceFor(job, log);
    } catch (err) {
      // The first batch fails as #runBatch would fail it; the next ones try again, one by one.
      return { outcomes: [initFailure(err, performance.now() - started)] };
    }
    const many = instance.handler.handleBatches;
    if (many === undefined) return { outcomes: [], initMs: instance.initMs };
    const ac = new BatchAbort();
    const first = batches[0]!;
    this.#emit({ type: 'started', jobId: job.job_id, batchId: first.batchId });
    this.#track(job.job_id, ac);
    let ends: BatchEnd[];
    try {
      ends = await many.call(instance.handler, batches, {
        timeoutMs: first.timeoutMs,
        abort: ac,
        context: (i, onExtend) => {
          const b = batches[i]!;
          return this.#context(job, b.attempt, () => withMeta(log, { batch_id: b.batchId }), ac, b.batchId, onExtend);
        },
        timeoutError: (i) => timeoutError(batches[i]!),
      });
    } catch {
      ends = [];
    } finally {
      this.#untrack(job.job_id, ac);
    }
    // An abort (stop, shutdown) ends the batch it stopped with its reason (ProcessReplaced); earlier ones ended on their own.
    return { outcomes: ends.map((e) => (e.ok ? succeeded(e.value, e.ms, this.#encodeResult) : batchFailure(e.error, undefined, e.ms))), initMs: instance.initMs };
  }

  /** Registers a running batch's (or task's) abort, so a stop or shutdown reaches it. */
  #track(jobId: string, ac: BatchAbort): void {
    let set = this.#running.get(jobId);
    if (set === undefined) this.#running.set(jobId, (set = new Set()));
    set.add(ac);
  }

  #untrack(jobId: string, ac: BatchAbort): void {
    const set = this.#running.get(jobId);
    set?.delete(ac);
    if (set?.size === 0) this.#running.delete(jobId);
  }

  #specOf(task: BatchesTask): JobSpec {
    const cached = this.#specs.get(task.jobId);
    if (cached !== undefined && sameBytes(cached.bytes, task.job)) return cached.spec;
    const spec = decodeValue(task.job) as JobSpec;
    this.#specs.set(task.jobId, { bytes: task.job, spec });
    return spec;
  }
}

function timeoutError(task: Batch): Error {
  const err = new Error(`batch ${task.batchId} exceeded its batch timeout of ${task.job.batch_timeout} s`);
  err.name = 'TimeoutError';
  (err as Error & { code: string }).code = ErrorCodes.BATCH_TIMEOUT;
  return err;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}
