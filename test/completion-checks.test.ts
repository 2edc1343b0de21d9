/**
 * When a daemon checks whether a job is done (daemon/completion/scheduler.ts): 50 ms after its runner goes idle, and
 * only if it still is. A job on one lane with batches of 50 ms or more (no prefetch) goes idle after every batch for
 * the ~1 ms its next pull takes; a check asks the server for the job's consumer (`$JS.API.CONSUMER.INFO`), so checking
 * there cost a request per batch. Watched as the server sees it: the consumer-info requests on a real nats-server.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { JetbatchClient } from '../src/client/client.js';
import type { Daemon } from '../src/daemon/daemon.js';
import { consumerName, Streams } from '../src/fleet/protocol.js';
import { isTerminal } from '../src/types.js';
import { FIXTURES, startDaemon, tempDir, threadsLoaded } from './helpers/daemon.js';
import { NatsServer } from './helpers/nats-server.js';
import { waitUntil } from './helpers/wait.js';

describe('completion checks', () => {
  let server: NatsServer;
  let daemon: Daemon;
  let client: JetbatchClient;
  let nc: NatsConnection;

  before(async () => {
    server = await NatsServer.start();
    daemon = await startDaemon(server.url, [{ name: 'one-lane', project: join(FIXTURES, 'slow-hook'), threads: 1, config: { record_dir: tempDir(), delay_ms: 100 } }]);
    await threadsLoaded(daemon);
    client = await JetbatchClient.connect({ servers: [server.url] });
    nc = await connect({ servers: server.url });
  });

  after(async () => {
    await client?.close();
    await nc?.close();
    await daemon?.close();
    await server?.dispose();
  });

  /** Batches the daemon has counted as succeeded (acked), over every job. */
  async function succeeded(): Promise<number> {
    return (await daemon.metrics.batches.get()).values.filter((v) => v.labels.outcome === 'succeeded').reduce((n, v) => n + v.value, 0);
  }

  test('a job idle for a moment between batches is not checked each time; it is checked, and completes, at its end', async () => {
    const jobId = `checks-${process.pid}`;
    let infos = 0;
    const sub = nc.subscribe(`$JS.API.CONSUMER.INFO.${Streams.batches}.${consumerName(jobId)}`, {
      callback: () => {
        infos++;
      },
    });
    await nc.flush();
    const batches = 20;
    const before = await succeeded();
    await client.submit({ api_name: 'one-lane', job_id: jobId, items: Array.from({ length: batches }, (_, i) => i), batch_size: 1, workers: 1 });
    // Counted while the job still has a backlog: after the end, the puller asks for the consumer too (whether
    // batches came back), as often as the completion takes.
    await waitUntil('15 batches acked', async () => (await succeeded()) - before >= 15, { timeoutMs: 60_000, intervalMs: 20 });
    const midRun = infos;
    // The record only (a KV read): client.status() would ask for the consumer too.
    await waitUntil('the job ended', async () => isTerminal((await client.record(jobId)).status), { timeoutMs: 60_000, intervalMs: 100 });
    const record = await client.record(jobId);
    sub.unsubscribe();
    assert.equal(record.status, 'succeeded');
    assert.equal(record.batch_metrics?.succeeded, batches);
    // A check after every batch made it 15 or more here. What remains: the puller binding to the consumer, and a
    // periodic sweep that may fall between two batches.
    assert.ok(midRun <= 4, `consumer-info requests over the first 15 batches: ${midRun}`);
    assert.ok(infos > midRun, 'the job was checked at its end');
  });
});
