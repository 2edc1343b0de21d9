/**
 * The handler contract: what a handler module exports and what jetbatch hands it. This module is public
 * (`jetbatch/handler`); everything a handler needs at run time is here.
 */
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { JetbatchClient } from './client/client.js';
import type { JobSpec, JobSummary } from './types.js';

export type { JobSpec, JobSummary } from './types.js';

/** Given to every handler call. */
export interface HandlerContext {
  /** pino logger bound to api_name, job_id, batch_id (in handleBatch) and worker; those keys cannot be overwritten. */
  readonly log: Logger;
  /** Aborted when the batch times out, its job is stopped or times out, or the daemon shuts down. */
  readonly signal: AbortSignal;
  /** Tells JetStream the batch is still being worked on, so a healthy long batch is not redelivered elsewhere. */
  extendLease(): void;
  /** The GPU index this worker thread is bound to, or null where the API lists no GPUs. */
  readonly gpu: number | null;
  /** Index of this worker thread within the daemon's pool for the API (0-based, stable for the thread's life). */
  readonly worker: number;
  /** Absolute path of the API's project folder (read project files relative to it). */
  readonly projectDir: string;
  /** Delivery attempt of this batch, from 1 (0 outside handleBatch). */
  readonly attempt: number;
  /** Handler metrics, aggregated by the daemon and exposed on /metrics as `jetbatch_handler_<name>{api_name,…}`. */
  readonly metrics: HandlerMetrics;
  /** A client on the daemon's NATS connection settings, to submit or query jobs (job chaining). */
  client(): Promise<JetbatchClient>;
  /**
   * A stream of a stored object's bytes: `file:///abs/path`, `obj://BUCKET/key` (the fleet's NATS Object Store) or
   * `s3://bucket/key` (endpoint and credentials from the daemon config's `s3` section, passed to the worker threads;
   * what it leaves unset from the AWS environment variables). What a `file_path_lister` job's batches hold. Throws
   * JetbatchError JB_STORE_NOT_FOUND, JB_STORE_FAILED or JB_INVALID_STORE_URL.
   */
  open(url: string): Promise<Readable>;
}

/**
 * Custom metrics from a handler. A name (`[a-zA-Z_][a-zA-Z0-9_]*`) keeps the kind and label names of its first use;
 * label values should come from a small set (no ids). Calls that break these rules are dropped with a warning.
 */
export interface HandlerMetrics {
  /** Adds `value` (default 1) to a counter. */
  increment(name: string, value?: number, labels?: Record<string, string>): void;
  /** Sets a gauge. */
  gauge(name: string, value: number, labels?: Record<string, string>): void;
  /** Records one observation in a histogram (e.g. seconds). */
  observe(name: string, value: number, labels?: Record<string, string>): void;
}

/** The shape of a handler instance. Snake-case names (`handle_batch`, `on_job_complete`) are accepted too. */
export interface Handler<Item = unknown, Result = unknown> {
  handleBatch(payload: Item[], batchId: string, ctx: HandlerContext): Result | Promise<Result>;
  onJobComplete?(summary: JobSummary, ctx: HandlerContext): void | Promise<void>;
}

/** The default export of a handler module. */
export type HandlerClass<Item = unknown, Result = unknown> = new (
  config: Record<string, unknown>,
  jobSpec: JobSpec,
  ctx: HandlerContext,
) => Handler<Item, Result>;

/**
 * Throw this (or any error with `permanent: true`) from handleBatch to skip the remaining attempts: the batch is
 * dead-lettered at once. Recognised across the thread boundary by its `permanent` flag, not its class.
 */
export class PermanentError extends Error {
  readonly permanent = true;
  readonly code: string;

  constructor(message: string, options: { cause?: unknown; code?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PermanentError';
    this.code = options.code ?? 'JB_HANDLER_PERMANENT';
  }
}
