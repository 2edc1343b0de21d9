/** The settle decision (src/daemon/batches/decision.ts): every branch, pure, no server. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decide as decideBatch, type Ending, type Limits, type Verdict } from '../src/daemon/batches/decision.js';
import type { AbortReason } from '../src/daemon/pools/pool.js';
import { backoffDelay } from '../src/daemon/batches/backoff.js';
import type { Outcome, SerializedError } from '../src/worker/thread-protocol.js';

const limits: Limits = { maxAttempts: 3, backoff: { initial_ms: 100, max_ms: 1000, factor: 2, jitter: 0 }, maxResultBytes: 1000 };

const ok = (result: Uint8Array | null = null): Outcome => ({ ok: true, durationMs: 5, result });
const failed = (error: Partial<SerializedError> = {}, stage: 'batch' | 'init' | 'load' | 'decode' = 'batch'): Outcome => ({
  ok: false,
  durationMs: 5,
  stage,
  error: { name: 'Error', message: 'boom', code: 'JB_HANDLER_FAILED', permanent: false, ...error },
});
/** An ending, with why its task was interrupted (the decision's second argument). */
type Case = Ending & { interrupted: AbortReason | null };
const ending = (outcome: Outcome, over: Partial<Case> = {}): Case => ({ outcome, attempt: 1, interrupted: null, sharedDeath: false, ...over });
const decide = (c: Case, l: Limits): Verdict => decideBatch(c, c.interrupted, l);

test('a success without a result is acked without storing anything', () => {
  assert.deepEqual(decide(ending(ok()), limits), { action: 'ack', store: false });
});

test('a success with a result is stored, then acked', () => {
  assert.deepEqual(decide(ending(ok(new Uint8Array(1000))), limits), { action: 'ack', store: true });
});

test('a result larger than can be stored fails the batch for good with JB_PAYLOAD_TOO_LARGE', () => {
  const v = decide(ending(ok(new Uint8Array(1001))), limits);
  assert.equal(v.action, 'dead-letter');
  assert.ok(v.action === 'dead-letter');
  assert.equal(v.outcome.stage, 'result');
  assert.equal(v.outcome.error.code, 'JB_PAYLOAD_TOO_LARGE');
  assert.equal(v.outcome.error.permanent, true);
  assert.match(v.outcome.error.message, /1001 bytes.*at most 1000/);
});

test('a failed attempt with attempts left is retried after our backoff for that attempt', () => {
  for (const attempt of [1, 2]) {
    const v = decide(ending(failed(), { attempt }), limits);
    assert.ok(v.action === 'retry', `attempt ${attempt}: ${v.action}`);
    assert.equal(v.delayMs, backoffDelay(limits.backoff, attempt));
    assert.equal(v.outcome.error.message, 'boom');
  }
  const first = decide(ending(failed(), { attempt: 1 }), limits);
  const second = decide(ending(failed(), { attempt: 2 }), limits);
  assert.ok(first.action === 'retry' && second.action === 'retry');
  assert.ok(second.delayMs > first.delayMs, 'the delay grows with the attempt');
});

test('the last attempt is dead-lettered, and so is any later delivery', () => {
  for (const attempt of [3, 4, 10]) assert.equal(decide(ending(failed(), { attempt }), limits).action, 'dead-letter');
});

test('a permanent error, or an undecodable batch, is dead-lettered on its first attempt', () => {
  assert.equal(decide(ending(failed({ permanent: true })), limits).action, 'dead-letter');
  assert.equal(decide(ending(failed({ code: 'JB_UNDECODABLE' }, 'decode')), limits).action, 'dead-letter');
});

test('a timeout is the batch failing: retried, then dead-lettered', () => {
  const timedOut = failed({ code: 'JB_BATCH_TIMEOUT', name: 'TimeoutError' });
  assert.equal(decide(ending(timedOut, { interrupted: 'timeout' }), limits).action, 'retry');
  assert.equal(decide(ending(timedOut, { interrupted: 'timeout', attempt: 3 }), limits).action, 'dead-letter');
  // A batch that succeeded just as its timer fired keeps its success.
  assert.deepEqual(decide(ending(ok(), { interrupted: 'timeout' }), limits), { action: 'ack', store: false });
});

test('a handler that cannot load or construct is fatal to the job, not charged to the batch', () => {
  for (const stage of ['init', 'load'] as const) {
    const v = decide(ending(failed({ permanent: stage === 'load' }, stage), { attempt: 3 }), limits);
    assert.equal(v.action, 'fatal', stage);
  }
});

test('a shutdown hands every batch back at once, whatever its outcome', () => {
  for (const o of [ok(), ok(new Uint8Array(10)), failed(), failed({ permanent: true }), failed({}, 'init')]) {
    assert.deepEqual(decide(ending(o, { interrupted: 'shutdown', attempt: 3 }), limits), { action: 'release', redeliver: true });
  }
});

test('a stopped job releases its batches without redelivery (its queue is purged)', () => {
  for (const o of [ok(), failed(), failed({ permanent: true })]) {
    assert.deepEqual(decide(ending(o, { interrupted: 'stopped', attempt: 3 }), limits), { action: 'release', redeliver: false });
  }
});

test('batches of a grouped task whose thread died go back uncharged, even on their last attempt', () => {
  const died = failed({ code: 'JB_WORKER_DIED' });
  for (const interrupted of [null, 'timeout', 'stopped', 'shutdown'] as const) {
    assert.deepEqual(decide(ending(died, { sharedDeath: true, attempt: 3, interrupted }), limits), { action: 'release', redeliver: true }, String(interrupted));
  }
});
