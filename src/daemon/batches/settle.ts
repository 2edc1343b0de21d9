/**
 * Settling a delivered batch: ack after success, NAK with our backoff after a failed attempt, dead-letter after the
 * last one. Invariant (at-least-once): a batch leaves the work queue only (a) by ack after its result, if any, is
 * stored, or (b) by ack after its dead letter is confirmed by the server. Anything else leaves it queued.
 */
import type { JsMsg } from '@nats-io/jetstream';
import { hostname } from 'node:os';
import type { FleetContext } from '../../fleet/context.js';
import { ErrorCodes } from '../../errors.js';
import { Subjects, encodeValue } from '../../fleet/protocol.js';
import type { SerializedError } from '../../worker/thread-protocol.js';
import type { BackoffOptions, DeadLetter, ErrorInfo } from '../../types.js';
import { backoffDelay } from './backoff.js';
import { batchHeaders } from './batch-headers.js';

export interface BatchIdentity {
  apiName: string;
  jobId: string;
  batchId: string;
  generation: number;
}

/**
 * The identity of a batch pulled from the consumer of `jobId`, whose filter subject already names the API and the
 * job: only the batch id and generation headers are read. Null when the batch id is missing or malformed.
 */
export function identify(msg: JsMsg, apiName: string, jobId: string): BatchIdentity | null {
  const { batchId, generation: g } = batchHeaders(msg);
  const generation = g ? Number(g) : 0;
  if (!batchId || !Number.isInteger(generation)) return null;
  return { apiName, jobId, batchId, generation };
}

export async function storeResult(ctx: FleetContext, id: BatchIdentity, attempt: number, durationMs: number, result: Uint8Array): Promise<void> {
  // The envelope is assembled around the worker's already-encoded value without decoding it.
  const envelope = encodeValue({ job_id: id.jobId, batch_id: id.batchId, duration_ms: durationMs, attempt, result: null });
  const body = spliceResult(envelope, result);
  await ctx.js.publish(Subjects.result(id.apiName, id.jobId), body, {
    msgID: `${id.jobId}:${id.batchId}:${id.generation}`,
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
export async function deadLetter(ctx: FleetContext, msg: JsMsg, id: BatchIdentity | null, attempts: number, error: ErrorInfo): Promise<void> {
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
    payload: new Uint8Array(msg.data),
    failed_at: new Date().toISOString(),
    host: hostname(),
  };
  await ctx.js.publish(Subjects.deadLetter(apiName, jobId), encodeValue(letter), {
    msgID: `dlq:${jobId}:${letter.batch_id}:${letter.generation}`,
  });
  msg.ack();
}

export type Decision = { action: 'retry'; delayMs: number } | { action: 'dead-letter' };

export function decideFailure(error: SerializedError, attempts: number, maxAttempts: number, backoff: BackoffOptions): Decision {
  if (error.permanent || error.code === ErrorCodes.UNDECODABLE || attempts >= maxAttempts) return { action: 'dead-letter' };
  return { action: 'retry', delayMs: backoffDelay(backoff, attempts) };
}
