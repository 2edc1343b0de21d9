/**
 * A batch's NATS lease (its consumer's ack_wait = the daemon's `lease`), on a real nats-server and real worker
 * threads, watched as the server sees it: the acks (`+ACK`) and in-progress marks (`+WPI`) the daemon publishes on the
 * batches' reply subjects. The heartbeat keeps a batch longer than the lease in progress, so it is never redelivered;
 * ctx.extendLease() marks it in progress at once; a batch that merely starts sends nothing (one message per batch
 * fewer, for the server and the daemon, when batches come one at a time).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { JetbatchClient } from '../src/client/client.js';
import type { Daemon } from '../src/daemon/daemon.js';
import { consumerName, Streams } from '../src/fleet/protocol.js';
import { FIXTURES, startDaemon, threadsLoaded } from './helpers/daemon.js';
import { NatsServer } from './helpers/nats-server.js';
import { waitUntil } from './helpers/wait.js';

const decoder = new TextDecoder();

describe('batch leases', () => {
  let server: NatsServer;
  /** lease 30 s: its heartbeat (every 10 s) never ticks within a short job. */
  let long: Daemon;
  /** lease 3 s: heartbeat every second. */
  let short: Daemon;
  let client: JetbatchClient;
  let nc: NatsConnection;

  before(async () => {
    server = await NatsServer.start();
    const project = join(FIXTURES, 'extends-lease');
    long = await startDaemon(server.url, [{ name: 'long-lease', project, threads: 2 }], { lease: '30s' });
    short = await startDaemon(server.url, [{ name: 'short-lease', project, threads: 1 }], { lease: '3s' });
    await Promise.all([threadsLoaded(long), threadsLoaded(short)]);
    client = await JetbatchClient.connect({ servers: [server.url] });
    nc = await connect({ servers: server.url });
  });

  after(async () => {
    await client?.close();
    await nc?.close();
    await long?.close();
    await short?.close();
    await server?.dispose();
  });

  /** Counts what the daemons publish on the reply subjects of `jobId`'s batches, by kind (`+ACK`, `+WPI`, …). */
  async function watchAcks(jobId: string): Promise<{ counts: Map<string, number>; sub: Subscription }> {
    const counts = new Map<string, number>();
    const sub = nc.subscribe(`$JS.ACK.${Streams.batches}.${consumerName(jobId)}.>`, {
      callback: (err, m) => {
        if (err !== null) return;
        const kind = decoder.decode(m.data).split(' ')[0] ?? '';
        counts.set(kind, (counts.get(kind) ?? 0) + 1);
      },
    });
    await nc.flush();
    return { counts, sub };
  }

  /** A job id the client will use: jobs are named by the caller here, so the ack subjects can be watched first. */
  let seq = 0;
  const nextJobId = (): string => `lease-test-${process.pid}-${++seq}`;

  test('batches that start and end within their lease are acked once each and never marked in progress', async () => {
    const jobId = nextJobId();
    const { counts, sub } = await watchAcks(jobId);
    const record = await client.submit({ api_name: 'long-lease', job_id: jobId, items: Array.from({ length: 40 }, (_, i) => i), batch_size: 1, workers: 2 });
    const status = await client.wait(record.job_id, { timeoutMs: 60_000, intervalMs: 100 });
    assert.equal(status.status, 'succeeded');
    await nc.flush();
    await waitUntil('40 acks seen', () => counts.get('+ACK') === 40, { timeoutMs: 5000, detail: () => JSON.stringify([...counts]) });
    assert.equal(counts.get('+WPI') ?? 0, 0, 'no in-progress mark for a batch that merely started');
    sub.unsubscribe();
  });

  test('ctx.extendLease() marks the batch in progress at once, each call', async () => {
    const jobId = nextJobId();
    const { counts, sub } = await watchAcks(jobId);
    const record = await client.submit({ api_name: 'long-lease', job_id: jobId, items: [1, 2, 3], batch_size: 1, workers: 1, config: { extends: 2 } });
    const status = await client.wait(record.job_id, { timeoutMs: 60_000, intervalMs: 100 });
    assert.equal(status.status, 'succeeded');
    await waitUntil('3 acks seen', () => counts.get('+ACK') === 3, { timeoutMs: 5000, detail: () => JSON.stringify([...counts]) });
    assert.equal(counts.get('+WPI'), 6, 'two marks for each of the three batches');
    sub.unsubscribe();
  });

  test('a batch running three times the lease is kept in progress by the heartbeat and never redelivered', async () => {
    const jobId = nextJobId();
    const { counts, sub } = await watchAcks(jobId);
    const record = await client.submit({ api_name: 'short-lease', job_id: jobId, items: [1], batch_size: 1, workers: 1, config: { sleep_ms: 9000 } });
    await waitUntil('the batch running', async () => (await client.status(record.job_id)).status === 'running', { timeoutMs: 20_000 });
    // Two leases after its delivery (and well before it ends): a lapsed lease would have been redelivered by now.
    await new Promise((r) => setTimeout(r, 6500));
    const info = await (await jetstreamManager(nc)).consumers.info(Streams.batches, consumerName(jobId));
    assert.equal(info.num_ack_pending, 1, 'the batch is still out, on its first delivery');
    assert.equal(info.num_redelivered, 0, 'never redelivered');
    const status = await client.wait(record.job_id, { timeoutMs: 60_000, intervalMs: 100 });
    assert.equal(status.status, 'succeeded');
    assert.ok((counts.get('+WPI') ?? 0) >= 5, `marked in progress about every second: ${JSON.stringify([...counts])}`);
    sub.unsubscribe();
  });
});
