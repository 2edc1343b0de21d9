/**
 * What a handler runtime gives a worker thread's task loop (task-runner.ts): JavaScript handlers run in the thread itself
 * (js-runtime.ts), Python handlers in one child process per thread (python/python-runtime.ts). The loop owns
 * everything else — timeouts, abort, lease events, outcomes — so both runtimes fail the same way.
 */
import type { HandlerContext } from '../handler.js';
import type { JobSpec, JobSummary } from '../types.js';
import type { FailureStage } from './thread-protocol.js';
import type { BatchAbort } from './batch-abort.js';

/** A failure that belongs to a stage other than the handler's own code (loading, constructing, decoding, the result). */
export class StageError extends Error {
  constructor(readonly stage: FailureStage, readonly original: unknown) {
    super(`${stage} failed`);
  }
}

/**
 * Thrown by a runtime that had to kill or lost its process while the batch ran: the batch fails with `original`, and
 * the outcome records `why` (the daemon counts it among worker restarts).
 */
export class ProcessReplaced extends Error {
  constructor(readonly why: 'timeout' | 'aborted' | 'crash' | 'oom', readonly original: unknown) {
    super('the handler process was replaced');
  }
}

/** One job's handler on this thread. */
export interface JobHandler<P> {
  /**
   * Runs one batch. What it returns (or resolves to) goes through the runtime's `encodeResult`. A thrown StageError
   * fails the batch at that stage; anything else thrown is the handler's failure ('batch').
   */
  handleBatch(payload: P, batchId: string, ctx: HandlerContext): unknown;
  /**
   * Optional: runs the task's batches (each as handleBatch would) in one exchange with the runtime, and resolves with
   * the ends of the first k of them, in order (0 ≤ k ≤ n). The task loop runs the other n − k one by one through
   * handleBatch: a runtime stops early when its process was replaced or its handler must be constructed again.
   */
  handleBatches?(batches: readonly AheadBatch[], hooks: TaskHooks): Promise<BatchEnd[]>;
  /** The job's completion hook, when the handler has one. */
  readonly onJobComplete: ((summary: JobSummary, ctx: HandlerContext) => unknown) | undefined;
}

/** A batch of the running task that the runtime may start ahead of the task loop (see Runtime.pipeline). */
export interface AheadBatch {
  readonly batchId: string;
  readonly attempt: number;
  readonly payload: Uint8Array;
}

/** What the task loop gives JobHandler.handleBatches. */
export interface TaskHooks {
  /** Each batch's time limit (ms), from its start or from its last lease extension. */
  readonly timeoutMs: number;
  /** The task's stop or shutdown: what runs is stopped, and the batch running fails with the abort's reason. */
  readonly abort: BatchAbort;
  /** Batch i's context, made when first needed; `onExtend` runs when the batch extends its lease. */
  context(index: number, onExtend: () => void): HandlerContext;
  /** What batch i fails with when it exceeds its time limit. */
  timeoutError(index: number): Error;
}

/** How one batch of handleBatches ended: what its handler returned, or what it failed with (as handleBatch throws). */
export type BatchEnd = { ok: true; value: unknown; ms: number } | { ok: false; error: unknown; ms: number };

export interface Runtime<P = unknown> {
  /** Whether its handlers run a task's batches at once (JobHandler.handleBatches): the task loop then tries that first. */
  readonly atOnce: boolean;
  /** Called when the thread starts: begins loading the handler; a failure is reported by the first `create`. */
  preload(): void;
  /** The payload as the runtime's handleBatch takes it; throws for a batch that can never be decoded. */
  decode(raw: Uint8Array): P;
  /** Constructs the job's handler; rejects with a StageError ('load' or 'init'). `initMs` is the constructor's time. */
  create(job: JobSpec, ctx: HandlerContext): Promise<{ handler: JobHandler<P>; initMs: number }>;
  /** What handleBatch resolved to, as stored: MessagePack bytes, or null to store nothing. Throws if it cannot be encoded. */
  encodeResult(value: unknown): Uint8Array | null;
  /**
   * Optional: the task loop is about to run these batches of the job, in this order, each through handleBatch. The
   * runtime may start them early (the Python runtime writes them to its process ahead); the returned function is
   * called when the task is over, and forgets whatever was not reached.
   */
  pipeline?(jobId: string, batches: readonly AheadBatch[]): () => void;
  /** The job ended: its handler on this thread is dropped. */
  dropped(jobId: string): void;
  /** Idempotent and immediate: stops whatever the runtime started (child processes). */
  close(): void;
}
