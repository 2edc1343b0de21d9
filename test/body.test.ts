/**
 * A large batch's body dropped once copied for its thread (daemon/batches/body.ts), on a real nats-server and real
 * NATS.js messages: the drop really happens for a large body (so the daemon does not hold it), never for a small one,
 * and the body read back from the stream is the batch's exact bytes. A body large enough to own its buffer is moved
 * as it is (ownedBody), and moving it never touches another message's bytes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { AckPolicy, type JsMsg } from '@nats-io/jetstream';
import { bodyOf, dropBody, DROP_MIN_BYTES, MOVE_MIN_BYTES, ownedBody } from '../src/daemon/batches/body.js';
import { batchHeaders } from '../scripts/bench/publish.js';
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

  /** Transfers `view`'s buffer away, as a task's transferList does; returns what the receiver sees. */
  function moveAway(view: Uint8Array): Uint8Array {
    return structuredClone(view, { transfer: [view.buffer as ArrayBuffer] });
  }

  test('a body that spans several socket reads owns its buffer: moved as it is, with the batch headers left behind', async () => {
    const body = bytes(1024 * 1024 - 4096, 5);
    const subject = 'jetbatch.batch.bodies.moved';
    await ctx.js.publish(subject, body, { headers: batchHeaders('api', 'job', 'b-1') });
    await ctx.jsm.consumers.add(Streams.batches, { durable_name: 'moved', filter_subject: subject, ack_policy: AckPolicy.Explicit });
    const msg = await (await ctx.js.consumers.get(Streams.batches, 'moved')).next({ expires: 5000 });
    assert.ok(msg !== null);
    assert.equal(msg.headers?.get('Jetbatch-Batch-Id'), 'b-1');
    const own = ownedBody(msg, msg.data.byteLength);
    assert.ok(own !== undefined, 'a 1 MiB body owns its buffer');
    assert.deepEqual(own, body);
    // As the job runner does: the message's body is dropped before the task (and its transfer) goes to a thread.
    assert.equal(dropBody(msg, body.byteLength), true);
    assert.equal(msg.data.byteLength, 0, 'the message no longer holds it');
    const moved = moveAway(own);
    assert.deepEqual(moved, body, 'the thread gets the exact body');
    assert.equal(own.byteLength, 0, 'nothing of it is left on this thread');
    assert.deepEqual(await bodyOf(ctx, msg, true), body, 'a dead letter still reads it back from the stream');
    msg.ack();
  });

  test('one pull of large and small bodies: only large ones are moved, and moving them leaves every other body intact', async () => {
    const sizes = [300 * 1024, 100, 1024 * 1024 - 4096, MOVE_MIN_BYTES - 1, MOVE_MIN_BYTES, 10, 70 * 1024, 600 * 1024, 3];
    const bodies = sizes.map((n, i) => bytes(n, i));
    const subject = 'jetbatch.batch.bodies.mixed';
    for (const [i, b] of bodies.entries()) {
      // Every other one without headers: the body is then the whole message.
      await ctx.js.publish(subject, b, i % 2 === 0 ? { headers: batchHeaders('api', 'job', `b-${i}`) } : {});
    }
    await ctx.jsm.consumers.add(Streams.batches, { durable_name: 'mixed', filter_subject: subject, ack_policy: AckPolicy.Explicit });
    const consumer = await ctx.js.consumers.get(Streams.batches, 'mixed');
    const msgs: JsMsg[] = [];
    for await (const m of await consumer.fetch({ max_messages: sizes.length, expires: 5000 })) {
      msgs.push(m);
      if (msgs.length === sizes.length) break;
    }
    assert.equal(msgs.length, sizes.length);
    const owned = msgs.map((m) => ownedBody(m, m.data.byteLength));
    owned.forEach((own, i) => assert.equal(own !== undefined, sizes[i]! >= MOVE_MIN_BYTES, `body ${i} of ${sizes[i]} B`));
    for (const [i, own] of owned.entries()) {
      if (own === undefined) continue;
      for (const [j, m] of msgs.entries()) if (j !== i) assert.notEqual(m.data.buffer, own.buffer, `body ${i} shares a buffer with body ${j}`);
    }
    owned.forEach((own, i) => {
      if (own !== undefined) assert.deepEqual(moveAway(own), bodies[i], `moved body ${i}`);
    });
    msgs.forEach((m, i) => {
      if (owned[i] === undefined) assert.deepEqual(new Uint8Array(m.data), bodies[i], `body ${i}, not moved, is intact`);
      m.ack();
    });
  });

  test('a body below the size, or of another size than the caller says, is never taken as owned', async () => {
    const msg = await delivered('below', bytes(MOVE_MIN_BYTES + 10, 9));
    assert.equal(ownedBody(msg, MOVE_MIN_BYTES - 1), undefined, 'below MOVE_MIN_BYTES');
    assert.equal(ownedBody(msg, MOVE_MIN_BYTES + 11), undefined, 'a size that is not the body\'s');
    assert.ok(ownedBody(msg, MOVE_MIN_BYTES + 10) !== undefined);
    msg.ack();
  });
});
