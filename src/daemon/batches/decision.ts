/**
 * What becomes of a delivered batch once its attempt has ended: the one decision, pure (settle.ts applies it).
 *
 * - `ack`: it succeeded; its result, if any (`store`), is stored first.
 * - `retry`: the attempt failed and attempts remain: redelivered after `delayMs` (our backoff, not the server's).
 * - `dead-letter`: the last attempt failed, or the failure is permanent (undecodable, a result that can never be
 *   stored, an error the handler marked permanent): it leaves the queue only once its dead letter is stored.
 * - `release`: it is handed back uncharged: at once (`redeliver`: shutdown, or a shared thread died and who is to
 *   blame is unknown), or not at all (its job was stopped and its queue is purged by whoever stopped it).
 * - `fatal`: the handler could not be loaded or constructed: not the batch's fault. It is handed back and the job
 *   ends as worker_error.
 */
import { ErrorCodes } from '../../errors.js';
import type { BackoffOptions } from '../../types.js';
import type { Outcome, SerializedError } from '../../worker/thread-protocol.js';
import type { AbortReason } from '../pools/pool.js';
import { backoffDelay } from './backoff.js';

export type FailedOutcome = Extract<Outcome, { ok: false }>;

export type Verdict =
  | { action: 'ack'; store: boolean }
  | { action: 'retry'; delayMs: number; outcome: FailedOutcome }
  | { action: 'dead-letter'; outcome: FailedOutcome }
  | { action: 'release'; redeliver: boolean }
  | { action: 'fatal'; outcome: FailedOutcome };

export interface Limits {
  maxAttempts: number;
  backoff: BackoffOptions;
  /** Largest result that can be stored (the server's max_payload minus envelope room). */
  maxResultBytes: number;
}

export interface Ending {
  outcome: Outcome;
  /** Delivery count of this attempt (1 for the first). */
  attempt: number;
  /** The batch shared a task with others and the thread died or was terminated under them. */
  sharedDeath: boolean;
}

/**
 * `interrupted` is why the main thread aborted the batch's task, if it did: a timeout is the batch's failure, a stop or
 * a shutdown is not.
 */
export function decide(end: Ending, interrupted: AbortReason | null, limits: Limits): Verdict {
  if (end.sharedDeath) return { action: 'release', redeliver: true };
  if (interrupted === 'stopped' || interrupted === 'shutdown') return { action: 'release', redeliver: interrupted === 'shutdown' };
  let outcome = end.outcome;
  if (outcome.ok) {
    if (outcome.result === null) return { action: 'ack', store: false };
    if (outcome.result.byteLength <= limits.maxResultBytes) return { action: 'ack', store: true };
    // It can never be stored: retrying would loop forever. The batch fails for good, with the reason.
    outcome = {
      ok: false,
      durationMs: outcome.durationMs,
      stage: 'result',
      error: {
        name: 'RangeError',
        code: ErrorCodes.PAYLOAD_TOO_LARGE,
        message: `handleBatch returned ${outcome.result.byteLength} bytes; a result may be at most ${limits.maxResultBytes} (the NATS max_payload minus envelope room)`,
        permanent: true,
      },
    };
  }
  if (outcome.stage === 'init' || outcome.stage === 'load') return { action: 'fatal', outcome };
  if (isFinal(outcome.error, end.attempt, limits.maxAttempts)) return { action: 'dead-letter', outcome };
  return { action: 'retry', delayMs: backoffDelay(limits.backoff, end.attempt), outcome };
}

function isFinal(error: SerializedError, attempt: number, maxAttempts: number): boolean {
  return error.permanent || error.code === ErrorCodes.UNDECODABLE || attempt >= maxAttempts;
}
