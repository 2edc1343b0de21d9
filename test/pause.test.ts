/**
 * Pause and resume across the fleet (issue #13): a paused job starts no new batch on any daemon (running ones finish),
 * keeps its queue and counts, survives a restart of every daemon, is not timed out while paused, and resumes to
 * exact counts. What ran when is read from the handler's records, not from the daemons.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { JetbatchClient } from '../src/client/client.js';
import type { Daemon } from '../src/daemon/daemon.js';
import { FIXTURES, readRecords, startDaemon, tempDir } from './helpers/daemon.js';
import { NatsServer } from './helpers/nats-server.js';
import { intervals } from './helpers/timeline.js';
import { waitUntil } from './helpers/wait.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('pause and resume', () => {
  let server: NatsServer;
  let client: JetbatchClient;
  let daemons: Daemon[] = [];
  const recordDir = tempDir();
  const startAll = async (): Promise<void> => {
    daemons = await Promise.all(['A', 'B'].map((tag) => startDaemon(server.url, [{ name: 'pz', project: join(FIXTURES, 'recorder'), threads: 2, config: { record_dir: recordDir, tag } }])));
  };

  before(async () => {
    server = await NatsServer.start();
    await startAll();
    client = await JetbatchClient.connect({ servers: [server.url] });
  });

  after(async () => {
    await client?.close();
    await Promise.all(daemons.map((d) => d.close()));
    await server?.dispose();
  });

  test('a paused job starts nothing anywhere, survives a restart of every daemon and its own timeout, and resumes to exact counts', async () => {
    const items = Array.from({ length: 40 }, (_, i) => i);
    // A 9 s job timeout; the job is paused for longer than that and must not time out. Unpaused, it needs ~3 s (40 ×
    // 200 ms on 4 lanes, plus pick-up after start and after resume): a loaded machine (CI once ran it at load 14 and
    // the job was rightly timed out with 6 s) keeps a margin.
    const rec = await client.submit({ api_name: 'pz', items, batch_size: 1, workers: 4, timeout: 9, config: { delay_ms: 200 } });
    await waitUntil('some batches done', () => intervals(readRecords(recordDir), rec.job_id).filter((i) => i.end !== Infinity).length >= 8, { timeoutMs: 20_000 });
    const paused = await client.pause(rec.job_id);
    const pausedAt = Date.now();
    assert.notEqual(paused.paused_at, null);
    assert.equal((await client.pause(rec.job_id)).paused_at, paused.paused_at, 'pausing again changes nothing');

    // Whatever was running when pause returned finishes (the daemons' heartbeats say so within ~2 s); nothing starts.
    await waitUntil('no batch running', async () => (await client.status(rec.job_id)).running_batches === 0, { timeoutMs: 5000 });
    const during = await client.status(rec.job_id);
    assert.equal(during.status, 'running');
    assert.equal(during.paused_at, paused.paused_at);
    const done = during.batch_metrics.succeeded;
    assert.ok(done >= 8 && done < 40, `${done} succeeded before the pause`);
    assert.equal(done + during.batches_in_queue, 40, 'the queue and the counts are intact');

    // Every daemon restarts while the job is paused.
    await Promise.all(daemons.map((d) => d.close()));
    await startAll();
    await sleep(10_000 - (Date.now() - pausedAt)); // past the job's own 9 s timeout, counted from the pause
    const still = await client.status(rec.job_id);
    assert.equal(still.status, 'running', 'not timed out while paused');
    assert.equal(still.paused_at, paused.paused_at, 'the pause survived the restart');
    assert.deepEqual([still.batch_metrics.succeeded, still.batches_in_queue], [done, 40 - done], 'nothing ran while paused');
    const starts = intervals(readRecords(recordDir), rec.job_id).map((i) => i.start);
    assert.ok(starts.every((t) => t <= pausedAt), `a batch started ${Math.max(...starts) - pausedAt} ms after pause returned`);

    const resumed = await client.resume(rec.job_id);
    assert.equal(resumed.paused_at, null);
    assert.ok((resumed.paused_ms ?? 0) >= 10_000, `paused for ${resumed.paused_ms} ms`);
    const final = await client.wait(rec.job_id, { intervalMs: 100, timeoutMs: 60_000 });
    assert.equal(final.status, 'succeeded');
    assert.deepEqual([final.batch_metrics.succeeded, final.batch_metrics.failed, final.batches_in_queue], [40, 0, 0]);
    const ended = new Set(readRecords(recordDir).filter((r) => r.job === rec.job_id && r.ev === 'end').map((r) => Number(r.batch)));
    assert.deepEqual([...ended].sort((a, b) => a - b), items, 'every batch ran');
  });

  test('a job whose timeout passes while it runs unpaused is still timed out (the pause only moves the deadline)', async () => {
    const rec = await client.submit({ api_name: 'pz', items: Array.from({ length: 200 }, (_, i) => i), batch_size: 1, workers: 1, timeout: 3, config: { delay_ms: 200 } });
    await waitUntil('the job to run', () => intervals(readRecords(recordDir), rec.job_id).length >= 1, { timeoutMs: 20_000 });
    await client.pause(rec.job_id);
    await sleep(2000);
    await client.resume(rec.job_id);
    const final = await client.wait(rec.job_id, { intervalMs: 100, timeoutMs: 30_000 });
    assert.equal(final.status, 'timed_out');
    const took = Date.parse(final.end_time ?? '') - Date.parse(final.start_time);
    assert.ok(took >= 3000 + 3500 - 500 && took < 9000, `timed out ${took} ms after start: 3 s of timeout plus ~3.5 s paused`);
  });
});
