/** Pure logic of the nats-server version warnings (src/daemon/server-version.ts). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { olderThan, serverWarnings } from '../src/daemon/server-version.js';

describe('server version warnings', () => {
  test('compare-and-set on replicated streams is unsafe before 2.9.21', () => {
    assert.equal(olderThan('2.9.10', '2.9.21'), true);
    assert.equal(olderThan('2.9.21', '2.9.21'), false);
    assert.equal(olderThan('2.10.0', '2.9.21'), false);
    assert.equal(olderThan('v2.9.20-beta', '2.9.21'), true);
    assert.equal(olderThan('nonsense', '2.9.21'), false);
    assert.equal(olderThan(undefined, '2.9.21'), false);
    assert.equal(serverWarnings('2.9.10', 3).length, 1);
    assert.match(serverWarnings('2.9.10', 3)[0]!, /nats-server#4320/);
    assert.deepEqual(serverWarnings('2.9.10', 1), [], 'a single replica is serialized');
    assert.deepEqual(serverWarnings('2.10.22', 3), []);
  });
});
