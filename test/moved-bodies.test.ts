/**
 * Batch bodies on their way to the handlers, byte for byte, on a real nats-server: large bodies are moved to their
 * thread without a copy (body.ts ownedBody, grouping.ts: alone in their task), smaller ones are copied into grouped
 * tasks. A mixed job of both, each batch with its own content, reaches JS and Python handlers whole and unmixed.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { JetbatchClient } from '../src/client/client.js';
import { MOVE_MIN_BYTES } from '../src/daemon/batches/body.js';
import type { Daemon } from '../src/daemon/daemon.js';
import { FIXTURES, startDaemon } from './helpers/daemon.js';
import { NatsServer } from './helpers/nats-server.js';
import { pythonApi } from './helpers/python.js';

/** The largest item that fits a batch (as large-batches.test.ts). */
const MAX_ITEM = 1024 * 1024 - 4096 - 16;
/** Item sizes around the move threshold and the socket read size, repeated so tasks mix. */
const SIZES = [MOVE_MIN_BYTES, 10, MAX_ITEM, MOVE_MIN_BYTES - 16, 70 * 1024, 600 * 1024, 3, 64 * 1024, MOVE_MIN_BYTES + 1, 1000];
const ROUNDS = 3;

function item(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

describe('batch bodies reach the handlers whole, moved or copied', () => {
  let server: NatsServer;
  let daemon: Daemon;
  let client: JetbatchClient;

  before(async () => {
    server = await NatsServer.start();
    daemon = await startDaemon(server.url, [
      { name: 'digests', project: join(FIXTURES, 'digests'), threads: 2 },
      pythonApi('python-digests', { threads: 2 }),
    ]);
    client = await JetbatchClient.connect({ servers: [server.url] });
  });

  after(async () => {
    await client?.close();
    await daemon?.close();
    await server?.dispose();
  });

  for (const api of ['digests', 'python-digests']) {
    test(`${api}: every batch's bytes, large and small, arrive exact and in their own batch`, async () => {
      const batches: Uint8Array[][] = [];
      for (let r = 0; r < ROUNDS; r++) for (const [i, n] of SIZES.entries()) batches.push([item(n, r * 100 + i + 1)]);
      const expected = batches.map((b) => [createHash('sha256').update(b[0]!).digest('hex')]);
      const job = await client.submit({ api_name: api, batches, workers: 100 });
      const final = await client.wait(job.job_id, { intervalMs: 100, timeoutMs: 120_000 });
      assert.equal(final.status, 'succeeded');
      assert.deepEqual([final.batch_metrics.succeeded, final.batch_metrics.failed], [batches.length, 0]);
      const got = new Map<string, unknown>();
      for await (const r of client.results(job.job_id)) got.set(r.batch_id, r.result);
      assert.equal(got.size, batches.length);
      expected.forEach((digest, i) => assert.deepEqual(got.get(String(i)), digest, `batch ${i} (${SIZES[i % SIZES.length]} B)`));
    });
  }
});
