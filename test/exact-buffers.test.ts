/**
 * Large messages received into one buffer of their exact size (fleet/exact-buffers.ts), on a real nats-server: every
 * connection jetbatch opens is patched, and stays so across a reconnect; messages of every size around the socket
 * read (64 KiB), with and without headers, arrive byte for byte, in order, however they are split between reads; a
 * large one owns a buffer of its exact size.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { connect, headers, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { connectNats } from '../src/fleet/connect.js';
import { receivesIntoExactBuffers } from '../src/fleet/exact-buffers.js';
import { NatsServer } from './helpers/nats-server.js';
import { waitUntil } from './helpers/wait.js';

const KiB = 1024;
/** Sizes around one socket read, several reads, and the server's max_payload (1 MiB by default). */
const SIZES = [0, 1, 100, 64 * KiB - 1, 64 * KiB, 64 * KiB + 1, 100 * KiB, 256 * KiB, 700 * KiB, 1024 * KiB - 200];

/** The message's whole buffer as NATS.js received it (header block, then body): a view of what it was assembled in. */
function received(m: Msg): Uint8Array {
  const raw = (m as unknown as { _rdata?: unknown })._rdata;
  assert.ok(raw instanceof Uint8Array, 'NATS.js keeps the received bytes as _rdata');
  return raw;
}

describe('large messages received into buffers of their exact size', () => {
  let server: NatsServer;
  let patched: NatsConnection;
  let stock: NatsConnection;
  let sender: NatsConnection;

  before(async () => {
    server = await NatsServer.start();
    patched = await connectNats({ servers: [server.url] }, { reconnectForever: true });
    stock = await connect({ servers: [server.url] });
    sender = await connect({ servers: [server.url], maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  });

  after(async () => {
    await Promise.all([patched, stock, sender].map((nc) => nc?.close()));
    await server?.dispose();
  });

  /** Sends `bodies` on `subject` (every other one with a header) and collects what `nc` receives, in order. */
  async function roundTrip(nc: NatsConnection, subject: string, bodies: Uint8Array[]): Promise<Msg[]> {
    const got: Msg[] = [];
    const sub = nc.subscribe(subject, { max: bodies.length, callback: (err, m) => {
        if (err === null) got.push(m);
      },
    });
    await nc.flush();
    for (const [i, b] of bodies.entries()) {
      if (i % 2 === 0) sender.publish(subject, b);
      else {
        const h = headers();
        h.set('Jetbatch-Batch-Id', `batch-${i}`);
        sender.publish(subject, b, { headers: h });
      }
    }
    await sender.flush();
    await waitUntil(`${bodies.length} messages on ${subject}`, () => got.length === bodies.length, { timeoutMs: 20_000 });
    await sub.closed;
    return got;
  }

  function assertIntact(got: Msg[], bodies: Uint8Array[]): void {
    assert.equal(got.length, bodies.length);
    for (const [i, m] of got.entries()) {
      assert.equal(Buffer.compare(Buffer.from(m.data), Buffer.from(bodies[i]!)), 0, `message ${i} (${bodies[i]!.byteLength} bytes) arrived intact`);
      if (i % 2 === 1) assert.equal(m.headers?.get('Jetbatch-Batch-Id'), `batch-${i}`, `message ${i}'s header arrived`);
    }
  }

  test('every connection jetbatch opens is patched', () => {
    assert.equal(receivesIntoExactBuffers(patched), true);
    assert.equal(receivesIntoExactBuffers(stock), false);
  });

  test('messages of every size arrive intact, in order, split however the reads fall', async () => {
    // Each size twice, in a shuffled order, so parts of one message share reads with parts of others.
    const bodies = [...SIZES, ...SIZES.slice().reverse()].map((n) => randomBytes(n));
    assertIntact(await roundTrip(patched, 'exact.mixed', bodies), bodies);
  });

  test('a large message owns a buffer of its exact size', async () => {
    // (Stock NATS.js grows it by doubling: between its size and about twice that, depending on where the reads split.)
    const bodies = [randomBytes(1000 * KiB), randomBytes(300 * KiB), randomBytes(65 * KiB)];
    const got = await roundTrip(patched, 'exact.owned', bodies);
    assertIntact(got, bodies);
    for (const [i, m] of got.entries()) {
      const raw = received(m);
      assert.equal(raw.byteOffset, 0, `message ${i} starts its buffer`);
      assert.equal(raw.buffer.byteLength, raw.byteLength, `message ${i}'s buffer is exactly its size`);
    }
  });

  test('a reconnect keeps the connection patched', async () => {
    await server.stop();
    await server.restart();
    await waitUntil('the patched connection to reconnect', async () => {
      try {
        await patched.flush();
        return true;
      } catch {
        return false;
      }
    }, { timeoutMs: 20_000 });
    assert.equal(receivesIntoExactBuffers(patched), true);
    const bodies = [randomBytes(900 * KiB), randomBytes(10), randomBytes(200 * KiB)];
    const got = await roundTrip(patched, 'exact.after', bodies);
    assertIntact(got, bodies);
    assert.equal(received(got[0]!).buffer.byteLength, received(got[0]!).byteLength);
  });
});
