/** Duration strings and numbers of the configuration (src/util/duration.ts). */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDuration } from '../src/util/duration.js';

describe('parseDuration', () => {
  test('units', () => {
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('30s'), 30_000);
    assert.equal(parseDuration('5m'), 300_000);
    assert.equal(parseDuration('2h'), 7_200_000);
    assert.equal(parseDuration('1d'), 86_400_000);
  });

  test('no unit means seconds; decimals and surrounding spaces are accepted', () => {
    assert.equal(parseDuration('30'), 30_000);
    assert.equal(parseDuration('1.5s'), 1500);
    assert.equal(parseDuration('0.5m'), 30_000);
    assert.equal(parseDuration(' 10 s '), 10_000);
    assert.equal(parseDuration('0'), 0);
  });

  test('numbers are seconds, rounded to whole milliseconds', () => {
    assert.equal(parseDuration(30), 30_000);
    assert.equal(parseDuration(0.25), 250);
    assert.equal(parseDuration(0.0004), 0);
    assert.equal(parseDuration(0), 0);
  });

  test('rejects malformed strings and bad numbers with TypeError', () => {
    for (const bad of ['', 'abc', '30 parsecs', '-5s', '5 minutes', '1e3s', '5S', 's', '1.s', '10ms5']) {
      assert.throws(() => parseDuration(bad), TypeError, `expected "${bad}" to be rejected`);
    }
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => parseDuration(bad), TypeError, `expected ${bad} to be rejected`);
    }
    assert.throws(() => parseDuration('30 parsecs'), /30 parsecs/);
  });
});
