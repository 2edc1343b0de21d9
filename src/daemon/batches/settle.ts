/**
 * Applies the decision on each batch that ended (decision.ts); the only place that acks, NAKs or terms a batch.
 * Invariant (at-least-once): a batch leaves the work queue only (a) by ack after its result, if any, is stored, or
 * (b) by ack after its dead letter is confirmed by the server. Anything else leaves it queued.
 */
import type { JsMsg } from '@nats-io/jetstream';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { ErrorCodes, toErrorInfo } from '../../errors.js';
import type { FleetContext } from '../../fleet/context.js';
import { noteOutOfMemory } from '../../fleet/lifecycle.js';
import { Subjects, encodeValue, maxBodyBytes, resultMsgId } from '../../fleet/protocol.js';
import type { DeadLetter, ErrorInfo } from '../../types.js';
import type { Outcome } from '../../worker/thread-protocol.js';
import type { AbortReason } from '../pools/pool.js';
import type { BatchIdentity } from './batch-headers.js';
import { decide, type Ending, type Limits, type Verdict } from './decision.js';
import type { BatchSink } from './sink.js';
import type { OutputWriter } from './output-writer.js';
import { bodyOf } from './body.js';

/** A batch delivered to this daemon. `id` is null when its batch id header is missing or malformed. */
export interface Delivered {
  msg: JsMsg;
  /** Size of its body (read once, when received: every read of `msg.data` makes a view). */
  bytes: number;
  id: BatchIdentity | null;
  attempt: number;
  /**
   * Set when this delivery is acked or NAKed: a redelivery that arrives after (a NAK's retry may come back before the
   * rest of its task is settled) is a new attempt, not a duplicate of a running one.
   */
  settled?: boolean;
  /** Its (large) body was dropped once copied for its thread (body.ts): `msg.data` must not be read any more. */
  bodyDropped?: boolean;
}

function ack(batch: Delivered): void {
  batch.settled = true;
  batch.msg.ack();
}

function nak(batch: Delivered, delayMs?: number): void {
  batch.settled = true;
  batch.msg.nak(delayMs);
}

export interface SettlerDeps {
  ctx: FleetContext;
  log: Logger;
  jobId: string;
  apiName: string;
  limits: Omit<Limits, 'maxResultBytes'>;
  sink: BatchSink;
  /**
   * Where a job with an `output` writes its results (no size cap from NATS); undefined: the results stream, capped
   * at the server's max_payload.
   */
  output?: OutputWriter | undefined;
  /** The handler cannot be loaded or constructed: the job must end as worker_error. */
  onFatal(error: ErrorInfo): void;
}

/** Hands a batch back uncharged, for redelivery at once (it was received after a stop, or beyond what was asked). */
export function handBack(msg: JsMsg): void {
  msg.nak();
}

export class Settler {
  readonly #deps: SettlerDeps;

  constructor(deps: SettlerDeps) {
    this.#deps = deps;
  }

  /**
   * Settles the batches of one task (`endings[i]` is how batch i ended). Plain successes are acked in one synchronous
   * pass, so their acks leave in one socket write; the rest (a result to store, a failure) are settled one by one.
   * Whether the task was stopped is read (`interrupted`) right before each decision: a stop or shutdown that comes
   * while earlier batches are being settled releases the later ones, even those that finished.
   */
  async settle(batches: readonly Delivered[], endings: ReadonlyArray<Ending | undefined>, interrupted: () => AbortReason | null): Promise<void> {
    const limits: Limits = { ...this.#deps.limits, maxResultBytes: this.#deps.output === undefined ? maxBodyBytes(this.#deps.ctx.nc) : Number.MAX_SAFE_INTEGER };
    const acked: Outcome[] = [];
    const rest: Array<{ batch: Delivered; ending: Ending }> = [];
    const stop = interrupted();
    for (let i = 0; i < batches.length; i++) {
      const ending = endings[i];
      if (ending === undefined) continue;
      const verdict = decide(ending, stop, limits);
      if (verdict.action === 'ack' && !verdict.store) {
        ack(batches[i]!);
        acked.push(ending.outcome);
      } else rest.push({ batch: batches[i]!, ending });
    }
    if (acked.length > 0) this.#deps.sink.acked(acked);
    for (const { batch, ending } of rest) {
      try {
        await this.#apply(batch, ending, decide(ending, interrupted(), limits), limits);
      } catch (err) {
        // Unsettled: the batch stays in the queue and is redelivered after the lease; nothing is lost.
        this.#deps.log.warn({ err, job_id: this.#deps.jobId, batch_id: batch.id?.batchId }, 'settling a batch failed; it will be redelivered');
      }
    }
  }

  async #apply(batch: Delivered, ending: Ending, verdict: Verdict, limits: Limits): Promise<void> {
    const { id, attempt } = batch;
    const outcome = ending.outcome;
    const d = this.#deps;
    switch (verdict.action) {
      case 'ack':
        if (verdict.store && outcome.ok && outcome.result !== null && id !== null) {
          if (d.output === undefined) await storeResult(d.ctx, id, attempt, outcome.durationMs, outcome.result);
          else {
            try {
              await d.output.write(id, attempt, outcome.durationMs, outcome.result);
            } catch (err) {
              // Never acked without its result: a failed write is a failed attempt (retried with backoff, dead-lettered
              // with the store's error after max_attempts), decided like any other failure.
              const failed = writeFailure(outcome.durationMs, err);
              await this.#apply(batch, ending, decide({ ...ending, outcome: failed }, null, limits), limits);
              return;
            }
          }
        }
        ack(batch);
        d.sink.acked([outcome]);
        return;
      case 'release':
        if (verdict.redeliver) nak(batch);
        d.sink.settled(outcome, 'released');
        return;
      case 'fatal':
        // Not the batch's fault: leave it queued (the job is about to end as worker_error and be purged).
        nak(batch);
        d.onFatal(toErrorInfo(verdict.outcome.error));
        d.sink.settled(outcome, 'released');
        return;
      case 'retry': {
        const error = toErrorInfo(verdict.outcome.error);
        d.log.info({ job_id: d.jobId, api_name: d.apiName, batch_id: id?.batchId, attempt, error, retry_in_ms: verdict.delayMs }, 'batch attempt failed; retrying');
        nak(batch, verdict.delayMs);
        d.sink.settled(verdict.outcome, 'retried');
        return;
      }
      case 'dead-letter': {
        const error = toErrorInfo(verdict.outcome.error);
        await deadLetter(d.ctx, batch, error);
        d.log.warn({ job_id: d.jobId, api_name: d.apiName, batch_id: id?.batchId, attempt, error }, 'batch dead-lettered');
        d.sink.settled(verdict.outcome, 'dead-lettered');
        if (error.code === ErrorCodes.WORKER_OOM) {
          void noteOutOfMemory(d.ctx, d.jobId, error).catch((err: unknown) => d.log.warn({ err, job_id: d.jobId }, 'recording the out-of-memory error failed'));
        }
        return;
      }
    }
  }
}

/**
 * A part that could not be written. A store's failure (unreachable, a file:// folder not mounted) is retried: the
 * store may come back. A batch the output cannot take (JB_INVALID_SUBMISSION: its id is no part name) is permanent.
 */
export function writeFailure(durationMs: number, err: unknown): Extract<Outcome, { ok: false }> {
  const info = toErrorInfo(err);
  const permanent = info.code === ErrorCodes.INVALID_SUBMISSION;
  return {
    ok: false,
    durationMs,
    stage: 'result',
    error: { name: info.name, code: info.code ?? ErrorCodes.STORE_FAILED, message: `writing the result to the job's output failed: ${info.message}`, ...(info.stack === undefined ? {} : { stack: info.stack }), permanent },
  };
}

async function storeResult(ctx: FleetContext, id: BatchIdentity, attempt: number, durationMs: number, result: Uint8Array): Promise<void> {
  // The envelope is assembled around the worker's already-encoded value without decoding it.
  const envelope = encodeValue({ job_id: id.jobId, batch_id: id.batchId, duration_ms: durationMs, attempt, result: null });
  const body = spliceResult(envelope, result);
  await ctx.js.publish(Subjects.result(id.apiName, id.jobId), body, {
    msgID: resultMsgId(id.jobId, id.batchId, id.generation),
  });
}

/** Replaces the trailing `nil` (the `result` key is encoded last) of a MessagePack map with `value`. */
function spliceResult(envelope: Uint8Array, value: Uint8Array): Uint8Array {
  const out = new Uint8Array(envelope.byteLength - 1 + value.byteLength);
  out.set(envelope.subarray(0, envelope.byteLength - 1), 0);
  out.set(value, envelope.byteLength - 1);
  return out;
}

/** Publishes the dead letter and waits for the server to store it; only then may the original be removed. */
async function deadLetter(ctx: FleetContext, batch: Delivered, error: ErrorInfo): Promise<void> {
  const { msg, id, attempt: attempts } = batch;
  const parts = msg.subject.split('.');
  const apiName = id?.apiName ?? parts[2] ?? 'unknown';
  const jobId = id?.jobId ?? parts[3] ?? 'unknown';
  const letter: DeadLetter = {
    job_id: jobId,
    api_name: apiName,
    batch_id: id?.batchId ?? `seq-${msg.seq}`,
    attempts,
    generation: id?.generation ?? 0,
    error,
    payload: await bodyOf(ctx, msg, batch.bodyDropped === true),
    failed_at: new Date().toISOString(),
    host: hostname(),
  };
  await ctx.js.publish(Subjects.deadLetter(apiName, jobId), encodeValue(letter), {
    msgID: `dlq:${jobId}:${letter.batch_id}:${letter.generation}`,
  });
  ack(batch);
}

