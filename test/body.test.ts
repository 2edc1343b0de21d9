/**
 * A large batch's body dropped once copied for its thread (daemon/batches/body.ts), on a real nats-server and real
 * NATS.js messages: the drop really happens for a large body (so the daemon does not hold it), never for a small one,
 * and the body read back from the stream is the batch's exact bytes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { AckPolicy, type JsMsg } from '@nats-io/jetstream';
import { bodyOf, dropBody, DROP_MIN_BYTES } from '../src/daemon/batches/body.js';
import type { FleetContext } from '../src/fleet/context.js';
import { Streams } from '../src/fleet/protocol.js';
import { provisionedFleet, type ProvisionedFleet } from './helpers/fleet.js';

describe('batch bodies dropped on the main thread', () => {
  let fleet: ProvisionedFleet;
  let ctx: FleetContext;

  before(async () => {
    fleet = await provisionedFleet();
    ({ ctx } = fleet);
  });

  after(async () => {
    await fleet?.close();
  });

  /** Publishes `body` to a batch subject and pulls it back through a fresh consumer, unacked. */
  async function delivered(name: string, body: Uint8Array): Promise<JsMsg> {
    const subject = `jetbatch.batch.bodies.${name}`;
    await ctx.js.publish(subject, body);
    await ctx.jsm.consumers.add(Streams.batches, { durable_name: name, filter_subject: subject, ack_policy: AckPolicy.Explicit });
    const consumer = await ctx.js.consumers.get(Streams.batches, name);
    const msg = await consumer.next({ expires: 5000 });
    assert.ok(msg !== null, 'the batch was delivered');
    return msg;
  }

  function bytes(n: number, seed: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
    return b;
  }

  test('a large body is dropped from the message, and read back from the stream byte for byte', async () => {
    const body = bytes(DROP_MIN_BYTES + 12_345, 7);
    const msg = await delivered('large', body);
    assert.deepEqual(new Uint8Array(msg.data), body);
    assert.equal(dropBody(msg, msg.data.byteLength), true);
    assert.equal(msg.data.byteLength, 0, 'the message no longer holds its body');
    assert.deepEqual(await bodyOf(ctx, msg, true), body);
    msg.ack();
  });

  test('a small body is kept, and given from the message itself', async () => {
    const body = bytes(DROP_MIN_BYTES - 1, 3);
    const msg = await delivered('small', body);
    assert.equal(dropBody(msg, msg.data.byteLength), false);
    assert.equal(msg.data.byteLength, body.byteLength);
    assert.deepEqual(await bodyOf(ctx, msg, false), body);
    msg.ack();
  });

  test('a dropped body that has left the stream is a clear error, not empty bytes', async () => {
    const msg = await delivered('gone', bytes(DROP_MIN_BYTES, 1));
    assert.equal(dropBody(msg, msg.data.byteLength), true);
    await ctx.jsm.streams.deleteMessage(Streams.batches, msg.seq);
    await assert.rejects(bodyOf(ctx, msg, true), /no longer in JETBATCH_BATCHES/);
  });
});
