/**
 * How the end of a batch (or of a task's hook) becomes the Outcome the main thread settles: the failure stage and
 * its error code, what is permanent, the time it took. Pure: the task loop (task-runner.ts) passes what it measured.
 */
import { ErrorCodes, toErrorInfo } from '../errors.js';
import type { BatchAbort } from './batch-abort.js';
import { ProcessReplaced, StageError } from './runtime.js';
import type { FailureStage, Outcome, SerializedError } from './thread-protocol.js';

const stageCodes: Record<FailureStage, string> = {
  load: ErrorCodes.HANDLER_LOAD_FAILED,
  init: ErrorCodes.HANDLER_INIT_FAILED,
  decode: ErrorCodes.UNDECODABLE,
  batch: ErrorCodes.HANDLER_FAILED,
  result: ErrorCodes.HANDLER_FAILED,
  complete: ErrorCodes.HANDLER_FAILED,
};

function serialize(thrown: unknown, fallbackCode: string): SerializedError {
  return { ...toErrorInfo(thrown, fallbackCode), permanent: (thrown as { permanent?: unknown } | null)?.permanent === true };
}

export function failure(stage: FailureStage, thrown: unknown, durationMs: number): Outcome {
  const error = serialize(thrown, stageCodes[stage]);
  // A module that cannot load, or an undecodable batch, will never succeed on retry.
  if (stage === 'load' || stage === 'decode') error.permanent = true;
  return { ok: false, stage, error, durationMs };
}

/** The handler could not be loaded or constructed (a StageError says which; anything else is the constructor's). */
export function initFailure(err: unknown, durationMs: number): Outcome {
  return err instanceof StageError ? failure(err.stage, err.original, durationMs) : failure('init', err, durationMs);
}

/** A handler that returned `value` (`encode`: the runtime's encodeResult). */
export function succeeded(value: unknown, durationMs: number, encode: (value: unknown) => Uint8Array | null): Outcome {
  try {
    return { ok: true, durationMs, result: encode(value) };
  } catch (err) {
    return failure('result', new TypeError(`handleBatch returned a value MessagePack cannot encode: ${(err as Error).message}`), durationMs);
  }
}

/** A batch whose handler threw `err`; `aborted`: the abort that stopped it (timeout, stop, shutdown), if any. */
export function batchFailure(err: unknown, aborted: BatchAbort | undefined, durationMs: number): Outcome {
  // A handler that gives up because ctx.signal aborted failed for that reason.
  if (err instanceof StageError && aborted === undefined) return failure(err.stage, err.original, durationMs);
  const replaced = err instanceof ProcessReplaced ? err : undefined;
  const outcome = failure('batch', aborted !== undefined ? aborted.reason : replaced !== undefined ? replaced.original : err, durationMs);
  if (replaced !== undefined) outcome.terminated = replaced.why;
  return outcome;
}

/** Adds the constructor's time to the outcome of the task that ran the constructor. */
export function withInit(outcome: Outcome, initMs: number | undefined): Outcome {
  if (initMs !== undefined) outcome.initMs = initMs;
  return outcome;
}
