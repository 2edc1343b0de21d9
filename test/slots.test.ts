/**
 * Slots (src/daemon/pools/slots.ts): the local capacity of one API pool, shared by its jobs. Each job (Claimant) has a
 * prefetch sized from a moving average of its own batch durations (about 50 ms of queued work, 0 to 512); it may hold
 * up to lanes + its own prefetch, counting every slot in use (so a job of no prefetch gets a slot only while a lane is
 * free). Capacity = lanes + the largest prefetch of the jobs on the pool. Slots go to the best waiter: not starved
 * before starved, then higher priority, then least recently served, then arrival. Pure logic, no server.
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

/** Per pool, the claimant whose durations the capacity tests feed; fill() reserves with it, nothing else waits as it. */
const sizers = new WeakMap<Slots, Claimant>();

/** The pool's sizing claimant (priority 0). */
function sizer(s: Slots): Claimant {
  let c = sizers.get(s);
  if (c === undefined) sizers.set(s, (c = s.claimant(0)));
  return c;
}

/** Feeds one batch duration of the pool's sizing claimant. */
function observe(s: Slots, ms: number): void {
  s.observe(sizer(s), ms);
}

/** A pool of `lanes` whose capacity is lanes + `lanes × 50 / ms`: its sizing claimant's first duration is `ms`. */
function pool(lanes: number, ms?: number): Slots {
  const s = new Slots(lanes);
  if (ms !== undefined) observe(s, ms);
  return s;
}

/** A job on the pool whose batches take `ms`: its prefetch is its own `lanes × 50 / ms` (0 from 50 ms up). */
function job(s: Slots, ms: number, priority = 0): Claimant {
  const c = s.claimant(priority);
  s.observe(c, ms);
  return c;
}

/**
 * Takes every free slot for the pool's sizing claimant (the job whose prefetch is the capacity's; a fresh claimant has
 * no prefetch and could take only the lanes): the pool is full.
 */
async function fill(s: Slots): Promise<void> {
  const n = s.free;
  assert.equal(await s.reserve(sizer(s), n, never), n, 'fill takes everything free');
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
    observe(s, 20); // average 11 ms: 200 / 11 ≈ 18.2 (a last-value rule would give 10, a plain mean 13)
    assert.equal(s.capacity, 4 + 18);
    observe(s, 40); // average 13.9 ms: 200 / 13.9 ≈ 14.4 (last value: 5; plain mean of 10, 20, 40: 9)
    assert.equal(s.capacity, 4 + 14);
    for (let i = 0; i < 200; i++) observe(s, 5);
    assert.equal(s.capacity, 4 + 40, 'converges on a steady duration (5 ms: 40 queued)');
  });

  test('durations that are not finite or are negative are ignored', () => {
    const s = new Slots(4);
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -1, -0.001]) observe(s, bad);
    assert.equal(s.capacity, 4, 'capacity unchanged');
    observe(s, 10);
    assert.equal(s.capacity, 24, 'the next valid duration is still the first of the average');
    observe(s, Number.NaN);
    observe(s, -5);
    assert.equal(s.capacity, 24, 'the average unchanged');
  });
});

describe('Slots: prefetch per job', () => {
  test('each job has its own average; the pool queues as much as the job of shortest batches wants', () => {
    const s = new Slots(4);
    const tiny = s.claimant(0);
    const long = s.claimant(0);
    s.observe(long, 1000);
    assert.deepEqual([long.prefetch, s.capacity], [0, 4], 'a job of 1 s batches wants no prefetch');
    s.observe(tiny, 10);
    assert.deepEqual([tiny.prefetch, s.capacity], [20, 24], '10 ms batches on 4 lanes: 20 queued');
    s.observe(long, 1000);
    assert.equal(s.capacity, 24, 'the long job does not shrink the tiny one\'s prefetch');
  });

  test('a job that leaves takes its prefetch with it: the next job of long batches gets none', () => {
    const s = new Slots(2);
    const tiny = s.claimant(0);
    for (let i = 0; i < 20; i++) s.observe(tiny, 5);
    assert.equal(s.capacity, 2 + 20);
    const next = s.claimant(0);
    s.leave(tiny);
    assert.equal(s.capacity, 2, 'nothing queued for a job whose durations are not known yet');
    s.observe(next, 1000);
    assert.equal(s.capacity, 2);
    s.leave(tiny);
    s.leave(next);
    assert.equal(s.capacity, 2, 'leaving twice, or with nothing left, is harmless');
  });

  test('the tiny-batch job leaving shrinks capacity to the lanes + the largest prefetch left; what it holds stays used until released', async () => {
    const s = new Slots(2);
    const tiny = job(s, 10); // 2 × 50 / 10 = 10 queued
    const mid = job(s, 25); // 2 × 50 / 25 = 4 queued
    const long = job(s, 1000); // none
    assert.equal(s.capacity, 2 + 10);
    assert.equal(await s.reserve(tiny, 12, never), 12, 'the lanes and its whole prefetch');
    const w = track(s.reserve(long, 1, never));
    s.leave(tiny);
    assert.deepEqual([s.capacity, s.used, s.free], [2 + 4, 12, -6], 'the largest prefetch left is the 25 ms job\'s');
    s.leave(mid);
    assert.deepEqual([s.capacity, s.used, s.free], [2, 12, -10], 'only the job of long batches left: capacity = lanes');
    s.release(10); // the tiny job's batches finish: 2 used, both lanes busy
    await settle();
    assert.deepEqual([w, s.free], [waiting, 0], 'no lane free yet');
    s.release(1);
    await settle();
    assert.deepEqual(w, got(1));
    assert.deepEqual([s.used, s.free], [2, 0]);
  });

  test('two jobs on one pool: the one of long batches waits for a free lane while the tiny-batch one (ranked first) fills its own prefetch', async () => {
    const s = new Slots(2);
    const tiny = job(s, 10, 1); // 2 × 50 / 10 = 10 queued
    const long = job(s, 1000); // none
    assert.deepEqual([tiny.prefetch, long.prefetch, s.capacity], [10, 0, 12]);
    assert.equal(await s.reserve(tiny, 4, never), 4, 'both lanes busy, 2 queued');
    const w = track(s.reserve(long, 5, never));
    await settle();
    assert.deepEqual([w, s.free], [waiting, 8], '8 free in the pool, none of it a lane: the tiny job\'s prefetch is not the long job\'s');
    const more = track(s.reserve(tiny, 100, never));
    await settle();
    assert.deepEqual([more, w], [got(8), waiting], 'the tiny job takes the rest of its room (lanes + 10), the long one still waits');
    assert.deepEqual([s.used, s.free], [12, 0]);
    s.release(10); // 2 used: both lanes still busy
    await settle();
    assert.deepEqual([w, s.free], [waiting, 10], '10 free, no lane');
    s.release(1);
    await settle();
    assert.deepEqual(w, got(1), 'a lane free: that one slot, not the 11 free, though it asked for 5');
    assert.equal(s.used, 2);
  });

  test('a job of no prefetch that is the best waiter holds back a tiny-batch waiter behind it until a lane frees, then is served first', async () => {
    const s = new Slots(2);
    const tiny = job(s, 10); // prefetch 10, room for 12 when nothing is used
    const long = job(s, 1000); // no prefetch; equal priority, never served: it ranks first once both wait
    assert.equal(await s.reserve(tiny, 12, never), 12, 'the lanes and the whole prefetch');
    const wl = track(s.reserve(long, 1, never));
    const wt = track(s.reserve(tiny, 12, never)); // needs half its prefetch: 5 of room
    await settle();
    assert.deepEqual([wl, wt], [waiting, waiting]);
    s.release(9); // 3 used: 9 of room for the tiny job, none for the long one
    await settle();
    assert.deepEqual([wl, wt], [waiting, waiting], 'the best waiter has no lane, and the tiny one, whose 5 are there, does not pass it');
    s.release(2); // 1 used: a lane free
    await settle();
    assert.deepEqual([wl, wt], [got(1), got(10)], 'the best takes its lane, then the tiny one the rest of its room (12 - 2 used)');
    assert.deepEqual([s.used, s.free], [12, 0]);
    assert.ok(long.lastServed < tiny.lastServed, 'the long job was served first');
  });
});

describe('Slots: claimants', () => {
  test('a new claimant has its priority, is not starved and has never been served', () => {
    assert.deepEqual(new Slots(2).claimant(7), { priority: 7, starved: false, lastServed: 0, prefetch: 0, avgMs: undefined });
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
  test('takes up to max at once when its room (lanes + its prefetch, less what is used) is enough', async () => {
    const s = new Slots(2);
    const c = job(s, 25); // prefetch 4: room 6
    assert.equal(await s.reserve(c, 3, never), 3);
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

  test('while every lane is busy, waits until half its prefetch is free (refilling in halves), then takes up to max', async () => {
    const s = pool(4, 25); // prefetch 8: capacity 12
    await fill(s);
    const w = track(s.reserve(job(s, 25), 12, never)); // its prefetch is 8 too
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

  test('a request smaller than half its prefetch is served as soon as that many are free', async () => {
    const s = pool(4, 25); // prefetch 8
    await fill(s);
    const w = track(s.reserve(job(s, 25), 1, never)); // prefetch 8
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
    // While used < lanes the room exceeds the whole prefetch; with every lane busy, this job would want half its
    // prefetch (100).
    const s = new Slots(4);
    const c = job(s, 1); // prefetch 200: room 204
    assert.equal(s.capacity, 204);
    assert.equal(await s.reserve(c, 3, never), 3, 'three lanes busy, nothing queued');
    assert.equal(await s.reserve(c, 1000, never), 201, 'one lane idle: served at once, takes every free slot');
    const w = track(s.reserve(c, 150, never));
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
    assert.equal(await s.reserve(c, 1000, never), 204);
  });

  test('while a lane is idle every reserve is served at once, whatever its prefetch and the max: all its room', async () => {
    for (const ms of [0, 1, 10, 25, 49, 60_000]) {
      for (let used = 0; used < 4; used++) {
        for (const mine of [true, false]) {
          // The job of `ms` batches reserves for itself, or one of long batches (no prefetch) reserves beside it.
          const s = new Slots(4);
          const sized = job(s, ms);
          const c = mine ? sized : job(s, 60_000);
          if (used > 0) assert.equal(await s.reserve(sized, used, never), used);
          const room = 4 + c.prefetch - used;
          const w = track(s.reserve(c, 10_000, never));
          await settle();
          assert.deepEqual(w, got(room), `${ms} ms, ${used} of 4 lanes used, ${mine ? 'its own prefetch' : 'no prefetch'}`);
          if (mine) assert.equal(s.free, 0, 'its room was everything free');
          else assert.equal(s.used, 4, 'no prefetch: the idle lanes only');
        }
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

  test('its own prefetch growing while every slot is used wakes a waiter; another job\'s does not', async () => {
    const s = new Slots(2);
    await fill(s);
    const c = s.claimant(0);
    const w = track(s.reserve(c, 1, never));
    await settle();
    assert.deepEqual(w, waiting);
    observe(s, 10); // another job: 2 lanes × 5 batches of 10 ms, capacity 2 + 10
    await settle();
    assert.deepEqual([s.capacity, s.free], [12, 10]);
    assert.deepEqual(w, waiting, '10 free, but none of it in its room');
    s.observe(c, 10); // its own prefetch 10: room 10
    await settle();
    assert.deepEqual(w, got(1));
  });

  test('a waiter woken by its prefetch growing that is still not enough waits on', async () => {
    const s = pool(4, 25); // prefetch 8: capacity 12
    await fill(s);
    const c = job(s, 25); // prefetch 8
    const w = track(s.reserve(c, 4, never)); // waits for 4 free
    await settle();
    s.observe(c, 10); // average 23.5 ms: 200 / 23.5 ≈ 8.5, prefetch 9: capacity 13, 1 free
    await settle();
    assert.deepEqual([s.capacity, s.free], [13, 1]);
    assert.deepEqual(w, waiting, 'woken, 1 free of the 4 it waits for: back to waiting');
    s.release(3);
    await settle();
    assert.deepEqual(w, got(4));
  });

  test('its prefetch shrinking below the slots in use: nothing is served until a slot is free under the new capacity', async () => {
    const s = pool(2, 1); // 2 × 50 / 1 = 100 queued: capacity 102
    await fill(s);
    assert.equal(s.used, 102);
    observe(s, 1_000_000); // the average jumps to ~100 s: no prefetch, capacity 2
    assert.deepEqual([s.capacity, s.used, s.free], [2, 102, -100]);
    const w = track(s.reserve(sizer(s), 2, never));
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
    const s = pool(4, 25); // prefetch 8: capacity 12
    await fill(s);
    const a = job(s, 25, 5); // prefetch 8: half is 4
    const big = track(s.reserve(a, 12, never)); // the best, needs 4
    const small = track(s.reserve(job(s, 25), 1, never)); // prefetch 8 too: 1 would do
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
    const s = pool(4, 25); // prefetch 8: capacity 12
    await fill(s);
    const high = track(s.reserve(job(s, 25, 5), 12, never)); // prefetch 8: needs 4
    const low = track(s.reserve(job(s, 25), 1, never)); // prefetch 8 too: 1 would do
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
    const s = pool(4, 25); // prefetch 8: capacity 12
    await fill(s);
    const first = track(s.reserve(job(s, 25), 4, never)); // prefetch 8: needs 4
    s.release(2);
    await settle();
    assert.deepEqual(first, waiting, '2 free of the 4 it needs');
    const later = track(s.reserve(job(s, 25, -1), 1, never)); // prefetch 8: 2 of room
    await settle();
    assert.deepEqual(later, waiting, 'its 1 is free, but a better waiter is held back');
    assert.equal(s.free, 2);
  });

  test('a better newcomer is served at once when its need is met, ahead of those waiting', async () => {
    const s = pool(4, 25); // prefetch 8: capacity 12
    await fill(s);
    const first = track(s.reserve(job(s, 25), 4, never)); // prefetch 8: needs 4
    s.release(2);
    await settle();
    const urgent = track(s.reserve(job(s, 25, 9), 1, never)); // prefetch 8: 2 of room, needs 1
    await settle();
    assert.deepEqual([urgent, first], [got(1), waiting]);
    assert.equal(s.free, 1);
  });
});

describe('Slots: release', () => {
  test('returns slots; a release of zero or less returns nothing', async () => {
    const s = pool(2, 25); // capacity 6
    assert.equal(await s.reserve(sizer(s), 3, never), 3);
    s.release(0);
    s.release(-2);
    assert.equal(s.used, 3);
    s.release(2);
    assert.deepEqual([s.used, s.free], [1, 5]);
  });

  test('releasing more than is used clamps at zero, and the pool stays usable', async () => {
    const s = pool(2, 25); // capacity 6
    assert.equal(await s.reserve(sizer(s), 3, never), 3);
    s.release(10);
    assert.deepEqual([s.used, s.free], [0, 6]);
    assert.equal(await s.reserve(sizer(s), 6, never), 6);
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
    const s = pool(4, 25); // prefetch 8: capacity 12
    assert.equal(await s.reserve(sizer(s), 11, never), 11); // 1 free, every lane busy
    const ac = new AbortController();
    const a = track(s.reserve(job(s, 25, 5), 12, ac.signal)); // prefetch 8: needs 4
    const b = track(s.reserve(job(s, 25), 1, never)); // prefetch 8: 1 would do, held back by a
    await settle();
    assert.deepEqual(b, waiting);
    ac.abort();
    await settle();
    assert.deepEqual([a, b], [got(0), got(1)], 'served once the waiter holding it back is gone');
  });

  test('one release serves every waiter it can, in order, and stops at the first it cannot', async () => {
    const s = pool(4, 25); // prefetch 8: capacity 12
    await fill(s);
    // Three jobs of prefetch 8 (half is 4): a and b need their max of 2, c needs 4.
    const a = track(s.reserve(job(s, 25), 2, never));
    const b = track(s.reserve(job(s, 25), 2, never));
    const c = track(s.reserve(job(s, 25), 4, never));
    await settle();
    s.release(5);
    await settle();
    assert.deepEqual([a, b, c], [got(2), got(2), waiting], '1 free: c needs 4');
    s.release(3);
    await settle();
    assert.deepEqual(c, got(4));
  });

  test('its prefetch growing serves a waiter that some free slots did not satisfy', async () => {
    const s = pool(4, 40); // 200 / 40 = 5 queued: capacity 9
    assert.equal(await s.reserve(sizer(s), 8, never), 8); // 1 free
    const c = job(s, 40); // prefetch 5 too: half is 3
    const w = track(s.reserve(c, 3, never)); // needs 3
    await settle();
    assert.deepEqual(w, waiting);
    s.observe(c, 0); // average 36 ms: 200 / 36 ≈ 5.6, prefetch 6: capacity 10, 2 free, still short
    await settle();
    assert.deepEqual([c.prefetch, s.capacity, w], [6, 10, waiting]);
    s.observe(c, 0); // average 32.4 ms: 200 / 32.4 ≈ 6.2, prefetch 6: no change
    s.observe(c, 0); // average 29.16 ms: 200 / 29.16 ≈ 6.9, prefetch 7: capacity 11, 3 free; half of 7 is 4, max 3
    await settle();
    assert.deepEqual([s.capacity, w], [11, got(3)]);
  });
});

describe('Slots: standby pulls and occupied lanes', () => {
  test('a standby takes a free lane that nobody waits for and no other standby holds; it reserves nothing', async () => {
    const s = new Slots(2);
    assert.equal(s.standby(), true);
    assert.equal(s.standby(), true, 'the second lane');
    assert.equal(s.standby(), false, 'both lanes on standby');
    assert.equal(s.used, 0, 'standbys reserve nothing');
    assert.equal(await s.reserve(s.claimant(0), 2, never), 2, 'a job that wants the lanes gets them as usual');
    s.endStandby();
    s.endStandby();
    assert.equal(s.canStandby(), false, 'no lane is free now');
  });

  test('a batch that arrives on standby occupies a slot, even beyond the capacity, and batches are granted that much less', async () => {
    const s = new Slots(2);
    const job = s.claimant(0);
    assert.equal(s.standby(), true);
    assert.equal(await s.reserve(job, 2, never), 2, 'another job took both lanes meanwhile');
    s.occupy(); // the standby batch arrives
    s.endStandby();
    assert.deepEqual([s.used, s.capacity], [3, 2]);
    const w = track(s.reserve(job, 1, never));
    s.release(1);
    await settle();
    assert.equal(w.done, false, 'still 2 in use on 2 lanes');
    s.release(1);
    await settle();
    assert.deepEqual(w, { done: true, value: 1 });
  });

  test('released() resolves at the next release or end of a standby, shared by every waiter', async () => {
    const s = new Slots(2);
    await s.reserve(s.claimant(0), 2, never);
    let woke = 0;
    void s.released().then(() => woke++);
    void s.released().then(() => woke++);
    await settle();
    assert.equal(woke, 0);
    s.release(1);
    await settle();
    assert.equal(woke, 2);
    assert.equal(s.standby(), true);
    void s.released().then(() => woke++);
    s.endStandby();
    await settle();
    assert.equal(woke, 3);
  });
});
