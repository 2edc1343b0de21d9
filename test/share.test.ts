/**
 * localCap (src/daemon/batches/share.ts): how many of a job's `workers` batches one daemon may hold (running and
 * prefetched). A job's consumer lets at most `workers` batches be unsettled fleet-wide (max_ack_pending), so a daemon
 * holds its lanes' worth, plus a lane-weighted share of the room no lane of the fleet could use. Pure arithmetic.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { localCap } from '../src/daemon/batches/share.js';

describe('localCap', () => {
  test('workers no more than the local lanes: the workers', () => {
    assert.equal(localCap(3, 4, 8), 3);
    assert.equal(localCap(4, 4, 8), 4);
    assert.equal(localCap(1, 4, 4), 1);
    assert.equal(localCap(2, 2, 2), 2);
  });

  test('workers equal to the fleet lanes: the local lanes, no prefetch (2 daemons × 2 lanes, workers 4: 2 each)', () => {
    assert.equal(localCap(4, 2, 4), 2);
    assert.equal(localCap(6, 2, 6), 2, 'three daemons of 2 lanes');
    assert.equal(localCap(6, 4, 6), 4, 'a daemon of 4 lanes next to one of 2');
  });

  test('workers between the local and the fleet lanes: the local lanes (2 × 2 lanes, workers 3: 2 each, 4 ≥ 3 together)', () => {
    const each = localCap(3, 2, 4);
    assert.equal(each, 2, 'no daemon holds more than it can run');
    assert.ok(each + each >= 3, 'together the daemons can hold every one of the workers');
  });

  test('workers far above the fleet lanes: the spare goes to the daemon (1000 on one daemon of 2 lanes: 1000)', () => {
    assert.equal(localCap(1000, 2, 2), 1000);
    assert.equal(localCap(1000, 2, 0), 1000, 'the fleet not known yet: the same');
  });

  test('the spare is shared by lanes (workers 10, lanes 2 of a fleet of 4: 2 + floor(6 × 2 / 4) = 5)', () => {
    assert.equal(localCap(10, 2, 4), 5);
    assert.equal(localCap(10, 1, 4), 1 + Math.floor((6 * 1) / 4), 'a daemon with 1 of the 4 lanes: 2');
    assert.equal(localCap(10, 3, 4), 3 + Math.floor((6 * 3) / 4), 'with 3 of the 4 lanes: 7');
    assert.equal(localCap(100, 3, 10), 3 + Math.floor((90 * 3) / 10), '30');
  });

  test('fleet lanes unknown (0), negative, or smaller than the local lanes count as the local lanes', () => {
    for (const [workers, local] of [[1, 1], [3, 2], [4, 4], [10, 2], [10, 4], [1000, 3]] as const) {
      const alone = localCap(workers, local, local);
      for (const fleet of [0, -5, local - 1, 1]) {
        if (fleet >= local) continue;
        assert.equal(localCap(workers, local, fleet), alone, `workers ${workers}, lanes ${local}, fleet ${fleet}`);
      }
    }
    assert.equal(localCap(10, 4, 2), 10, 'alone, a daemon may hold every one of the workers');
    assert.equal(localCap(3, 4, 0), 3);
  });

  test('never below 1', () => {
    assert.equal(localCap(0, 2, 4), 1);
    assert.equal(localCap(-3, 2, 2), 1);
    assert.equal(localCap(5, 0, 4), 1, 'no local lanes');
    assert.equal(localCap(5, 0, 0), 1, 'no lanes anywhere');
  });

  test('over a grid of workers and lane splits: the prefetch never takes room a free lane elsewhere could use', () => {
    const splits: number[][] = [];
    for (let a = 1; a <= 6; a++) {
      splits.push([a]);
      for (let b = 1; b <= 6; b++) {
        splits.push([a, b]);
        for (let c = 1; c <= 4; c++) splits.push([a, b, c], [a, b, c, 1]);
      }
    }
    let checked = 0;
    for (const lanes of splits) {
      const fleet = lanes.reduce((x, y) => x + y, 0);
      for (let workers = 1; workers <= 3 * fleet + 7; workers++) {
        const caps = lanes.map((l) => localCap(workers, l, fleet));
        const where = `workers ${workers}, lanes [${lanes.join(', ')}]: caps [${caps.join(', ')}]`;
        const prefetch = caps.reduce((sum, cap, i) => sum + Math.max(0, cap - lanes[i]!), 0);
        assert.ok(prefetch <= Math.max(0, workers - fleet), `prefetch ${prefetch} beyond the spare: ${where}`);
        for (const cap of caps) assert.ok(cap >= 1 && cap <= workers, `a cap within 1…workers: ${where}`);
        // The other side of the rule: every lane of the fleet can still be busy.
        const held = caps.reduce((x, y) => x + y, 0);
        assert.ok(held >= Math.min(workers, fleet), `the fleet holds ${held} < min(workers, lanes): ${where}`);
        assert.ok(held <= Math.max(workers, fleet), `the fleet holds ${held}, more than the consumer lets out: ${where}`);
        checked++;
      }
    }
    assert.ok(checked > 10_000, `${checked} cases`);
  });
});
