/**
 * Slots (src/daemon/pools/slots.ts): the local capacity of one API pool, shared first-come first-served by its jobs.
 * Capacity = lanes + a prefetch sized from a moving average of batch durations (about 50 ms of queued work, between one
 * batch per lane and 512). Pure logic, no server.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Slots } from '../src/daemon/pools/slots.js';

const never = new AbortController().signal;

/**
 * Lets every pending promise continuation run. Slots has no timers: whatever a release, an observation or an abort
 * can cause has happened once this resolves, so "still waiting" after it is a fact, not a guess about time.
 */
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

interface Tracked {
  done: boolean;
  value: number | undefined;
}

/** A reserve() in progress whose outcome the test can read without awaiting it. */
function track(p: Promise<number>): Tracked {
  const t: Tracked = { done: false, value: undefined };
  void p.then((v) => {
    t.done = true;
    t.value = v;
  });
  return t;
}

/** Queued work the prefetch aims at: what the lanes finish in this many milliseconds. */
const TARGET_MS = 50;
const MAX_PREFETCH = 512;

describe('Slots: capacity and adaptive prefetch', () => {
  test('starts with one prefetched batch per lane: capacity twice the lanes, all free', () => {
    const s = new Slots(4);
    assert.deepEqual([s.lanes, s.capacity, s.used, s.free], [4, 8, 0, 8]);
  });

  test('the prefetch is about what the lanes finish in 50 ms, between one batch per lane and 512', () => {
    const lanes = 4;
    for (const ms of [0.05, 0.2, 0.39, 0.4, 0.5, 1, 2, 3, 5, 7, 10, 13, 25, 40, 49, 50, 51, 200, 10_000]) {
      const s = new Slots(lanes);
      s.observe(ms);
      const prefetch = s.capacity - lanes;
      const covering = (lanes * TARGET_MS) / ms; // batches the lanes finish in 50 ms
      if (covering <= lanes) assert.equal(prefetch, lanes, `${ms} ms batches: one queued per lane`);
      else if (covering >= MAX_PREFETCH) assert.equal(prefetch, MAX_PREFETCH, `${ms} ms batches: capped at 512`);
      else assert.ok(Math.abs(prefetch - covering) <= 0.5, `${ms} ms batches: prefetch ${prefetch}, about ${covering}`);
      assert.equal(s.free, s.capacity, 'nothing used');
    }
  });

  test('examples: 10 ms batches on 4 lanes queue 20; 50 ms or longer one per lane; instant ones 512', () => {
    const s = new Slots(4);
    s.observe(10);
    assert.equal(s.capacity, 4 + 20, 'each lane runs 5 batches of 10 ms in 50 ms');
    const long = new Slots(4);
    long.observe(50);
    assert.equal(long.capacity, 8);
    long.observe(60_000);
    assert.equal(long.capacity, 8, 'never less than one queued per lane');
    const instant = new Slots(4);
    instant.observe(0);
    assert.equal(instant.capacity, 4 + MAX_PREFETCH, 'a 0 ms average does not divide by zero');
  });

  test('the first duration sets the average; each later one moves it a tenth of the way', () => {
    const s = new Slots(4);
    s.observe(10);
    assert.equal(s.capacity, 4 + 20);
    s.observe(20); // average 11 ms: 200 / 11 ≈ 18.2 (a last-value rule would give 10, a plain mean 13)
    assert.equal(s.capacity, 4 + 18);
    s.observe(1000); // average 109.9 ms: one slow batch, and the prefetch is down to one per lane
    assert.equal(s.capacity, 8);
    for (let i = 0; i < 200; i++) s.observe(5);
    assert.equal(s.capacity, 4 + 40, 'converges on a steady duration (5 ms: 40 queued)');
  });

  test('durations that are not finite or are negative are ignored', () => {
    const s = new Slots(4);
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -1, -0.001]) s.observe(bad);
    assert.equal(s.capacity, 8, 'capacity unchanged');
    s.observe(10);
    assert.equal(s.capacity, 24, 'the next valid duration is still the first of the average');
    s.observe(Number.NaN);
    s.observe(-5);
    assert.equal(s.capacity, 24, 'the average unchanged');
  });
});

describe('Slots: reserve', () => {
  test('takes up to max at once when enough is free', async () => {
    const s = new Slots(2); // capacity 4
    assert.equal(await s.reserve(3, never), 3);
    assert.deepEqual([s.used, s.free], [3, 1]);
  });

  test('a max larger than what is free takes everything free, once half the capacity is', async () => {
    const s = new Slots(2);
    assert.equal(await s.reserve(10, never), 4);
    assert.deepEqual([s.used, s.free], [4, 0]);
  });

  test('a request no larger than what is free is served at once, even below half the capacity', async () => {
    const s = new Slots(4); // capacity 8
    assert.equal(await s.reserve(7, never), 7);
    assert.equal(await s.reserve(1, never), 1, 'min(max, half the capacity) = 1 is free');
    assert.equal(s.free, 0);
  });

  test('a max of zero or less takes nothing', async () => {
    const s = new Slots(2);
    assert.equal(await s.reserve(0, never), 0);
    assert.equal(await s.reserve(-3, never), 0);
    assert.equal(s.used, 0);
  });

  test('waits until half the capacity is free (refilling in halves), then takes up to max', async () => {
    const s = new Slots(4); // capacity 8
    assert.equal(await s.reserve(8, never), 8);
    const w = track(s.reserve(8, never));
    await settle();
    assert.equal(w.done, false, 'nothing free');
    s.release(3);
    await settle();
    assert.equal(w.done, false, '3 of 8 free: less than half');
    s.release(1);
    await settle();
    assert.deepEqual(w, { done: true, value: 4 }, 'half free: takes the 4 free');
    assert.deepEqual([s.used, s.free], [8, 0]);
  });

  test('waiters are served first come, first served', async () => {
    const s = new Slots(2); // capacity 4
    await s.reserve(4, never);
    const a = track(s.reserve(2, never));
    const b = track(s.reserve(2, never));
    await settle();
    s.release(2);
    await settle();
    assert.deepEqual(a, { done: true, value: 2 }, 'the first waiter');
    assert.equal(b.done, false, 'the second waits for the next release');
    s.release(2);
    await settle();
    assert.deepEqual(b, { done: true, value: 2 });
    assert.equal(s.used, 4);
  });

  test('a newcomer does not jump the queue, even when what it asks for is free', async () => {
    const s = new Slots(2); // capacity 4
    await s.reserve(3, never); // 1 free
    const a = track(s.reserve(2, never)); // needs 2
    const c = track(s.reserve(1, never)); // 1 would do, but a came first
    await settle();
    assert.deepEqual([a.done, c.done], [false, false]);
    s.release(1);
    await settle();
    assert.deepEqual(a, { done: true, value: 2 });
    assert.equal(c.done, false, 'nothing left for c');
    s.release(2);
    await settle();
    assert.deepEqual(c, { done: true, value: 1 });
    assert.equal(s.used, 3);
  });

  test('an already aborted signal gets nothing, even with every slot free', async () => {
    const s = new Slots(2);
    const ac = new AbortController();
    ac.abort();
    assert.equal(await s.reserve(2, ac.signal), 0);
    assert.equal(s.used, 0);
  });

  test('an abort while waiting resolves 0 and leaves the queue (no ghost ahead of later requests)', async () => {
    const s = new Slots(2); // capacity 4
    await s.reserve(4, never);
    const ac = new AbortController();
    const a = track(s.reserve(2, ac.signal));
    await settle();
    ac.abort();
    await settle();
    assert.deepEqual(a, { done: true, value: 0 });
    assert.equal(s.used, 4, 'an aborted reserve takes nothing');
    s.release(4);
    assert.equal(await s.reserve(2, never), 2, 'served at once: the aborted waiter is not in the queue');
  });

  test('aborting a waiter behind another removes only that one', async () => {
    const s = new Slots(2);
    await s.reserve(4, never);
    const a = track(s.reserve(2, never));
    const ac = new AbortController();
    const b = track(s.reserve(2, ac.signal));
    await settle();
    ac.abort();
    await settle();
    assert.deepEqual(b, { done: true, value: 0 });
    assert.equal(a.done, false);
    s.release(2);
    await settle();
    assert.deepEqual(a, { done: true, value: 2 });
  });

  test('capacity growing while every slot is used wakes the first waiter', async () => {
    const s = new Slots(2); // capacity 4
    await s.reserve(4, never);
    const w = track(s.reserve(1, never));
    await settle();
    assert.equal(w.done, false);
    s.observe(10); // 2 lanes × 5 batches of 10 ms: capacity 2 + 10
    await settle();
    assert.equal(s.capacity, 12);
    assert.deepEqual(w, { done: true, value: 1 });
  });

  test('a waiter woken by a capacity change that is still not enough waits on', async () => {
    const s = new Slots(4); // capacity 8
    await s.reserve(8, never);
    const w = track(s.reserve(4, never)); // waits for 4 free
    await settle();
    s.observe(40); // 4 × 50 / 40 = 5 queued: capacity 9, 1 free
    await settle();
    assert.deepEqual([s.capacity, s.free], [9, 1]);
    assert.equal(w.done, false, 'woken, 1 free of the 4 it waits for: back to waiting');
    s.release(4);
    await settle();
    assert.deepEqual(w, { done: true, value: 4 });
  });

  test('capacity shrinking below the slots in use: nothing is served until half the new capacity is free', async () => {
    const s = new Slots(2);
    s.observe(1); // 2 × 50 / 1 = 100 queued: capacity 102
    assert.equal(await s.reserve(102, never), 102);
    s.observe(1_000_000); // the average jumps to ~100 s: one queued per lane, capacity 4
    assert.deepEqual([s.capacity, s.used, s.free], [4, 102, -98]);
    const w = track(s.reserve(2, never));
    s.release(99);
    await settle();
    assert.equal(w.done, false, '1 of 4 free');
    s.release(1);
    await settle();
    assert.deepEqual(w, { done: true, value: 2 });
  });
});

describe('Slots: release', () => {
  test('returns slots; a release of zero or less returns nothing', async () => {
    const s = new Slots(2);
    await s.reserve(3, never);
    s.release(0);
    s.release(-2);
    assert.equal(s.used, 3);
    s.release(2);
    assert.deepEqual([s.used, s.free], [1, 3]);
  });

  test('releasing more than is used clamps at zero, and the pool stays usable', async () => {
    const s = new Slots(2);
    await s.reserve(3, never);
    s.release(10);
    assert.deepEqual([s.used, s.free], [0, 4]);
    assert.equal(await s.reserve(4, never), 4);
    assert.equal(s.free, 0);
  });

  test('an over-release wakes a waiter like any other release', async () => {
    const s = new Slots(2);
    await s.reserve(4, never);
    const w = track(s.reserve(4, never));
    await settle();
    s.release(100);
    await settle();
    assert.deepEqual(w, { done: true, value: 4 });
    assert.equal(s.used, 4);
  });
});

describe('Slots: waiters are never stranded', () => {
  test('a waiter whose signal aborts right after a release still gets its slots, and the next waiter is served (it was stranded: a hang)', async () => {
    const s = new Slots(2); // capacity 4
    await s.reserve(4, never);
    const ac = new AbortController();
    const a = track(s.reserve(2, ac.signal));
    const b = track(s.reserve(2, never));
    await settle();
    // The release hands the slots over at once; an abort before the waiter resumes cannot strand the one behind it.
    s.release(4);
    ac.abort();
    await settle();
    assert.deepEqual(a, { done: true, value: 2 }, 'served by the release, before the abort: the caller gives them back');
    assert.deepEqual(b, { done: true, value: 2 });
    assert.equal(s.used, 4);
  });

  test('a waiter that aborts before any release leaves the queue and takes nothing', async () => {
    const s = new Slots(2); // capacity 4
    await s.reserve(4, never);
    const ac = new AbortController();
    const a = track(s.reserve(2, ac.signal));
    const b = track(s.reserve(2, never));
    await settle();
    ac.abort();
    s.release(4);
    await settle();
    assert.deepEqual(a, { done: true, value: 0 });
    assert.deepEqual(b, { done: true, value: 2 });
    assert.equal(s.used, 2);
  });

  test('the first waiter aborting while others wait behind it serves them from what is free', async () => {
    const s = new Slots(2); // capacity 4
    await s.reserve(3, never); // 1 free
    const ac = new AbortController();
    const a = track(s.reserve(4, ac.signal)); // needs 2
    const b = track(s.reserve(1, never)); // 1 would do, behind a
    await settle();
    assert.equal(b.done, false);
    ac.abort();
    await settle();
    assert.deepEqual(b, { done: true, value: 1 }, 'served once the waiter ahead of it is gone');
  });

  test('one release serves every waiter whose turn it is, not only the first', async () => {
    const s = new Slots(4); // capacity 8
    await s.reserve(8, never);
    const a = track(s.reserve(2, never));
    const b = track(s.reserve(2, never));
    const c = track(s.reserve(4, never));
    await settle();
    s.release(5);
    await settle();
    assert.deepEqual([a, b], [{ done: true, value: 2 }, { done: true, value: 2 }]);
    assert.equal(c.done, false, '1 free: c needs 4');
    s.release(3);
    await settle();
    assert.deepEqual(c, { done: true, value: 4 });
  });

  test('a waiter for fewer slots than half the capacity is served as soon as that many are free', async () => {
    const s = new Slots(4); // capacity 8
    await s.reserve(8, never);
    const w = track(s.reserve(1, never));
    await settle();
    s.release(1);
    await settle();
    assert.deepEqual(w, { done: true, value: 1 }, 'min(max, half the capacity) = 1');
  });

  test('capacity growing serves a waiter that some free slots did not satisfy', async () => {
    const s = new Slots(4); // capacity 8
    await s.reserve(6, never); // 2 free
    const w = track(s.reserve(3, never)); // needs 3
    await settle();
    assert.equal(w.done, false);
    s.observe(20); // 4 × 50 / 20 = 10 queued: capacity 14, 8 free
    await settle();
    assert.deepEqual(w, { done: true, value: 3 });
  });

  test('more lanes than the prefetch cap keep at least one queued batch per lane', () => {
    const s = new Slots(600);
    s.observe(0); // instant batches would want the most
    assert.equal(s.capacity, 1200, 'one per lane wins over MAX_PREFETCH');
  });
});
