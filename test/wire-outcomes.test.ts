import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Outcome } from '../src/worker/thread-protocol.js';
import { packOutcomes, unpackOutcomes } from '../src/worker/wire-outcomes.js';

const plain: Outcome = { ok: true, durationMs: 1.25, result: null };
const withResult: Outcome = { ok: true, durationMs: 2, result: new Uint8Array([0x93, 1, 2, 3]) };
const constructed: Outcome = { ok: true, durationMs: 3, result: null, initMs: 40 };
const failed: Outcome = { ok: false, durationMs: 4, stage: 'batch', error: { name: 'Error', code: 'JB_HANDLER_FAILED', message: 'boom', permanent: false } };

test('a plain success travels as its duration; every other outcome as itself', () => {
  const wire = packOutcomes([plain, withResult, constructed, failed, { ...plain, durationMs: 0 }]);
  assert.deepEqual(wire, [1.25, withResult, constructed, failed, 0]);
});

test('outcomes come back as they left, through a structured clone (what postMessage does)', () => {
  const outcomes = [plain, failed, withResult, plain, constructed];
  assert.deepEqual(unpackOutcomes(structuredClone(packOutcomes(outcomes))), outcomes);
  assert.deepEqual(unpackOutcomes(packOutcomes([])), []);
});
