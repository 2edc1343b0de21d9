/** Messages between the daemon's main thread and its worker threads. */
import type { NatsOptions } from '../fleet/connect.js';
import type { S3Settings } from '../stores/index.js';
import type { JobSpec, JobSummary } from '../types.js';

/** Given to every worker of an API's pool at creation. */
export interface WorkerData {
  apiName: string;
  projectDir: string;
  /** Absolute path of the handler module, or undefined to look for handler.ts/.js/.mjs/.py in projectDir. */
  handlerPath: string | undefined;
  /** Python interpreter for a Python handler (apis[].python): an absolute path or a command looked up on PATH. */
  python: string;
  /** apis[].memory_limit_mb: also the data-segment limit of a Python handler's process. */
  memoryLimitMb: number | undefined;
  gpus: readonly number[];
  logLevel: string;
  host: string;
  daemonId: string;
  pretty: boolean;
  maxLineBytes: number;
  nats: NatsOptions;
  /** The daemon config's `s3` section: what ctx.open uses for s3:// (AWS environment variables fill the rest). */
  s3: S3Settings;
  /**
   * One Int32 per thread of the pool: the threadId holding that worker index, 0 when free. A new thread claims the
   * first free slot; the main thread frees a slot when Piscina destroys its thread, so a replacement thread gets
   * the index (and GPU) of the one it replaces.
   */
  workerSlots: SharedArrayBuffer;
}

/**
 * One or more batches of one job, run one after the other on one thread (a backlog goes out in groups, so one task
 * and one main-thread dispatch serve several batches).
 */
export interface BatchesTask {
  kind: 'batches';
  jobId: string;
  /**
   * The job's JobSpec, MessagePack-encoded once by the main thread; a thread decodes it once per job and compares
   * bytes afterwards, so a task does not clone the user's config object every time.
   */
  job: Uint8Array;
  batchIds: string[];
  attempts: number[];
  /**
   * Every batch exactly as it arrived (MessagePack), back to back in one buffer that is transferred (not cloned)
   * and decoded in the worker: batch i is `data[ends[i - 1] ?? 0, ends[i])`.
   */
  data: Uint8Array;
  ends: number[];
  /** Per batch: ctx.signal aborts this long after handleBatch starts (or after the last ctx.extendLease()). */
  timeoutMs: number;
}

export interface CompleteTask {
  kind: 'complete';
  job: JobSpec;
  summary: JobSummary;
}

export type Task = BatchesTask | CompleteTask;

/** Where in the handler's life a failure happened. */
export type FailureStage = 'load' | 'init' | 'decode' | 'batch' | 'result' | 'complete';

export interface SerializedError {
  name: string;
  code?: string;
  message: string;
  stack?: string;
  permanent: boolean;
}

/**
 * The worker never rejects a task on purpose: it returns an outcome. (Custom Error classes lose their class,
 * name and code through postMessage, and a rejected init would wedge the pool.)
 */
export type Outcome = (
  | { ok: true; durationMs: number; /** MessagePack of the value handleBatch returned, or null for undefined. */ result: Uint8Array | null }
  | { ok: false; durationMs: number; stage: FailureStage; error: SerializedError }
) & {
  /** Set when this task constructed a handler instance: the constructor's time in ms. */
  initMs?: number;
  /** Set by the main thread when the task's thread died or was terminated (and is being replaced). */
  terminated?: 'timeout' | 'aborted' | 'crash' | 'oom';
};

/** BroadcastChannel names, per API, for out-of-band messages. */
export const channelNames = {
  /** main → workers: { type: 'abort', jobId } | { type: 'ended', jobId } | { type: 'shutdown' } */
  control: (api: string): string => `jetbatch:${api}:control`,
  /** workers → main: lease extensions and handler metrics (WorkerEvent) */
  events: (api: string): string => `jetbatch:${api}:events`,
};

export type ControlMessage = { type: 'abort'; jobId: string } | { type: 'ended'; jobId: string } | { type: 'shutdown' };
export type MetricKind = 'counter' | 'gauge' | 'histogram';
export type WorkerEvent =
  /** The thread has loaded its task loop and takes tasks (`daemon`: the posting thread's daemon; threads of several daemons in one process share the channel). */
  | { type: 'ready'; daemon: string; thread: number }
  | { type: 'lease'; jobId: string; batchId: string }
  /** handleBatch is about to run: the batch timeout starts now (loading and constructing the handler do not count). */
  | { type: 'started'; jobId: string; batchId: string }
  | { type: 'metric'; kind: MetricKind; name: string; value: number; labels: Record<string, string> };
