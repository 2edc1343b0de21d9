import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AckPolicy, jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import { batchHeaders, headerValue, rawHeaderBlock } from '../src/daemon/batches/batch-headers.js';
import { identify } from '../src/daemon/batches/batch-headers.js';
import { Headers } from '../src/fleet/protocol.js';
import { NatsServer } from './helpers/nats-server.js';

describe('reading batch headers on the hot path', () => {
  let server: NatsServer;
  let nc: NatsConnection;

  before(async () => {
    server = await NatsServer.start();
    nc = await connect({ servers: server.url });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'HDR', subjects: ['hdr.>'] });
    await jsm.consumers.add('HDR', { durable_name: 'c', ack_policy: AckPolicy.Explicit });
  });

  after(async () => {
    await nc?.close();
    await server?.stop();
  });

  /** Publishes one message per header set and pulls them all back. */
  async function roundTrip(sets: Array<Array<[string, string]> | null>): Promise<JsMsg[]> {
    const js = jetstream(nc);
    for (const [i, set] of sets.entries()) {
      const h = set === null ? undefined : headers();
      for (const [k, v] of set ?? []) h!.append(k, v);
      await js.publish(`hdr.${i}`, new Uint8Array([0x90]), h === undefined ? {} : { headers: h });
    }
    const consumer = await js.consumers.get('HDR', 'c');
    const out: JsMsg[] = [];
    const batch = await consumer.fetch({ max_messages: sets.length, expires: 2000 });
    for await (const m of batch) {
      out.push(m);
      m.ack();
    }
    return out;
  }

  test('agree with msg.headers on every shape, through the raw block (not the fallback)', async () => {
    const sets: Array<Array<[string, string]> | null> = [
      [[Headers.jobId, 'j1'], [Headers.batchId, '17'], [Headers.apiName, 'a'], [Headers.generation, '2']],
      [[Headers.batchId, 'b-ü-é 😀']],
      [[Headers.batchId, '  padded  '], [Headers.generation, '0']],
      [[Headers.batchId, 'first'], [Headers.batchId, 'second']],
      [['jetbatch-batch-id', 'lower case is another header'], ['X-Jetbatch-Batch-Id', 'a suffix is too']],
      [[Headers.generation, '3']],
      [[Headers.batchId, '']],
      null,
    ];
    const msgs = await roundTrip(sets);
    assert.equal(msgs.length, sets.length);
    for (const m of msgs) {
      if (m.headers !== undefined) assert.ok(rawHeaderBlock(m) !== undefined, 'the raw header block is reachable (NATS.js internals changed?)');
      const fast = batchHeaders(m);
      assert.deepEqual(fast, { batchId: m.headers?.get(Headers.batchId) ?? '', generation: m.headers?.get(Headers.generation) ?? '' }, m.subject);
    }
    const byIndex = (i: number): JsMsg => msgs.find((m) => m.subject === `hdr.${i}`)!;
    assert.deepEqual(batchHeaders(byIndex(0)), { batchId: '17', generation: '2' });
    assert.deepEqual(batchHeaders(byIndex(1)), { batchId: 'b-ü-é 😀', generation: '' });
    assert.equal(batchHeaders(byIndex(3)).batchId, 'first');
    assert.equal(batchHeaders(byIndex(4)).batchId, '');
    assert.deepEqual(identify(byIndex(0), 'a', 'j1'), { apiName: 'a', jobId: 'j1', batchId: '17', generation: 2 });
    assert.equal(identify(byIndex(5), 'a', 'j1'), null, 'no batch id: undecodable');
    assert.equal(identify(byIndex(6), 'a', 'j1'), null, 'an empty batch id: undecodable');
    assert.equal(identify(byIndex(7), 'a', 'j1'), null, 'no headers at all: undecodable');
  });

  test('headerValue matches whole names at line starts only', () => {
    const block = 'NATS/1.0\r\nX-Jetbatch-Batch-Id: no\r\nJetbatch-Batch-Id:yes \r\n\r\n';
    assert.equal(headerValue(block, 'Jetbatch-Batch-Id'), 'yes');
    assert.equal(headerValue('NATS/1.0\r\nJetbatch-Batch-Idx: no\r\n\r\n', 'Jetbatch-Batch-Id'), '');
    assert.equal(headerValue('NATS/1.0\r\n\r\n', 'Jetbatch-Batch-Id'), '');
  });
});
