/**
 * Slots (src/daemon/pools/slots.ts): the local capacity of one API pool, shared by its jobs. Capacity = lanes + a
 * prefetch sized from a moving average of batch durations (about 50 ms of queued work, 0 to 512). Free slots go to
 * the best waiter: not starved before starved, then higher priority, then least recently served, then arrival. Pure
 * logic, no server.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Slots, type Claimant } from '../src/daemon/pools/slots.js';

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

const waiting: Tracked = { done: false, value: undefined };
const got = (n: number): Tracked => ({ done: true, value: n });

/** Queued work the prefetch aims at: what the lanes finish in this many milliseconds. */
const TARGET_MS = 50;
const MAX_PREFETCH = 512;

/** A pool of `lanes` whose prefetch is `lanes × 50 / ms` (the first observation sets the average). */
function pool(lanes: number, ms?: number): Slots {
  const s = new Slots(lanes);
  if (ms !== undefined) s.observe(ms);
  return s;
}

/** Takes every free slot for a claimant of its own: the pool is full. */
async function fill(s: Slots): Promise<void> {
  const n = s.free;
  assert.equal(await s.reserve(s.claimant(0), n, never), n, 'fill takes everything free');
  assert.equal(s.free, 0);
}

describe('Slots: capacity and adaptive prefetch', () => {
  test('starts with no prefetch: capacity is the lanes, all free', () => {
    const s = new Slots(4);
    assert.deepEqual([s.lanes, s.capacity, s.used, s.free], [4, 4, 0, 4]);
  });

  test('below 50 ms, the prefetch is about what the lanes finish in 50 ms, at most 512', () => {
    const lanes = 4;
    for (const ms of [0.05, 0.2, 0.39, 0.4, 0.5, 1, 2, 3, 5, 7, 10, 13, 25, 40, 45]) {
      const s = pool(lanes, ms);
      const prefetch = s.capacity - lanes;
      const covering = (lanes * TARGET_MS) / ms; // batches the lanes finish in 50 ms
      if (covering >= MAX_PREFETCH) assert.equal(prefetch, MAX_PREFETCH, `${ms} ms batches: capped at 512`);
      else assert.ok(Math.abs(prefetch - covering) <= 0.5, `${ms} ms batches: prefetch ${prefetch}, about ${covering}`);
      assert.equal(s.free, s.capacity, 'nothing used');
    }
  });

  test('examples: 10 ms batches on 4 lanes queue 20; minute-long ones none; instant ones 512', () => {
    assert.equal(pool(4, 10).capacity, 4 + 20, 'each lane runs 5 batches of 10 ms in 50 ms');
    assert.equal(pool(4, 60_000).capacity, 4, 'no prefetch: capacity = lanes');
    assert.equal(pool(4, 0).capacity, 4 + MAX_PREFETCH, 'a 0 ms average does not divide by zero');
  });

  test('no prefetch for batches of 50 ms or more: capacity = lanes', () => {
    const seen: string[] = [];
    for (const lanes of [1, 2, 4, 8]) {
      for (const ms of [50, 51, 75, 100, 150, 200, 400, 1000, 60_000]) {
        const prefetch = pool(lanes, ms).capacity - lanes;
        if (prefetch !== 0) seen.push(`${lanes} lanes × ${ms} ms: prefetch ${prefetch}`);
      }
    }
    assert.deepEqual(seen, []);
  });

  test('the prefetch is not one per lane any more: more lanes than 512 get 512, not one each', () => {
    assert.equal(pool(600, 0).capacity, 600 + MAX_PREFETCH);
    assert.equal(pool(2, 10_000).capacity, 2, 'long batches: nothing queued per lane');
  });

  test('the first duration sets the average; each later one moves it a tenth of the way', () => {
    const s = pool(4, 10);
    assert.equal(s.capacity, 4 + 20);
    s.observe(20); // average 11 ms: 200 / 11 ≈ 18.2 (a last-value rule would give 10, a plain mean 13)
    assert.equal(s.capacity, 4 + 18);
    s.observe(40); // average 13.9 ms: 200 / 13.9 ≈ 14.4 (last value: 5; plain mean of 10, 20, 40: 9)
    assert.equal(s.capacity, 4 + 14);
    for (let i = 0; i < 200; i++) s.observe(5);
    assert.equal(s.capacity, 4 + 40, 'converges on a steady duration (5 ms: 40 queued)');
  });

  test('durations that are not finite or are negative are ignored', () => {
    const s = new Slots(4);
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -1, -0.001]) s.observe(bad);
    assert.equal(s.capacity, 4, 'capacity unchanged');
    s.observe(10);
    assert.equal(s.capacity, 24, 'the next valid duration is still the first of the average');
    s.observe(Number.NaN);
    s.observe(-5);
    assert.equal(s.capacity, 24, 'the average unchanged');
  });
});

describe('Slots: claimants', () => {
  test('a new claimant has its priority, is not starved and has never been served', () => {
    assert.deepEqual(new Slots(2).claimant(7), { priority: 7, starved: false, lastServed: 0 });
  });

  test('every grant, at once or from the queue, stamps the claimant with the next serial; nothing granted, no stamp', async () => {
    const s = new Slots(2);
    const a = s.claimant(0);
    const b = s.claimant(0);
    assert.equal(await s.reserve(a, 1, never), 1);
    assert.equal(await s.reserve(b, 1, never), 1);
    assert.deepEqual([a.lastServed, b.lastServed], [1, 2]);
    const w = track(s.reserve(a, 1, never));
    await settle();
    s.release(1);
    await settle();
    assert.deepEqual(w, got(1));
    assert.equal(a.lastServed, 3);
    assert.equal(await s.reserve(b, 0, never), 0);
    const ac = new AbortController();
    const aborted = track(s.reserve(b, 1, ac.signal));
    await settle();
    ac.abort();
    await settle();
    assert.deepEqual(aborted, got(0));
    assert.equal(b.lastServed, 2, 'a zero reserve and an aborted one are not a turn');
  });
});

describe('Slots: reserve', () => {
  test('takes up to max at once when enough is free', async () => {
    const s = pool(2, 25); // prefetch 4: capacity 6
    assert.equal(await s.reserve(s.claimant(0), 3, never), 3);
    assert.deepEqual([s.used, s.free], [3, 3]);
  });

  test('a max larger than what is free takes everything free', async () => {
    const s = new Slots(2);
    assert.equal(await s.reserve(s.claimant(0), 10, never), 2);
    assert.deepEqual([s.used, s.free], [2, 0]);
  });

  test('a max of zero or less takes nothing', async () => {
    const s = new Slots(2);
    assert.equal(await s.reserve(s.claimant(0), 0, never), 0);
    assert.equal(await s.reserve(s.claimant(0), -3, never), 0);
    assert.equal(s.used, 0);
  });

  test('while every lane is busy, waits until half the prefetch is free (refilling in halves), then takes up to max', async () => {
    const s = pool(4, 25); // prefetch 8: capacity 12
    await fill(s);
    const w = track(s.reserve(s.claimant(0), 12, never));
    await settle();
    assert.deepEqual(w, waiting, 'nothing free');
    s.release(3);
    await settle();
    assert.deepEqual(w, waiting, '3 free, lanes all busy: less than half the prefetch (4)');
    s.release(1);
    await settle();
    assert.deepEqual(w, got(4), 'half the prefetch free: takes the 4 free');
    assert.deepEqual([s.used, s.free], [12, 0]);
  });

  test('a request smaller than half the prefetch is served as soon as that many are free', async () => {
    const s = pool(4, 25); // prefetch 8
    await fill(s);
    const w = track(s.reserve(s.claimant(0), 1, never));
    await settle();
    s.release(1);
    await settle();
    assert.deepEqual(w, got(1), 'min(max, half the prefetch) = 1');
  });

  test('with no prefetch, one free slot serves any request (the need is at least one)', async () => {
    const s = new Slots(2);
    await fill(s);
    const w = track(s.reserve(s.claimant(0), 5, never));
    await settle();
    assert.deepEqual(w, waiting);
    s.release(1);
    await settle();
    assert.deepEqual(w, got(1));
  });

  test('a lane idle: a waiter is served with a single free slot, even when the prefetch is large', async () => {
    // The need is 1 while used < lanes; with every lane busy, this pool would want half its prefetch (100).
    const s = pool(4, 1); // prefetch 200: capacity 204
    assert.equal(s.capacity, 204);
    assert.equal(await s.reserve(s.claimant(0), 3, never), 3, 'three lanes busy, nothing queued');
    assert.equal(await s.reserve(s.claimant(0), 1000, never), 201, 'one lane idle: served at once, takes every free slot');
    const w = track(s.reserve(s.claimant(0), 150, never));
    await settle();
    assert.deepEqual(w, waiting, 'all busy, nothing free');
    s.release(99);
    await settle();
    assert.deepEqual(w, waiting, '99 free, every lane busy: half the prefetch (100) is needed');
    s.release(1);
    await settle();
    assert.deepEqual(w, got(100), '100 free: served');
    // Every slot back: a lane idle again, and the next reserve is served however large it is.
    s.release(204);
    assert.equal(await s.reserve(s.claimant(0), 1000, never), 204);
  });

  test('while a lane is idle every reserve is served at once, whatever the prefetch and the max', async () => {
    for (const ms of [0, 1, 10, 25, 49, 60_000]) {
      for (let used = 0; used < 4; used++) {
        const s = pool(4, ms);
        if (used > 0) assert.equal(await s.reserve(s.claimant(0), used, never), used);
        const free = s.free;
        const w = track(s.reserve(s.claimant(0), 10_000, never));
        await settle();
        assert.deepEqual(w, got(free), `${ms} ms, ${used} of 4 lanes used`);
      }
    }
  });

  test('an already aborted signal gets nothing, even with every slot free', async () => {
    const s = new Slots(2);
    const ac = new AbortController();
    ac.abort();
    assert.equal(await s.reserve(s.claimant(0), 2, ac.signal), 0);
    assert.equal(s.used, 0);
  });

  test('an abort while waiting resolves 0 and leaves the queue (no ghost ahead of later requests)', async () => {
    const s = new Slots(2);
    await fill(s);
    const ac = new AbortController();
    const a = track(s.reserve(s.claimant(5), 2, ac.signal));
    await settle();
    ac.abort();
    await settle();
    assert.deepEqual(a, got(0));
    assert.equal(s.used, 2, 'an aborted reserve takes nothing');
    s.release(2);
    assert.equal(await s.reserve(s.claimant(0), 2, never), 2, 'served at once: the aborted waiter is not in the queue');
  });

  test('aborting a waiter behind another removes only that one', async () => {
    const s = new Slots(2);
    await fill(s);
    const a = track(s.reserve(s.claimant(0), 2, never));
    const ac = new AbortController();
    const b = track(s.reserve(s.claimant(0), 2, ac.signal));
    await settle();
    ac.abort();
    await settle();
    assert.deepEqual(b, got(0));
    assert.deepEqual(a, waiting);
    s.release(1);
    await settle();
    assert.deepEqual(a, got(1));
    assert.equal(s.used, 2);
  });

  test('capacity growing while every slot is used wakes a waiter', async () => {
    const s = new Slots(2);
    await fill(s);
    const w = track(s.reserve(s.claimant(0), 1, never));
    await settle();
    assert.deepEqual(w, waiting);
    s.observe(10); // 2 lanes × 5 batches of 10 ms: capacity 2 + 10
    await settle();
    assert.equal(s.capacity, 12);
    assert.deepEqual(w, got(1));
  });

  test('a waiter woken by a capacity change that is still not enough waits on', async () => {
    const s = pool(4, 25); // prefetch 8: capacity 12
    await fill(s);
    const w = track(s.reserve(s.claimant(0), 4, never)); // waits for 4 free
    await settle();
    s.observe(10); // average 23.5 ms: 200 / 23.5 ≈ 8.5, prefetch 9: capacity 13, 1 free
    await settle();
    assert.deepEqual([s.capacity, s.free], [13, 1]);
    assert.deepEqual(w, waiting, 'woken, 1 free of the 4 it waits for: back to waiting');
    s.release(3);
    await settle();
    assert.deepEqual(w, got(4));
  });

  test('capacity shrinking below the slots in use: nothing is served until a slot is free under the new capacity', async () => {
    const s = pool(2, 1); // 2 × 50 / 1 = 100 queued: capacity 102
    await fill(s);
    assert.equal(s.used, 102);
    s.observe(1_000_000); // the average jumps to ~100 s: no prefetch, capacity 2
    assert.deepEqual([s.capacity, s.used, s.free], [2, 102, -100]);
    const w = track(s.reserve(s.claimant(0), 2, never));
    s.release(100);
    await settle();
    assert.deepEqual(w, waiting, '0 of 2 free');
    s.release(1);
    await settle();
    assert.deepEqual(w, got(1), 'a lane idle: the one free slot');
    assert.equal(s.used, 2);
  });
});

describe('Slots: who is served first', () => {
  test('a higher-priority waiter that arrived later is served first', async () => {
    const s = new Slots(2);
    await fill(s);
    const low = track(s.reserve(s.claimant(0), 1, never));
    const high = track(s.reserve(s.claimant(5), 1, never));
    await settle();
    s.release(1);
    await settle();
    assert.deepEqual([high, low], [got(1), waiting]);
    s.release(1);
    await settle();
    assert.deepEqual(low, got(1));
  });

  test('a negative priority comes after the default', async () => {
    const s = new Slots(1);
    await fill(s);
    const neg = track(s.reserve(s.claimant(-10), 1, never));
    const zero = track(s.reserve(s.claimant(0), 1, never));
    await settle();
    s.release(1);
    await settle();
    assert.deepEqual([zero, neg], [got(1), waiting]);
  });

  test('equal priorities take turns: two claimants with two requests each are served A, B, A, B (not A, A, B, B)', async () => {
    const s = new Slots(1);
    await fill(s);
    const a = s.claimant(0);
    const b = s.claimant(0);
    const order: string[] = [];
    const ask = (name: string, c: Claimant): Promise<void> => s.reserve(c, 1, never).then(() => void order.push(name));
    const all = Promise.all([ask('A', a), ask('A', a), ask('B', b), ask('B', b)]);
    await settle();
    for (let i = 0; i < 4; i++) {
      s.release(1);
      await settle();
      assert.equal(order.length, i + 1, 'one release of one slot, one grant');
    }
    await all;
    assert.deepEqual(order, ['A', 'B', 'A', 'B']);
  });

  test('equal priorities: the least recently served goes first, whatever the arrival order', async () => {
    const s = new Slots(2);
    const a = s.claimant(0);
    const b = s.claimant(0);
    assert.equal(await s.reserve(b, 1, never), 1); // b served first (serial 1)
    assert.equal(await s.reserve(a, 1, never), 1); // then a (serial 2): full
    const wa = track(s.reserve(a, 1, never)); // a waits first
    const wb = track(s.reserve(b, 1, never));
    await settle();
    s.release(1);
    await settle();
    assert.deepEqual([wb, wa], [got(1), waiting], 'b was served longer ago');
    s.release(1);
    await settle();
    assert.deepEqual(wa, got(1));
  });

  test('a claimant that keeps asking again does not starve an equal one: grants alternate', async () => {
    const s = new Slots(1);
    await fill(s);
    const a = s.claimant(0);
    const b = s.claimant(0);
    const order: string[] = [];
    // Each claimant asks again as soon as it is served, like a job runner pulling in a loop; A always asks first.
    const loop = async (name: string, c: Claimant): Promise<void> => {
      for (let i = 0; i < 3; i++) {
        await s.reserve(c, 1, never);
        order.push(name);
      }
    };
    const both = Promise.all([loop('A', a), loop('B', b)]);
    for (let i = 0; i < 6; i++) {
      await settle();
      s.release(1);
    }
    await both;
    assert.deepEqual(order, ['A', 'B', 'A', 'B', 'A', 'B']);
  });

  test('a starved claimant is served after a non-starved one of lower priority', async () => {
    const s = new Slots(1);
    await fill(s);
    const starved = s.claimant(10);
    s.setStarved(starved, true);
    const hungry = track(s.reserve(starved, 1, never));
    const low = track(s.reserve(s.claimant(-5), 1, never));
    await settle();
    s.release(1);
    await settle();
    assert.deepEqual([low, hungry], [got(1), waiting]);
    s.release(1);
    await settle();
    assert.deepEqual(hungry, got(1), 'still served once nobody else waits');
  });

  test('a starved claimant alone is served (work-conserving): at once when free, and from the queue', async () => {
    const s = new Slots(1);
    const c = s.claimant(0);
    s.setStarved(c, true);
    assert.equal(await s.reserve(c, 1, never), 1, 'at once');
    const w = track(s.reserve(c, 1, never));
    await settle();
    assert.deepEqual(w, waiting);
    s.release(1);
    await settle();
    assert.deepEqual(w, got(1), 'from the queue');
  });

  test('among starved claimants, priority still orders them', async () => {
    const s = new Slots(1);
    await fill(s);
    const lo = s.claimant(0);
    const hi = s.claimant(3);
    s.setStarved(lo, true);
    s.setStarved(hi, true);
    const wl = track(s.reserve(lo, 1, never));
    const wh = track(s.reserve(hi, 1, never));
    await settle();
    s.release(1);
    await settle();
    assert.deepEqual([wh, wl], [got(1), waiting]);
  });

  test('setStarved marks the claimant and re-ranks at once: a best waiter marked starved stops holding the others back', async () => {
    const s = pool(4, 25); // half the prefetch is 4
    await fill(s);
    const a = s.claimant(5);
    const big = track(s.reserve(a, 12, never)); // the best, needs 4
    const small = track(s.reserve(s.claimant(0), 1, never));
    s.release(1);
    await settle();
    assert.deepEqual([big, small], [waiting, waiting], '1 free: the best needs 4 and holds the other back');
    s.setStarved(a, true); // its pull found nothing: no release needed for the other to be served
    assert.equal(a.starved, true);
    await settle();
    assert.deepEqual([big, small], [waiting, got(1)]);
  });

  test('setStarved(false) restores the rank: the claimant is served before the lower priority again', async () => {
    const s = new Slots(1);
    await fill(s);
    const c = s.claimant(5);
    s.setStarved(c, true);
    const w = track(s.reserve(c, 1, never));
    const other = track(s.reserve(s.claimant(0), 1, never));
    await settle();
    s.setStarved(c, false); // its consumer has batches and room again
    s.setStarved(c, false); // unchanged: nothing happens
    assert.equal(c.starved, false);
    s.release(1);
    await settle();
    assert.deepEqual([w, other], [got(1), waiting]);
  });

  test('the best waiter whose need is not met holds back the others: no overtaking by smaller lower-ranked requests', async () => {
    const s = pool(4, 25); // prefetch 8: capacity 12, half the prefetch is 4
    await fill(s);
    const high = track(s.reserve(s.claimant(5), 12, never)); // needs 4
    const low = track(s.reserve(s.claimant(0), 1, never)); // 1 would do
    await settle();
    s.release(1);
    await settle();
    assert.deepEqual([high, low], [waiting, waiting], '1 free: the best needs 4, and the smaller one does not pass it');
    s.release(3);
    await settle();
    assert.deepEqual([high, low], [got(4), waiting], 'the 4 go to the best, nothing left');
    s.release(1);
    await settle();
    assert.deepEqual(low, got(1));
  });

  test('a lower-ranked newcomer does not jump the queue, even when what it asks for is free', async () => {
    const s = pool(4, 25); // half the prefetch is 4
    await fill(s);
    const first = track(s.reserve(s.claimant(0), 4, never));
    s.release(2);
    await settle();
    assert.deepEqual(first, waiting, '2 free of the 4 it needs');
    const later = track(s.reserve(s.claimant(-1), 1, never));
    await settle();
    assert.deepEqual(later, waiting, 'its 1 is free, but a better waiter is held back');
    assert.equal(s.free, 2);
  });

  test('a better newcomer is served at once when its need is met, ahead of those waiting', async () => {
    const s = pool(4, 25); // half the prefetch is 4
    await fill(s);
    const first = track(s.reserve(s.claimant(0), 4, never));
    s.release(2);
    await settle();
    const urgent = track(s.reserve(s.claimant(9), 1, never));
    await settle();
    assert.deepEqual([urgent, first], [got(1), waiting]);
    assert.equal(s.free, 1);
  });
});

describe('Slots: release', () => {
  test('returns slots; a release of zero or less returns nothing', async () => {
    const s = pool(2, 25); // capacity 6
    await s.reserve(s.claimant(0), 3, never);
    s.release(0);
    s.release(-2);
    assert.equal(s.used, 3);
    s.release(2);
    assert.deepEqual([s.used, s.free], [1, 5]);
  });

  test('releasing more than is used clamps at zero, and the pool stays usable', async () => {
    const s = pool(2, 25); // capacity 6
    await s.reserve(s.claimant(0), 3, never);
    s.release(10);
    assert.deepEqual([s.used, s.free], [0, 6]);
    assert.equal(await s.reserve(s.claimant(0), 6, never), 6);
    assert.equal(s.free, 0);
  });

  test('an over-release wakes a waiter like any other release', async () => {
    const s = new Slots(2);
    await fill(s);
    const w = track(s.reserve(s.claimant(0), 4, never));
    await settle();
    s.release(100);
    await settle();
    assert.deepEqual(w, got(2));
    assert.equal(s.used, 2);
  });
});

describe('Slots: waiters are never stranded', () => {
  test('a waiter whose signal aborts right after a release still gets its slots, and the next waiter is served (it was stranded: a hang)', async () => {
    const s = new Slots(2);
    await fill(s);
    const ac = new AbortController();
    const a = track(s.reserve(s.claimant(0), 1, ac.signal));
    const b = track(s.reserve(s.claimant(0), 1, never));
    await settle();
    // The release hands the slots over at once; an abort before the waiter resumes cannot strand the one behind it.
    s.release(2);
    ac.abort();
    await settle();
    assert.deepEqual(a, got(1), 'served by the release, before the abort: the caller gives it back');
    assert.deepEqual(b, got(1));
    assert.equal(s.used, 2);
  });

  test('a waiter that aborts before any release leaves the queue and takes nothing', async () => {
    const s = new Slots(2);
    await fill(s);
    const ac = new AbortController();
    const a = track(s.reserve(s.claimant(0), 2, ac.signal));
    const b = track(s.reserve(s.claimant(0), 2, never));
    await settle();
    ac.abort();
    s.release(2);
    await settle();
    assert.deepEqual(a, got(0));
    assert.deepEqual(b, got(2));
    assert.equal(s.used, 2);
  });

  test('the best waiter aborting while others wait behind it serves them from what is free', async () => {
    const s = pool(4, 25); // half the prefetch is 4
    await s.reserve(s.claimant(0), 11, never); // 1 free, every lane busy
    const ac = new AbortController();
    const a = track(s.reserve(s.claimant(5), 12, ac.signal)); // needs 4
    const b = track(s.reserve(s.claimant(0), 1, never)); // 1 would do, held back by a
    await settle();
    assert.deepEqual(b, waiting);
    ac.abort();
    await settle();
    assert.deepEqual([a, b], [got(0), got(1)], 'served once the waiter holding it back is gone');
  });

  test('one release serves every waiter it can, in order, and stops at the first it cannot', async () => {
    const s = pool(4, 25); // half the prefetch is 4
    await fill(s);
    const a = track(s.reserve(s.claimant(0), 2, never));
    const b = track(s.reserve(s.claimant(0), 2, never));
    const c = track(s.reserve(s.claimant(0), 4, never));
    await settle();
    s.release(5);
    await settle();
    assert.deepEqual([a, b, c], [got(2), got(2), waiting], '1 free: c needs 4');
    s.release(3);
    await settle();
    assert.deepEqual(c, got(4));
  });

  test('capacity growing serves a waiter that some free slots did not satisfy', async () => {
    const s = pool(4, 40); // 200 / 40 = 5 queued: capacity 9, half the prefetch is 3
    await s.reserve(s.claimant(0), 8, never); // 1 free
    const w = track(s.reserve(s.claimant(0), 3, never)); // needs 3
    await settle();
    assert.deepEqual(w, waiting);
    s.observe(0); // average 36 ms: 200 / 36 ≈ 5.6, prefetch 6: capacity 10, 2 free, still short
    await settle();
    assert.deepEqual([s.capacity, w], [10, waiting]);
    s.observe(0); // average 32.4 ms: 200 / 32.4 ≈ 6.2, prefetch 6: no change
    s.observe(0); // average 29.16 ms: 200 / 29.16 ≈ 6.9, prefetch 7: capacity 11, 3 free; half of 7 is 4, max 3
    await settle();
    assert.deepEqual([s.capacity, w], [11, got(3)]);
  });
});
