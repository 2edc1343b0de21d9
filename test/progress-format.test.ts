/** The progress display's rate (batches/s over a recent window) and ETA: pure formatting, no server. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RATE_WINDOW_MS, RateMeter, formatSeconds, rateOf, throughputText } from '../src/cli/throughput.js';

describe('progress: rate and ETA', () => {
  test('rate and ETA text', () => {
    assert.equal(throughputText(12.5, 100), '12.5 batches/s  ETA 8s');
    assert.equal(throughputText(2, 130), '2.00 batches/s  ETA 1m 05s');
    assert.equal(throughputText(250, 1_000_000), '250 batches/s  ETA 1h 06m');
    assert.equal(throughputText(0.5, 3), '0.50 batches/s  ETA 6s');
  });

  test('unknown or zero rate: no ETA while work is left; ETA 0s when nothing is left', () => {
    assert.equal(throughputText(null, 10), '- batches/s  ETA -');
    assert.equal(throughputText(0, 10), '0.00 batches/s  ETA -');
    assert.equal(throughputText(null, 0), '- batches/s  ETA 0s');
  });

  test('durations for people', () => {
    assert.equal(formatSeconds(0.2), '1s');
    assert.equal(formatSeconds(59), '59s');
    assert.equal(formatSeconds(60), '1m 00s');
    assert.equal(formatSeconds(3 * 3600 + 4 * 60), '3h 04m');
    assert.equal(formatSeconds(3 * 86_400 + 5 * 3600), '3d 5h');
  });

  test('the rate comes from the samples, null before two samples at different times', () => {
    assert.equal(rateOf([]), null);
    assert.equal(rateOf([{ atMs: 0, done: 0 }]), null);
    assert.equal(rateOf([{ atMs: 0, done: 0 }, { atMs: 0, done: 5 }]), null);
    assert.equal(rateOf([{ atMs: 1000, done: 10 }, { atMs: 3000, done: 30 }]), 10);
  });

  test('the meter forgets samples older than its window: after a stall the rate drops to what happens now', () => {
    const meter = new RateMeter();
    for (let t = 0; t <= 10_000; t += 1000) meter.add({ atMs: t, done: t / 100 }); // 10 batches/s
    assert.equal(meter.rate(), 10);
    const stallEnd = 10_000 + RATE_WINDOW_MS * 2;
    for (let t = 11_000; t <= stallEnd; t += 1000) meter.add({ atMs: t, done: 100 }); // nothing finishes
    assert.equal(meter.rate(), 0);
  });
});
