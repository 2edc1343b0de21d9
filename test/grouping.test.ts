/**
 * How a burst of received batches is split into Piscina tasks (groupSize, splitBurst, MAX_GROUP, SINGLES_AFTER_CRASH
 * in src/daemon/batches/grouping.ts): one batch per task while the burst fits the lanes, groups for a backlog, singly
 * for a while after a grouped task died, a large batch always alone. Pure logic, no server.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MOVE_MIN_BYTES } from '../src/daemon/batches/body.js';
import { MAX_GROUP, SINGLES_AFTER_CRASH, groupSize, splitBurst } from '../src/daemon/batches/grouping.js';

/** A burst of `n` batches of `bytes` each, numbered in order. */
function burstOf(n: number, bytes = 128): Array<{ bytes: number; i: number }> {
  return Array.from({ length: n }, (_, i) => ({ bytes, i }));
}

/** The sizes of the tasks the job runner makes of a burst of `burst` small batches. */
function tasks(burst: number, lanes: number, singly: boolean): number[] {
  return splitBurst(burstOf(burst), lanes, singly).map((t) => t.length);
}

const LANES = [1, 2, 3, 4, 7, 8, 16];

test('the documented limits: tasks of up to 64 batches; the next 256 tasks single after a grouped task dies', () => {
  // docs/benchmarks.md ("grouped tasks of up to 64 batches"), docs/failure-semantics.md ("the job's next 256 tasks").
  assert.equal(MAX_GROUP, 64);
  assert.equal(SINGLES_AFTER_CRASH, 256);
});

test('a burst no larger than the lanes goes one batch per task, so every lane gets work', () => {
  for (const lanes of LANES) {
    for (let burst = 1; burst <= lanes; burst++) assert.equal(groupSize(burst, lanes, false), 1, `${burst} batches on ${lanes} lanes`);
  }
});

test('a backlog is spread over the lanes: no more tasks than lanes, with as few batches per task as that allows', () => {
  for (const lanes of LANES) {
    for (let burst = lanes + 1; burst <= lanes * MAX_GROUP; burst++) {
      const size = groupSize(burst, lanes, false);
      const where = `${burst} batches on ${lanes} lanes: groups of ${size}`;
      assert.ok(size > 1, `${where}: grouped`);
      assert.ok(tasks(burst, lanes, false).length <= lanes, `${where}: more tasks than lanes`);
      assert.ok(Math.ceil(burst / (size - 1)) > lanes, `${where}: groups of ${size - 1} would do`);
    }
  }
});

test('examples on 8 lanes: 9 batches go in 5 tasks of 2 (the last 1), 64 in 8 of 8, 512 in 8 of 64', () => {
  assert.deepEqual(tasks(9, 8, false), [2, 2, 2, 2, 1]);
  assert.deepEqual(tasks(64, 8, false), Array(8).fill(8));
  assert.deepEqual(tasks(512, 8, false), Array(8).fill(64));
});

test('never more than MAX_GROUP batches in a task, however large the backlog', () => {
  for (const lanes of LANES) {
    for (const burst of [lanes * MAX_GROUP + 1, lanes * MAX_GROUP * 3 + 5, 10_000, 1_000_000]) {
      assert.equal(groupSize(burst, lanes, false), MAX_GROUP, `${burst} batches on ${lanes} lanes`);
      assert.ok(tasks(burst, lanes, false).length > lanes, 'then there are more tasks than lanes');
    }
  }
});

test('the tasks of a burst cover it exactly, each of 1 to MAX_GROUP batches, all of one size but the last', () => {
  for (const lanes of LANES) {
    for (const burst of [...Array.from({ length: 300 }, (_, i) => i + 1), 1000, 4097, 65_537]) {
      for (const singly of [false, true]) {
        const t = tasks(burst, lanes, singly);
        const where = `${burst} batches on ${lanes} lanes${singly ? ', singly' : ''}`;
        assert.equal(t.reduce((a, b) => a + b, 0), burst, `${where}: covered`);
        assert.ok(t.every((n) => n >= 1 && n <= MAX_GROUP), `${where}: sizes ${t.join(',')}`);
        assert.ok(t.slice(0, -1).every((n) => n === t[0]), `${where}: even groups`);
      }
    }
  }
});

test('singly (after a grouped task died): one batch per task, whatever the burst and the lanes', () => {
  for (const lanes of [1, 4, 64]) {
    for (const burst of [1, 2, 65, 5000]) assert.equal(groupSize(burst, lanes, true), 1, `${burst} batches on ${lanes} lanes`);
  }
  assert.equal(tasks(300, 4, true).length, 300);
});

test('an empty burst gives a size of 1; lanes below one count as one lane', () => {
  assert.equal(groupSize(0, 4, false), 1);
  assert.equal(groupSize(-3, 4, false), 1);
  for (const lanes of [0, -2]) {
    assert.equal(groupSize(1, lanes, false), 1, `1 batch, ${lanes} lanes`);
    assert.equal(groupSize(10, lanes, false), groupSize(10, 1, false), `10 batches, ${lanes} lanes`);
    assert.equal(groupSize(10, lanes, false), 10, 'one lane: the burst in one task');
    assert.equal(groupSize(200, lanes, false), MAX_GROUP);
  }
});

test('a batch large enough to be moved goes alone; the small ones around it keep their groups, in order', () => {
  const sizes = [100, MOVE_MIN_BYTES, 100, 100, MOVE_MIN_BYTES - 1, 5 * MOVE_MIN_BYTES, 100, 100, 100, 100];
  const burst = sizes.map((bytes, i) => ({ bytes, i }));
  const out = splitBurst(burst, 2, false);
  // 10 batches on 2 lanes: groups of 5; the two large ones (1 and 5) each in a task of their own.
  assert.deepEqual(out.map((t) => t.map((b) => b.i)), [[1], [5], [0, 2, 3, 4, 6], [7, 8, 9]]);
  assert.deepEqual(out.flat().map((b) => b.i).sort((a, b) => a - b), burst.map((b) => b.i), 'every batch in exactly one task');
});

test('a burst of large batches only: one task each, grouped or not', () => {
  for (const singly of [false, true]) {
    const out = splitBurst(burstOf(40, MOVE_MIN_BYTES), 2, singly);
    assert.equal(out.length, 40);
    assert.ok(out.every((t) => t.length === 1));
  }
});
