/** TaskGate (pure logic): the order in which a pool's tasks reach its threads. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TaskGate } from '../src/daemon/pools/task-gate.js';

/** Enters and records the name once admitted (or `name!` when refused). */
function enterAs(gate: TaskGate, order: string[], name: string, priority: number, signal?: AbortSignal): Promise<boolean> {
  return Promise.resolve(gate.enter(priority, signal)).then((ok) => {
    order.push(ok ? name : `${name}!`);
    return ok;
  });
}

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('TaskGate', () => {
  test('takes up to its places at once, without waiting', () => {
    const gate = new TaskGate(2);
    assert.equal(gate.enter(0), true);
    assert.equal(gate.enter(0), true);
    assert.ok(gate.enter(0) instanceof Promise, 'the third waits');
    assert.equal(gate.waiting, 1);
  });

  test('a freed place goes to the highest priority waiting, then to the first come; a later task never overtakes', async () => {
    const gate = new TaskGate(1);
    const order: string[] = [];
    assert.equal(gate.enter(0), true);
    const waits = [enterAs(gate, order, 'low-1', 0), enterAs(gate, order, 'low-2', 0), enterAs(gate, order, 'high', 10), enterAs(gate, order, 'low-3', 0), enterAs(gate, order, 'mid', 5)];
    for (let i = 0; i < 5; i++) {
      gate.leave();
      await settle();
      // A task that arrives while others wait goes behind them, even at the moment a place is handed over.
      if (i === 0) waits.push(enterAs(gate, order, 'low-4', 0));
    }
    gate.leave();
    await Promise.all(waits);
    assert.deepEqual(order, ['high', 'mid', 'low-1', 'low-2', 'low-3', 'low-4']);
  });

  test('a task aborted while waiting takes no place and is answered false; the next waiter gets the place', async () => {
    const gate = new TaskGate(1);
    const order: string[] = [];
    assert.equal(gate.enter(0), true);
    const ac = new AbortController();
    const a = enterAs(gate, order, 'a', 0, ac.signal);
    const b = enterAs(gate, order, 'b', 0);
    ac.abort();
    assert.equal(await a, false);
    assert.equal(gate.waiting, 1);
    gate.leave();
    assert.equal(await b, true);
    assert.deepEqual(order, ['a!', 'b']);
    // b holds the only place: the next one waits.
    assert.ok(gate.enter(0) instanceof Promise);
  });

  test('an already aborted signal is refused at once; leave() with nobody waiting frees the place', () => {
    const gate = new TaskGate(1);
    const ac = new AbortController();
    ac.abort();
    assert.equal(gate.enter(0, ac.signal), false);
    assert.equal(gate.enter(0), true);
    gate.leave();
    assert.equal(gate.enter(0), true, 'the place was given back');
  });

  test('free: a place is free and nobody waits for one (the job runner then hands a burst over at once)', async () => {
    const gate = new TaskGate(2);
    assert.equal(gate.free, true);
    assert.equal(gate.enter(0), true);
    assert.equal(gate.free, true, 'one of two places taken');
    assert.equal(gate.enter(0), true);
    assert.equal(gate.free, false, 'both taken');
    const waiting = gate.enter(0);
    gate.leave();
    // The freed place went to the waiter, not back to the gate.
    assert.equal(gate.free, false);
    assert.equal(await waiting, true);
    gate.leave();
    assert.equal(gate.free, true);
  });
});
