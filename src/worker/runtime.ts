/**
 * What a handler runtime gives a worker thread's task loop (worker.ts): JavaScript handlers run in the thread itself
 * (js-runtime.ts), Python handlers in one child process per thread (python/python-runtime.ts). The loop owns
 * everything else — timeouts, abort, lease events, outcomes — so both runtimes fail the same way.
 */
import type { HandlerContext } from '../handler.js';
import type { JobSpec, JobSummary } from '../types.js';
import type { FailureStage } from './thread-protocol.js';

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
  /** The job's completion hook, when the handler has one. */
  readonly onJobComplete: ((summary: JobSummary, ctx: HandlerContext) => unknown) | undefined;
}

/** A batch of the running task that the runtime may start ahead of the task loop (see Runtime.pipeline). */
export interface AheadBatch {
  readonly batchId: string;
  readonly attempt: number;
  readonly payload: Uint8Array;
}

export interface Runtime<P = unknown> {
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
