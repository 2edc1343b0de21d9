/**
 * Every error jetbatch raises on purpose carries a stable `code` (`JB_…`). Codes are part of the public contract
 * (CLI exit messages, one-request replies, docs/errors.md); messages are for humans and may change.
 */
import type { ErrorInfo } from './types.js';

export const ErrorCodes = {
  /** A submission failed validation (also: a bad CLI flag value, input file or project archive); `details` lists each problem. */
  INVALID_SUBMISSION: 'JB_INVALID_SUBMISSION',
  /**
   * A request other than a submission is malformed: its body, an unknown key, a bad `job_id`, `api_name` or `limit`
   * (status, stop, pause, resume, jobs), or a bad job id given to a client method; `details` lists each problem.
   */
  INVALID_REQUEST: 'JB_INVALID_REQUEST',
  /** No daemon has registered the API named in a submission. */
  UNKNOWN_API: 'JB_UNKNOWN_API',
  /** The job id does not exist in the registry. */
  JOB_NOT_FOUND: 'JB_JOB_NOT_FOUND',
  /** A job with this id exists with a different spec. */
  JOB_CONFLICT: 'JB_JOB_CONFLICT',
  /**
   * The job ended (stopped, or its enqueue deadline passed) while its batches were being enqueued; or a pause or
   * resume named a job that has ended or is completing.
   */
  JOB_ENDED: 'JB_JOB_ENDED',
  /** An encoded batch or submission exceeds the size limit. */
  PAYLOAD_TOO_LARGE: 'JB_PAYLOAD_TOO_LARGE',
  /** The daemon configuration file is missing or invalid (`details` names each bad key), or `jetbatch ui`'s options are. */
  INVALID_CONFIG: 'JB_INVALID_CONFIG',
  /** An existing stream, consumer or bucket has a configuration jetbatch cannot use. */
  PROVISION_CONFLICT: 'JB_PROVISION_CONFLICT',
  /** Connecting to NATS failed (bad address, credentials or TLS). */
  CONNECTION_FAILED: 'JB_CONNECTION_FAILED',
  /** The handler module could not be loaded or has no usable default-exported class. */
  HANDLER_LOAD_FAILED: 'JB_HANDLER_LOAD_FAILED',
  /** The handler constructor threw. Ends the job as `worker_error`. */
  HANDLER_INIT_FAILED: 'JB_HANDLER_INIT_FAILED',
  /** `handleBatch` threw or rejected. */
  HANDLER_FAILED: 'JB_HANDLER_FAILED',
  /** The handler threw a PermanentError: no further attempts. */
  HANDLER_PERMANENT: 'JB_HANDLER_PERMANENT',
  /** The batch ran past its batch timeout and was aborted. */
  BATCH_TIMEOUT: 'JB_BATCH_TIMEOUT',
  /** The worker thread, or a Python handler's process, died while running the batch. */
  WORKER_DIED: 'JB_WORKER_DIED',
  /** The worker thread exceeded its memory limit, or a Python handler's process raised MemoryError under it. */
  WORKER_OOM: 'JB_WORKER_OOM',
  /** A batch message could not be decoded; it is dead-lettered at once. */
  UNDECODABLE: 'JB_UNDECODABLE',
  /** The batch was aborted because its job was stopped, timed out or the daemon is shutting down. */
  ABORTED: 'JB_ABORTED',
  /** A store URL is malformed, or names a scheme other than `file://`, `obj://` and `s3://`. */
  INVALID_STORE_URL: 'JB_INVALID_STORE_URL',
  /** The stored object, listing root directory or bucket a store URL names does not exist. */
  STORE_NOT_FOUND: 'JB_STORE_NOT_FOUND',
  /** A store refused or failed a listing, read or write (permissions, credentials, network); the store's error is the `cause`. */
  STORE_FAILED: 'JB_STORE_FAILED',
  /** A job over stored data found nothing to enqueue: its listing matched no object, or the objects hold no valid item. */
  NO_INPUT: 'JB_NO_INPUT',
  /** Something did not happen in time: a job timeout, a missed enqueue deadline, or a wait that gave up. */
  TIMEOUT: 'JB_TIMEOUT',
  /**
   * `results --per-item` cannot give each input item its result: the job has no fixed `batch_size` (ready-made
   * batches), or a batch's result is not an array of one value per item.
   */
  PER_ITEM_UNAVAILABLE: 'JB_PER_ITEM_UNAVAILABLE',
  /** Anything else, with the original error as `cause`. */
  INTERNAL: 'JB_INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

const CODES: ReadonlySet<string> = new Set(Object.values(ErrorCodes));

/** Whether `code` is one of jetbatch's codes (for an error that crossed a thread or process boundary as text). */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && CODES.has(code);
}

export class JetbatchError extends Error {
  readonly code: ErrorCode;
  readonly details: readonly string[];

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: readonly string[] } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'JetbatchError';
    this.code = code;
    this.details = options.details ?? [];
  }

  toJSON(): { code: ErrorCode; message: string; details?: readonly string[] } {
    return this.details.length > 0
      ? { code: this.code, message: this.message, details: this.details }
      : { code: this.code, message: this.message };
  }
}

/** Turns anything thrown into an Error, keeping non-Errors as `cause`. */
function coerceError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  const text = typeof thrown === 'string' ? thrown : safeStringify(thrown);
  return new Error(`non-Error thrown: ${text}`, { cause: thrown });
}

/**
 * The one conversion of anything thrown (or an error already serialized across a thread) into the ErrorInfo that
 * job records, dead letters and logs carry: name, message, the error's own string `code` or else `fallbackCode`,
 * and the stack when there is one.
 */
export function toErrorInfo(thrown: unknown, fallbackCode: string = ErrorCodes.INTERNAL): ErrorInfo {
  const e = isErrorLike(thrown) ? thrown : coerceError(thrown);
  const code = (e as { code?: unknown }).code;
  const info: ErrorInfo = { name: e.name, code: typeof code === 'string' ? code : fallbackCode, message: e.message };
  if (typeof e.stack === 'string') info.stack = e.stack;
  return info;
}

function isErrorLike(value: unknown): value is { name: string; message: string; stack?: unknown } {
  if (value instanceof Error) return true;
  if (value === null || typeof value !== 'object') return false;
  const v = value as { name?: unknown; message?: unknown };
  return typeof v.name === 'string' && typeof v.message === 'string';
}

function safeStringify(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
