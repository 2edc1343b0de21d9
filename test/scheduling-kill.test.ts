/**
 * Scheduling survives a daemon killed with kill -9 mid-job (issue #13): nothing is lost, and the job's `workers` cap
 * holds before, during and after (the killed daemon's batches stay counted until their lease lapses, then run
 * elsewhere). Daemons run as child processes; concurrency is measured from what the handler recorded.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { JetbatchClient } from '../src/client/client.js';
import { DaemonProcess, FIXTURES, readRecords, tempDir } from './helpers/daemon.js';
import { NatsServer } from './helpers/nats-server.js';
import { daemonsOf, intervals, peak } from './helpers/timeline.js';
import { waitUntil } from './helpers/wait.js';

describe('scheduling: a daemon killed with kill -9 mid-job', () => {
  let server: NatsServer;
  let client: JetbatchClient;
  const daemons = new Map<string, DaemonProcess>();
  const recordDir = tempDir();
  const spawn = async (tag: string): Promise<DaemonProcess> => {
    const api = { name: 'sched', project: join(FIXTURES, 'recorder'), threads: 2, config: { record_dir: recordDir, tag } };
    const d = await DaemonProcess.spawn(server.url, [api]);
    daemons.set(tag, d);
    return d;
  };

  before(async () => {
    server = await NatsServer.start();
    await Promise.all([spawn('P1'), spawn('P2')]);
    client = await JetbatchClient.connect({ servers: [server.url] });
  });

  after(async () => {
    await client?.close();
    await Promise.all([...daemons.values()].map((d) => d.kill('SIGKILL')));
    await server?.dispose();
  });

  test('loses nothing, and never runs more than workers batches at once, before or after', async () => {
    const items = Array.from({ length: 30 }, (_, i) => i);
    const rec = await client.submit({ api_name: 'sched', items, batch_size: 1, workers: 3, config: { delay_ms: 500 } });
    await waitUntil('batches running on both daemons', () => daemonsOf(intervals(readRecords(recordDir), rec.job_id)).size === 2, { timeoutMs: 20_000 });
    // Killed while a batch of 500 ms started less than 250 ms ago: certainly cut off.
    const justStarted = (): boolean => intervals(readRecords(recordDir), rec.job_id).some((i) => i.daemon === 'P1' && i.end === Infinity && Date.now() - i.start < 250);
    await waitUntil('a batch starting on P1', justStarted, { timeoutMs: 20_000, intervalMs: 20 });
    assert.equal(await daemons.get('P1')!.kill('SIGKILL'), 'SIGKILL');
    const killedAt = Date.now();
    // A third daemon joins: with 4 threads alive for a job of workers 3, the cap is what limits it.
    await spawn('P3');
    const final = await client.wait(rec.job_id, { intervalMs: 200, timeoutMs: 90_000 });
    assert.equal(final.status, 'succeeded');
    assert.deepEqual([final.batch_metrics.succeeded, final.batch_metrics.failed], [30, 0]);

    const records = readRecords(recordDir);
    const ended = new Set(records.filter((r) => r.job === rec.job_id && r.ev === 'end').map((r) => Number(r.batch)));
    assert.deepEqual([...ended].sort((a, b) => a - b), items, 'every batch ran to its end somewhere');
    // Attempts cut off by the kill end when the process died.
    const list = intervals(records, rec.job_id, killedAt);
    const onP1 = list.filter((i) => i.daemon === 'P1');
    assert.ok(onP1.some((i) => i.end === killedAt), `the kill interrupted a running batch (killed at ${killedAt}: ${JSON.stringify(onP1)})`);
    assert.ok(peak(list) <= 3, `at most 3 at once fleet-wide, saw ${peak(list)}`);
    const afterKill = list.filter((i) => i.start > killedAt);
    assert.ok(daemonsOf(afterKill).has('P3'), 'the daemon that joined after the kill took a share');
    assert.equal(peak(afterKill), 3, 'after the kill, the job still runs 3 at once');
  });
});
