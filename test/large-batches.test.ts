/**
 * Large batches through a fresh daemon: its first pulls are sized before any batch size is known, and the pulls
 * that follow must still stay within the server's per-connection max_pending (64 MiB), or the server cuts the
 * daemon off as a slow consumer. A pull once asked for ~500 batches of 1 MiB this way.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { JetbatchClient } from '../src/client/client.js';
import type { Daemon } from '../src/daemon/daemon.js';
import { join } from 'node:path';
import { FIXTURES, startDaemon } from './helpers/daemon.js';
import { NatsServer } from './helpers/nats-server.js';

const BATCHES = 96;
const API = { name: 'sizes', project: join(FIXTURES, 'sizes'), threads: 2 };
/** The largest item that fits a batch (max_payload 1 MiB, less the client's 4 KiB header room and framing). */
const ITEM_BYTES = 1024 * 1024 - 4096 - 16;

describe('large batches', () => {
  let server: NatsServer;
  let client: JetbatchClient;
  let daemon: Daemon | undefined;

  before(async () => {
    server = await NatsServer.start();
    // A first daemon registers the API, then goes away: the job waits for a fresh daemon, as after a restart.
    await (await startDaemon(server.url, [API])).close();
    client = await JetbatchClient.connect({ servers: [server.url] });
  });

  after(async () => {
    await client?.close();
    await daemon?.close();
    await server?.dispose();
  });

  test(`${BATCHES} batches of ~1 MiB on a fresh daemon: all handled whole, no slow-consumer disconnect`, async () => {
    const item = new Uint8Array(ITEM_BYTES).fill(7);
    const job = await client.submit({ api_name: 'sizes', batches: Array.from({ length: BATCHES }, () => [item]), workers: 1000 });
    daemon = await startDaemon(server.url, [API]);
    const final = await client.wait(job.job_id, { intervalMs: 200, timeoutMs: 120_000 });
    assert.equal(final.status, 'succeeded');
    assert.deepEqual([final.batch_metrics.succeeded, final.batch_metrics.failed], [BATCHES, 0]);
    const sizes: unknown[] = [];
    for await (const r of client.results(job.job_id)) sizes.push(r.result);
    assert.equal(sizes.length, BATCHES);
    for (const s of sizes) assert.deepEqual(s, [ITEM_BYTES]);
    const reconnects = (await daemon.metrics.natsReconnects.get()).values.reduce((n, v) => n + v.value, 0);
    assert.equal(reconnects, 0, 'the daemon was disconnected (slow consumer?)');
  });
});
