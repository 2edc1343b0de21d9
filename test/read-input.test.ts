import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseValues } from '../src/cli/read-input.js';
import { ErrorCodes, JetbatchError } from '../src/errors.js';

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
