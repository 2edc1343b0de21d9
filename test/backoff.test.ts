import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay } from '../src/daemon/batches/backoff.js';
import type { BackoffOptions } from '../src/types.js';

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
