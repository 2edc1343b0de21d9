/** Pure logic of telling a daemon gone from its heartbeats (src/daemon/completion/peers.ts). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { KV, KvEntry } from '@nats-io/kv';
import { Peers } from '../src/daemon/completion/peers.js';
import { encodeJson } from '../src/fleet/protocol.js';

/** A heartbeat bucket holding one entry whose revision and operation the test sets. */
function bucket(): { kv: KV; set(revision: number | null, op?: 'PUT' | 'DEL', timeoutMs?: number): void } {
  let entry: Pick<KvEntry, 'revision' | 'operation' | 'value'> | null = null;
  const kv = { get: async () => entry } as unknown as KV;
  return {
    kv,
    set(revision, op = 'PUT', timeoutMs = 1000) {
      entry = revision === null ? null : { revision, operation: op, value: op === 'PUT' ? encodeJson({ presence_timeout_ms: timeoutMs }) : new Uint8Array() };
    },
  };
}

describe('peers: is a daemon gone?', () => {
  test('a changing heartbeat is alive; one unchanged for its timeout, on the observer\'s clock, is gone', async () => {
    let now = 0;
    const b = bucket();
    const peers = new Peers(b.kv, () => now);
    b.set(5);
    assert.equal((await peers.judge('d', 30_000)).gone, false, 'first sighting');
    now = 400;
    assert.equal((await peers.judge('d', 30_000)).gone, false);
    b.set(6);
    now = 900;
    assert.equal((await peers.judge('d', 30_000)).gone, false, 'a new revision restarts the clock');
    for (now = 1000; now < 1900; now += 100) assert.equal((await peers.judge('d', 30_000)).gone, false, `unchanged ${now - 900} ms`);
    now = 1900;
    const verdict = await peers.judge('d', 30_000);
    assert.equal(verdict.gone, true, 'the entry\'s own timeout (1 s) applies, not the fallback');
    assert.match(verdict.reason, /unchanged at revision 6 for 1000 ms/);
  });

  test('a pause in the observer\'s own reads longer than half the timeout restarts the clock', async () => {
    let now = 0;
    const b = bucket();
    const peers = new Peers(b.kv, () => now);
    b.set(1);
    await peers.judge('d', 0);
    now = 600; // the observer could not read for 600 ms > 500 ms: e.g. NATS was electing a leader for everyone
    assert.equal((await peers.judge('d', 0)).gone, false);
    now = 1000;
    assert.equal((await peers.judge('d', 0)).gone, false, 'only 400 ms since the clock restarted');
    now = 1600;
    assert.equal((await peers.judge('d', 0)).gone, false, '600 ms gap again: restarted again');
    for (now = 1700; now <= 2600; now += 100) await peers.judge('d', 0);
    assert.equal((await peers.judge('d', 0)).gone, true);
  });

  test('a deleted or missing entry is gone at once', async () => {
    const b = bucket();
    const peers = new Peers(b.kv, () => 0);
    b.set(3, 'DEL');
    assert.deepEqual(await peers.judge('d', 1000), { gone: true, reason: 'deleted' });
    b.set(null);
    assert.deepEqual(await peers.judge('d', 1000), { gone: true, reason: 'missing' });
  });
});
