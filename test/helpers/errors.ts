/** Asserting on the errors jetbatch raises on purpose. */
import assert from 'node:assert/strict';
import { JetbatchError, type ErrorCode } from '../../src/errors.js';

/** Asserts `fn` throws a JetbatchError with `code` whose message matches every pattern; returns it. */
export function assertRejects(fn: () => unknown, code: ErrorCode, ...patterns: RegExp[]): JetbatchError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof JetbatchError, `expected a JetbatchError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  for (const p of patterns) assert.match(caught.message, p);
  return caught;
}
