/** A batch's abort whose signal is made only when read (worker/batch-abort.ts): pure logic. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BatchAbort } from '../src/worker/batch-abort.js';

test('a signal read before the abort fires with the reason; one read after is born aborted with it', () => {
  const early = new BatchAbort();
  const signal = early.signal;
  let fired: unknown;
  signal.addEventListener('abort', () => (fired = signal.reason));
  const reason = new Error('timeout');
  early.abort(reason);
  early.abort(new Error('second'));
  assert.equal(fired, reason);
  assert.equal(early.reason, reason, 'the first reason stays');

  const late = new BatchAbort();
  assert.equal(late.aborted, false);
  late.abort(reason);
  assert.equal(late.aborted, true);
  assert.equal(late.signal.aborted, true);
  assert.equal(late.signal.reason, reason);
  assert.equal(late.signal, late.signal, 'one signal, made once');
});
