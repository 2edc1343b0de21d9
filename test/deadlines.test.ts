/** Deadlines (pure logic, real timers): a worker thread's batch timeouts on one timer. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Deadlines } from '../src/worker/deadlines.js';

describe('Deadlines', () => {
  test('expires at its time, not before, and only once', async () => {
    const d = new Deadlines();
    const fired: number[] = [];
    const t0 = performance.now();
    d.start(40, () => fired.push(performance.now() - t0));
    await sleep(20);
    assert.deepEqual(fired, []);
    await sleep(60);
    assert.equal(fired.length, 1);
    assert.ok(fired[0]! >= 39, `fired after ${fired[0]} ms`);
    assert.equal(d.size, 0);
  });

  test('a cleared deadline never expires; the others still do, each at its own time', async () => {
    const d = new Deadlines();
    const fired: string[] = [];
    const a = d.start(20, () => fired.push('a'));
    d.start(50, () => fired.push('b'));
    d.start(30, () => fired.push('c'));
    d.clear(a);
    await sleep(40);
    assert.deepEqual(fired, ['c']);
    await sleep(30);
    assert.deepEqual(fired, ['c', 'b']);
  });

  test('an earlier deadline started after a later one still fires on time', async () => {
    const d = new Deadlines();
    const fired: string[] = [];
    d.start(10_000, () => fired.push('late'));
    d.start(20, () => fired.push('early'));
    await sleep(50);
    assert.deepEqual(fired, ['early']);
    assert.equal(d.size, 1);
  });

  test('extend moves the deadline from now; extending an expired one does nothing', async () => {
    const d = new Deadlines();
    const fired: number[] = [];
    const t0 = performance.now();
    const x = d.start(30, () => fired.push(performance.now() - t0));
    await sleep(20);
    d.extend(x, 40);
    await sleep(25);
    assert.deepEqual(fired, [], 'the old deadline (30 ms) passed without firing');
    await sleep(30);
    assert.equal(fired.length, 1);
    assert.ok(fired[0]! >= 59, `fired after ${fired[0]} ms`);
    d.extend(x, 10);
    await sleep(30);
    assert.equal(fired.length, 1);
  });

  test('the timer does not keep the process alive', () => {
    const d = new Deadlines();
    d.start(60_000, () => assert.fail('must not fire'));
    // node:test would wait 60 s here if the timer were ref'd; the test ending at once is the check.
  });
});
