import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseValues } from '../src/cli/read-input.js';
import { backoffDelay } from '../src/daemon/batches/backoff.js';
import { ErrorCodes, JetbatchError } from '../src/errors.js';
import type { BackoffOptions } from '../src/types.js';

function assertInvalid(text: string, ...patterns: RegExp[]): JetbatchError {
  let caught: unknown;
  try {
    parseValues(text, 'items.jsonl');
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof JetbatchError, `expected a JetbatchError, got ${String(caught)}`);
  assert.equal(caught.code, ErrorCodes.INVALID_SUBMISSION);
  assert.match(caught.message, /items\.jsonl/, 'the message should name the source');
  for (const p of patterns) assert.match(caught.message, p);
  return caught;
}

describe('parseValues', () => {
  test('a JSON array gives its elements', () => {
    assert.deepEqual(parseValues('[1, "two", {"three": 3}, null, [4]]', 'f'), [1, 'two', { three: 3 }, null, [4]]);
  });

  test('a pretty-printed JSON array over many lines, with surrounding whitespace', () => {
    const text = '\n  [\n  {"a": 1},\n  {"a": 2}\n]\n\n';
    assert.deepEqual(parseValues(text, 'f'), [{ a: 1 }, { a: 2 }]);
  });

  test('JSON Lines give one value per line', () => {
    assert.deepEqual(parseValues('{"a":1}\n{"a":2}\n"s"\n42\nnull\n', 'f'), [{ a: 1 }, { a: 2 }, 's', 42, null]);
  });

  test('JSON Lines: blank and whitespace-only lines are skipped, CRLF endings accepted', () => {
    assert.deepEqual(parseValues('{"a":1}\n\n   \n{"a":2}\r\n\t\n{"a":3}', 'f'), [{ a: 1 }, { a: 2 }, { a: 3 }]);
  });

  test('JSON Lines whose lines are arrays (one batch per line) give one array per line', () => {
    assert.deepEqual(parseValues('[1,2]\n[3]\n', 'batches.jsonl'), [[1, 2], [3]]);
  });

  test('a bad JSON line is rejected, naming its line number', () => {
    const err = assertInvalid('{"a":1}\n{"a":2}\n{"a":\n{"a":4}\n', /line 3\b/);
    assert.doesNotMatch(err.message, /line [124]\b/);
  });

  test('line numbers count blank lines in the middle', () => {
    assertInvalid('{"a":1}\n\n\n{oops}\n', /line 4\b/);
  });

  test('line numbers count leading blank lines', () => {
    assertInvalid('\n\n{"a":1}\n{oops}\n', /line 4\b/);
  });

  test('a JSON object (not an array) spread over lines is rejected', () => {
    assertInvalid('{\n  "items": [1, 2, 3]\n}\n', /line 1\b/);
  });

  test('a one-line JSON object is read as JSON Lines holding one value', () => {
    // Documents current behaviour: a single-line object is a valid one-value JSON Lines file, not a rejection.
    assert.deepEqual(parseValues('{"items": [1, 2, 3]}', 'f'), [{ items: [1, 2, 3] }]);
  });

  test('an unterminated JSON array is rejected', () => {
    assertInvalid('[1, 2,', /not valid JSON/);
  });

  test('empty and whitespace-only input is rejected', () => {
    assertInvalid('', /empty/);
    assertInvalid('  \n\n\t \n', /empty/);
  });
});

describe('backoffDelay', () => {
  const opts: BackoffOptions = { initial_ms: 100, factor: 2, max_ms: 1000, jitter: 0 };

  test('grows exponentially from initial_ms by factor per failed attempt', () => {
    const delays = [1, 2, 3, 4].map((attempt) => backoffDelay(opts, attempt, () => 0));
    assert.deepEqual(delays, [100, 200, 400, 800]);
    assert.equal(backoffDelay({ initial_ms: 50, factor: 3, max_ms: 1e9, jitter: 0 }, 4, () => 0), 1350);
  });

  test('factor 1 keeps a constant delay', () => {
    const o: BackoffOptions = { initial_ms: 250, factor: 1, max_ms: 10_000, jitter: 0 };
    assert.deepEqual([1, 5, 50].map((a) => backoffDelay(o, a, () => 0)), [250, 250, 250]);
  });

  test('is capped at max_ms, also for huge attempt counts', () => {
    assert.equal(backoffDelay(opts, 5, () => 0), 1000);
    assert.equal(backoffDelay(opts, 50, () => 0), 1000);
    assert.equal(backoffDelay(opts, 5000, () => 0), 1000);
    assert.equal(backoffDelay({ initial_ms: 5000, factor: 2, max_ms: 1000, jitter: 0 }, 1, () => 0), 1000);
  });

  test('attempt 0 or below is treated as the first attempt', () => {
    assert.equal(backoffDelay(opts, 0, () => 0), 100);
    assert.equal(backoffDelay(opts, -3, () => 0), 100);
  });

  test('jitter subtracts up to jitter × delay, driven by the injected random function', () => {
    const j: BackoffOptions = { initial_ms: 1000, factor: 2, max_ms: 60_000, jitter: 0.2 };
    assert.equal(backoffDelay(j, 1, () => 0), 1000);
    assert.equal(backoffDelay(j, 1, () => 0.5), 900);
    assert.equal(backoffDelay(j, 1, () => 0.999999), 800);
    assert.equal(backoffDelay(j, 3, () => 0.5), 3600);
    // Jitter applies after the cap.
    assert.equal(backoffDelay(j, 20, () => 0.5), 54_000);
  });

  test('jittered delays stay within [delay × (1 − jitter), delay]', () => {
    const j: BackoffOptions = { initial_ms: 300, factor: 1.5, max_ms: 5000, jitter: 0.3 };
    let seed = 12345;
    const lcg = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let attempt = 1; attempt <= 12; attempt++) {
      const full = Math.min(5000, 300 * 1.5 ** (attempt - 1));
      for (let k = 0; k < 50; k++) {
        const d = backoffDelay(j, attempt, lcg);
        assert.ok(Number.isInteger(d), `delay ${d} is not whole milliseconds`);
        assert.ok(d <= Math.round(full), `attempt ${attempt}: ${d} > ${full}`);
        assert.ok(d >= Math.round(full * 0.7), `attempt ${attempt}: ${d} < ${full * 0.7}`);
      }
    }
  });

  test('full jitter (1) can go down to zero but never below', () => {
    const j: BackoffOptions = { initial_ms: 400, factor: 2, max_ms: 10_000, jitter: 1 };
    assert.equal(backoffDelay(j, 1, () => 0.999999999), 0);
    assert.equal(backoffDelay(j, 2, () => 0.25), 600);
  });

  test('jitter 0 ignores randomness entirely', () => {
    assert.equal(backoffDelay(opts, 2, () => 0.9), 200);
    // With jitter 0 the random value only multiplies zero; any value gives the same delay.
    assert.equal(backoffDelay(opts, 2, () => 0.1), 200);
  });
});
