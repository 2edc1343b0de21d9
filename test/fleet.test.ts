/** Two daemon processes on one nats-server: shared work, the fleet-wide `workers` cap, onJobComplete once. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { JetbatchClient } from '../src/client/client.js';
import { DaemonProcess, FIXTURES, maxConcurrency, readRecords, tempDir } from './helpers/daemon.js';
import { NatsServer } from './helpers/nats-server.js';

describe('fleet: two daemon processes', () => {
  let server: NatsServer;
  let daemons: DaemonProcess[] = [];
  let client: JetbatchClient;
  const recordDir = tempDir();

  before(async () => {
    server = await NatsServer.start();
    const api = { name: 'recorder', project: join(FIXTURES, 'recorder'), threads: 2, config: { record_dir: recordDir } };
    daemons = await Promise.all([DaemonProcess.spawn(server.url, [api]), DaemonProcess.spawn(server.url, [api])]);
    client = await JetbatchClient.connect({ servers: [server.url] });
  });

  after(async () => {
    await client?.close();
    for (const d of daemons) assert.equal(await d.kill('SIGTERM'), 0, d.output);
    await server?.dispose();
  });

  test('both daemons share one job, the workers cap holds fleet-wide, onJobComplete runs once', async () => {
    const items = Array.from({ length: 400 }, (_, i) => i);
    const record = await client.submit({ api_name: 'recorder', items, batch_size: 4, workers: 3, config: { delay_ms: 25 } });
    const final = await client.wait(record.job_id, { intervalMs: 100, timeoutMs: 90_000 });
    assert.equal(final.status, 'succeeded');
    assert.deepEqual([final.batch_metrics.succeeded, final.batch_metrics.failed], [100, 0]);

    const records = readRecords(recordDir).filter((r) => r.job === record.job_id);
    const seen = records.filter((r) => r.ev === 'end').flatMap((r) => r.items as number[]).sort((a, b) => a - b);
    assert.deepEqual(seen, items);
    const pids = new Set(records.filter((r) => r.ev === 'end').map((r) => r.pid));
    assert.equal(pids.size, 2, 'both daemons ran batches (workers 3 is more than one daemon\'s 2 threads)');
    const peak = maxConcurrency(records, record.job_id);
    assert.ok(peak <= 3, `at most 3 batches at once fleet-wide, saw ${peak}`);
    assert.ok(peak >= 2, `the cap is used, saw ${peak}`);
    assert.equal(records.filter((r) => r.ev === 'complete').length, 1, 'onJobComplete exactly once');
  });

  test('a workers cap of 1 serialises a job across both daemons', async () => {
    const record = await client.submit({ api_name: 'recorder', items: Array.from({ length: 30 }, (_, i) => i), batch_size: 1, workers: 1, config: { delay_ms: 20 } });
    const final = await client.wait(record.job_id, { intervalMs: 100, timeoutMs: 60_000 });
    assert.equal(final.status, 'succeeded');
    assert.equal(maxConcurrency(readRecords(recordDir), record.job_id), 1);
    assert.equal(readRecords(recordDir).filter((r) => r.job === record.job_id && r.ev === 'complete').length, 1);
  });
});
