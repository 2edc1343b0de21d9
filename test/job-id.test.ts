import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCodes, type ErrorCode } from '../src/errors.js';
import { JOB_ID_PATTERN } from '../src/fleet/protocol.js';
import { checkJobId, prepareSubmission } from '../src/fleet/submission.js';
import { assertRejects } from './helpers/errors.js';

/** The message of the JetbatchError `fn` throws, after checking its code (checkJobId: JB_INVALID_REQUEST). */
const invalidMessage = (fn: () => unknown, code: ErrorCode = ErrorCodes.INVALID_REQUEST): string => assertRejects(fn, code).message;

describe('checkJobId: the job-id check of client methods (JB_INVALID_REQUEST); a submission’s job_id follows the same rule', () => {
  test('returns a valid id as given', () => {
    for (const id of ['a', 'A-b_9', 'x'.repeat(64), '0001a2b3c4d5e6f7']) assert.equal(checkJobId(id), id);
  });

  test('a malformed id names job_id, the rule and the value given (cut to 80 characters)', () => {
    for (const id of ['', 'a.b', 'a*', '>', 'a b', 'x'.repeat(65)]) {
      const message = invalidMessage(() => checkJobId(id));
      assert.ok(message.startsWith('job_id: '), message);
      assert.ok(message.includes(JOB_ID_PATTERN.source), message);
      assert.ok(message.includes(`"${id.slice(0, 80)}"`), message);
    }
    const long = invalidMessage(() => checkJobId('y'.repeat(500)));
    assert.ok(long.includes(`"${'y'.repeat(80)}"`) && !long.includes('y'.repeat(81)), long);
  });

  test('a value that is not a string names its type', () => {
    for (const [value, given] of [[undefined, 'undefined'], [null, 'null'], [42, 'number'], [{}, 'object'], [['a'], 'object']] as const) {
      const message = invalidMessage(() => checkJobId(value));
      assert.match(message, /^job_id: must be a string matching /);
      assert.ok(message.endsWith(`got ${given}`), message);
    }
  });

  test('a submission applies the same rule to its job_id, as JB_INVALID_SUBMISSION', () => {
    const limits = { maxBatchBytes: 1_000_000, maxBatches: 10 };
    for (const id of ['a.b', 'x'.repeat(65), '']) {
      assert.match(invalidMessage(() => prepareSubmission({ api_name: 'echo', job_id: id, items: [1], batch_size: 1 }, limits), ErrorCodes.INVALID_SUBMISSION), /job_id/);
    }
    assert.equal(prepareSubmission({ api_name: 'echo', job_id: 'x'.repeat(64), items: [1], batch_size: 1 }, limits).job_id, 'x'.repeat(64));
  });
});
