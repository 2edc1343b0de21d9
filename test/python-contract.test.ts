/** Python handlers on a real nats-server and real Python processes: the contract, results, .env, files, client. */
import assert from 'node:assert/strict';
import { execSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { JetbatchClient } from '../src/client/client.js';
import type { Daemon } from '../src/daemon/daemon.js';
import { FIXTURES, startDaemon, tempDir } from './helpers/daemon.js';
import { NatsServer } from './helpers/nats-server.js';
import { pythonApi, runnerPids } from './helpers/python.js';
import { waitUntil } from './helpers/wait.js';

describe('python handlers: the contract', () => {
  let server: NatsServer;
  let daemon: Daemon;
  let client: JetbatchClient;
  const recordDir = tempDir('jetbatch-py-');

  before(async () => {
    server = await NatsServer.start();
    daemon = await startDaemon(server.url, [
      pythonApi('python-contract', { config: { label: 'api-label', record_dir: recordDir } }),
      pythonApi('python-minimal', { threads: 2, config: { factor: 2, record_dir: recordDir } }),
      pythonApi('python-client', { config: { next_api: 'python-minimal' } }),
      { ...pythonApi('python-contract', { gpus: [5], config: { record_dir: recordDir } }), name: 'py-gpu' },
    ]);
    client = await JetbatchClient.connect({ servers: [server.url] });
  });

  after(async () => {
    await client?.close();
    await daemon?.close();
    await server?.dispose();
  });

  const wait = (id: string) => client.wait(id, { intervalMs: 100, timeoutMs: 60_000 });

  test('the full signatures: config and job_spec, batch ids, results converted, None stores nothing, one hook', async () => {
    const items = Array.from({ length: 8 }, (_, i) => ({ n: i }));
    const job = await client.submit({ api_name: 'python-contract', items, batch_size: 2, config: { label: 'job-label' } });
    const final = await wait(job.job_id);
    assert.equal(final.status, 'succeeded');
    assert.deepEqual([final.batch_metrics.succeeded, final.batch_metrics.failed], [4, 0]);
    const results = [];
    for await (const r of client.results(job.job_id, { order: 'batch' })) results.push(r);
    assert.deepEqual(results.map((r) => r.batch_id), ['0', '1', '2'], 'batch 3 returned None: nothing stored');
    const first = results[0]!.result as Record<string, unknown>;
    assert.equal(first.batch_id, '0');
    assert.equal(first.job_id, job.job_id);
    assert.equal(first.total, 4);
    assert.equal(first.label, 'job-label', 'the job config wins over the API config');
    assert.deepEqual(first.items, [{ n: 0 }, { n: 1 }]);
    assert.equal(first.sum, 1, 'numpy integer → int');
    assert.equal(first.mean, 0.5, 'numpy float32 → float');
    assert.equal(first.flag, true, 'numpy bool → bool');
    assert.deepEqual(first.vector, [0, 1, 2], 'numpy array → list');
    assert.deepEqual(first.matrix, [[1, 1], [1, 1]], '2-D array → nested lists');
    assert.deepEqual(new Uint8Array(first.raw as Uint8Array), new Uint8Array([0, 1]), 'bytes stay bytes');
    assert.deepEqual(first.pair, [1, 'two'], 'tuple → list');
    assert.equal(first.cwd, join(FIXTURES, 'python-contract'), 'the process runs in the project folder');
    assert.equal(first.cuda, null, 'no GPUs listed: CUDA_VISIBLE_DEVICES not set');
    assert.equal(first.unbuffered, '1');
    // One thread, one process, one instance per job: its batches counted up on the same instance.
    assert.deepEqual(results.map((r) => (r.result as { instance_batches: number }).instance_batches).sort(), [1, 2, 3]);
    const hook = readFileSync(join(recordDir, `complete-${job.job_id}.json`), 'utf8').trim().split('\n');
    assert.equal(hook.length, 1, 'on_job_complete ran once');
    const summary = JSON.parse(hook[0]!) as { status: string; batch_metrics: { succeeded: number } };
    assert.equal(summary.status, 'succeeded');
    assert.equal(summary.batch_metrics.succeeded, 4);
  });

  test("the thread's GPU is the process's CUDA_VISIBLE_DEVICES", async () => {
    const job = await client.submit({ api_name: 'py-gpu', batches: [[{ n: 1 }]] });
    assert.equal((await wait(job.job_id)).status, 'succeeded');
    for await (const r of client.results(job.job_id)) assert.equal((r.result as { cuda: string }).cuda, '5');
  });

  test('a new Handler per job in the same long-lived process', async () => {
    const a = await client.submit({ api_name: 'python-contract', batches: [[{ n: 1 }]] });
    const b = await client.submit({ api_name: 'python-contract', batches: [[{ n: 2 }]] });
    await wait(a.job_id);
    await wait(b.job_id);
    const read = async (id: string) => {
      for await (const r of client.results(id)) return r.result as { instance_batches: number; job_id: string };
      throw new Error('no result');
    };
    assert.equal((await read(a.job_id)).instance_batches, 1);
    assert.equal((await read(b.job_id)).instance_batches, 1, 'a fresh instance for the second job');
    // One process per thread (1 + 2 + 1 + 1), kept across jobs (python-minimal's threads may not have started yet).
    await waitUntil('one Python process per thread', () => runnerPids().length === 5, { timeoutMs: 10_000, detail: () => execSync('ps -ef --forest').toString() });
  });

  test('the short signatures: __init__(config), handle_batch(payload), on_job_complete()', async () => {
    const job = await client.submit({ api_name: 'python-minimal', items: [1, 2, 3, 4, 5], batch_size: 2 });
    const final = await wait(job.job_id);
    assert.equal(final.status, 'succeeded');
    const results = [];
    for await (const r of client.results(job.job_id, { order: 'batch' })) results.push(r.result);
    assert.deepEqual(results, [[2, 4], [6, 8], [10]]);
    await waitUntil('the hook to write', () => readdirSync(recordDir).includes('minimal-complete'), { timeoutMs: 5000 });
    assert.equal(readFileSync(join(recordDir, 'minimal-complete'), 'utf8'), 'done\n');
  });

  test('jetbatch.client() from Python submits a job, waits for it and reports errors with their code', async () => {
    const job = await client.submit({ api_name: 'python-client', batches: [[1, 2, 3]] });
    const final = await wait(job.job_id);
    assert.equal(final.status, 'succeeded', JSON.stringify(final.error));
    let result: Record<string, unknown> | undefined;
    for await (const r of client.results(job.job_id)) result = r.result as Record<string, unknown>;
    assert.deepEqual(result, { submitted: `${job.job_id}-next-0`, status: 'succeeded', missing_code: 'JB_JOB_NOT_FOUND' });
    const chained = [];
    for await (const r of client.results(`${job.job_id}-next-0`, { order: 'batch' })) chained.push(r.result);
    assert.deepEqual(chained, [[2, 4], [6]]);
  });

  test('client calls while the next batches are written ahead to the process: each batch answered once, first attempt', async () => {
    const batches = Array.from({ length: 300 }, (_, i) => [i]);
    const job = await client.submit({ api_name: 'python-client', batches, workers: 300, config: { mode: 'status' } });
    const final = await wait(job.job_id);
    assert.equal(final.status, 'succeeded', JSON.stringify(final.error));
    assert.deepEqual([final.batch_metrics.succeeded, final.batch_metrics.failed], [300, 0]);
    const results = [];
    for await (const r of client.results(job.job_id, { order: 'batch' })) results.push(r);
    assert.deepEqual(results.map((r) => r.result), batches.map((b) => ({ items: b, job_id: job.job_id })));
    assert.deepEqual(results.filter((r) => r.attempt !== 1).map((r) => r.batch_id), [], 'no batch needed a retry');
  });

  test('closing the daemon leaves no Python process behind', async () => {
    assert.ok(runnerPids().length > 0);
    await daemon.close();
    await waitUntil('the runner processes to exit', () => runnerPids().length === 0, { timeoutMs: 10_000, detail: () => String(runnerPids()) });
  });
});
