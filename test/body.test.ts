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
import type { FleetContext } from '../src/fleet/context.js';
import { Streams, Subjects } from '../src/fleet/protocol.js';
import { publishBatch } from '../src/fleet/submit.js';
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

  /**
   * Publishes `bodies` as batches 0… of job `name`: with jetbatch's batch headers (as the client publishes them) or,
   * when `headers` is false for one, as a bare message. Pulls them back through a fresh consumer in one pull, unacked.
   */
  async function delivered(name: string, bodies: Uint8Array[], headers: (i: number) => boolean = () => false): Promise<JsMsg[]> {
    const subject = Subjects.batch('api', name);
    for (const [i, b] of bodies.entries()) {
      if (headers(i)) await publishBatch(ctx, 'api', name, i, b);
      else await ctx.js.publish(subject, b);
    }
    await ctx.jsm.consumers.add(Streams.batches, { durable_name: name, filter_subject: subject, ack_policy: AckPolicy.Explicit });
    const consumer = await ctx.js.consumers.get(Streams.batches, name);
    const msgs: JsMsg[] = [];
    for await (const m of await consumer.fetch({ max_messages: bodies.length, expires: 5000 })) {
      msgs.push(m);
      if (msgs.length === bodies.length) break;
    }
    assert.equal(msgs.length, bodies.length, 'every batch was delivered');
    return msgs;
  }

  /** One batch, as delivered() gives it. */
  async function deliveredOne(name: string, body: Uint8Array, headers = false): Promise<JsMsg> {
    return (await delivered(name, [body], () => headers))[0]!;
  }

  function bytes(n: number, seed: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
    return b;
  }

  test('a large body is dropped from the message, and read back from the stream byte for byte', async () => {
    const body = bytes(DROP_MIN_BYTES + 12_345, 7);
    const msg = await deliveredOne('large', body);
    assert.deepEqual(new Uint8Array(msg.data), body);
    assert.equal(dropBody(msg, msg.data.byteLength), true);
    assert.equal(msg.data.byteLength, 0, 'the message no longer holds its body');
    assert.deepEqual(await bodyOf(ctx, msg, true), body);
    msg.ack();
  });

  test('a small body is kept, and given from the message itself', async () => {
    const body = bytes(DROP_MIN_BYTES - 1, 3);
    const msg = await deliveredOne('small', body);
    assert.equal(dropBody(msg, msg.data.byteLength), false);
    assert.equal(msg.data.byteLength, body.byteLength);
    assert.deepEqual(await bodyOf(ctx, msg, false), body);
    msg.ack();
  });

  test('a dropped body that has left the stream is a clear error, not empty bytes', async () => {
    const msg = await deliveredOne('gone', bytes(DROP_MIN_BYTES, 1));
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
    const msg = await deliveredOne('moved', body, true);
    assert.equal(msg.headers?.get('Jetbatch-Batch-Id'), '0', 'with the batch headers');
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
    // Every other one without headers: the body is then the whole message.
    const msgs = await delivered('mixed', bodies, (i) => i % 2 === 0);
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
    const msg = await deliveredOne('below', bytes(MOVE_MIN_BYTES + 10, 9));
    assert.equal(ownedBody(msg, MOVE_MIN_BYTES - 1), undefined, 'below MOVE_MIN_BYTES');
    assert.equal(ownedBody(msg, MOVE_MIN_BYTES + 11), undefined, 'a size that is not the body\'s');
    assert.ok(ownedBody(msg, MOVE_MIN_BYTES + 10) !== undefined);
    msg.ack();
  });
});
