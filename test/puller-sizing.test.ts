/**
 * How many batches one pull asks for (pullLimit, PULL_BYTES, MAX_PULLS in src/daemon/batches/puller.ts): what the
 * outstanding pulls ask for together stays under PULL_BYTES at the batches' average size (docs/benchmarks.md: a pull of
 * hundreds of MiB got the daemon cut off as a slow consumer). Pure logic, no server.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_PULLS, PULL_BYTES, pullLimit } from '../src/daemon/batches/puller.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Batch sizes from 1 byte to 64 MiB: powers of two, their neighbours and a few odd ones. */
const SIZES = [
  ...Array.from({ length: 27 }, (_, i) => 2 ** i).flatMap((p) => [p - 1, p, p + 1]),
  3, 7, 100, 1000, 1500, 12_345, 100_000, 999_999, 5 * MiB, 8 * MiB - 1, 8 * MiB, 8 * MiB + 1, 16 * MiB, 64 * MiB,
].filter((n) => n >= 1);

test('the documented budget: 16 MiB for two outstanding pulls together', () => {
  assert.equal(PULL_BYTES, 16 * MiB);
  assert.equal(MAX_PULLS, 2);
});

test('16 KiB batches: 512 per pull, both pulls together exactly 16 MiB', () => {
  assert.equal(pullLimit(16 * KiB), 512);
  assert.equal(MAX_PULLS * 512 * 16 * KiB, PULL_BYTES);
});

test('1 MiB batches: 8 per pull', () => {
  assert.equal(pullLimit(MiB), 8);
});

test('tiny batches: many per pull, still within the budget', () => {
  assert.equal(pullLimit(128), 65_536);
  assert.equal(pullLimit(1), 8 * MiB, 'one-byte batches: a pull of 8 Mi batches is 8 MiB');
  assert.ok(MAX_PULLS * pullLimit(100) * 100 <= PULL_BYTES);
});

test('a batch as large as a pull\'s share of the budget, or larger than the whole budget, still goes one per pull', () => {
  for (const size of [PULL_BYTES / MAX_PULLS, PULL_BYTES / MAX_PULLS + 1, PULL_BYTES - 1, PULL_BYTES, PULL_BYTES + 1, 4 * PULL_BYTES, 1e12]) {
    assert.equal(pullLimit(size), 1, `${size} bytes`);
  }
  assert.equal(pullLimit(PULL_BYTES / MAX_PULLS - 1), 1, 'just under a share: two would not fit');
  assert.equal(pullLimit(PULL_BYTES / MAX_PULLS / 2), 2);
});

test('for every size: the largest whole number of batches whose MAX_PULLS pulls stay within PULL_BYTES (at least 1)', () => {
  for (const size of SIZES) {
    const n = pullLimit(size);
    assert.ok(Number.isInteger(n) && n >= 1, `${size} bytes: ${n}`);
    if (MAX_PULLS * size <= PULL_BYTES) {
      assert.ok(MAX_PULLS * n * size <= PULL_BYTES, `${size} bytes: ${MAX_PULLS} pulls of ${n} exceed the budget`);
      assert.ok(MAX_PULLS * (n + 1) * size > PULL_BYTES, `${size} bytes: ${n + 1} per pull would still fit`);
    } else {
      assert.equal(n, 1, `${size} bytes: one per pull`);
    }
  }
});

test('larger batches never get more per pull', () => {
  const sorted = [...SIZES].sort((a, b) => a - b);
  for (let i = 1; i < sorted.length; i++) {
    assert.ok(pullLimit(sorted[i]!) <= pullLimit(sorted[i - 1]!), `${sorted[i - 1]} → ${sorted[i]} bytes`);
  }
});

test('an average of zero, below one byte or negative counts as one byte (no division by zero)', () => {
  for (const avg of [0, -0, 0.5, -1, -1e9]) assert.equal(pullLimit(avg), pullLimit(1), `average ${avg}`);
  assert.ok(Number.isFinite(pullLimit(0)));
});
