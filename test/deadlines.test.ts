/**
 * Deadlines (pure logic, real timers): a worker thread's batch timeouts on one timer. Checks that something has not
 * fired yet are made well before its deadline (hundreds of ms), so a loaded machine's late timers cannot fail them.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Deadlines } from '../src/worker/deadlines.js';

/** Waits until `done()` holds, polling every 10 ms, for at most 5 s. */
async function until(done: () => boolean): Promise<void> {
  const deadline = performance.now() + 5000;
  while (!done()) {
    if (performance.now() > deadline) throw new Error('timed out waiting');
    await sleep(10);
  }
}

describe('Deadlines', () => {
  test('expires at its time, not before, and only once', async () => {
    const d = new Deadlines();
    const fired: number[] = [];
    const t0 = performance.now();
    d.start(300, () => fired.push(performance.now() - t0));
    await sleep(50);
    assert.deepEqual(fired, []);
    await until(() => fired.length > 0);
    assert.ok(fired[0]! >= 299, `fired after ${fired[0]} ms`);
    await sleep(100);
    assert.equal(fired.length, 1);
    assert.equal(d.size, 0);
  });

  test('a cleared deadline never expires; the others do, each at its own time', async () => {
    const d = new Deadlines();
    const fired: string[] = [];
    const a = d.start(100, () => fired.push('a'));
    d.start(600, () => fired.push('b'));
    d.start(200, () => fired.push('c'));
    d.clear(a);
    await until(() => fired.length === 2);
    assert.deepEqual(fired, ['c', 'b']);
    assert.equal(d.size, 0);
  });

  test('an earlier deadline started after a later one still fires on time', async () => {
    const d = new Deadlines();
    const fired: string[] = [];
    const t0 = performance.now();
    d.start(60_000, () => fired.push('late'));
    d.start(50, () => fired.push('early'));
    await until(() => fired.length > 0);
    assert.deepEqual(fired, ['early']);
    assert.ok(performance.now() - t0 < 5000);
    assert.equal(d.size, 1);
  });

  test('extend moves the deadline from now; extending an expired one does nothing', async () => {
    const d = new Deadlines();
    const fired: number[] = [];
    const t0 = performance.now();
    const x = d.start(300, () => fired.push(performance.now() - t0));
    await sleep(100);
    d.extend(x, 600);
    await sleep(300);
    assert.deepEqual(fired, [], 'the first deadline (300 ms) passed without firing');
    await until(() => fired.length > 0);
    assert.ok(fired[0]! >= 699, `fired after ${fired[0]} ms, not 600 ms after the extension`);
    d.extend(x, 10);
    await sleep(100);
    assert.equal(fired.length, 1);
  });

  test('the timer does not keep the process alive', () => {
    const d = new Deadlines();
    d.start(60_000, () => assert.fail('must not fire'));
    // The test file's process would wait 60 s here if the timer were ref'd: ending at once is the check.
  });
});
