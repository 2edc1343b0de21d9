/**
 * The worker thread reports a handler constructor's time (`initMs`) with the outcome of exactly the task that ran
 * the constructor, even when another task of the thread finishes first (concurrency > 1). Drives the thread entry
 * through Piscina with the thread protocol, as the daemon's pool does.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Piscina } from 'piscina';
import { encodeValue } from '../src/fleet/protocol.js';
import type { JobSpec } from '../src/types.js';
import type { BatchesTask, CompleteTask, Outcome, WorkerData } from '../src/worker/thread-protocol.js';
import { unpackOutcomes, type WireOutcome } from '../src/worker/wire-outcomes.js';
import { FIXTURES } from './helpers/daemon.js';

const workerFile = new URL('../src/worker/worker.ts', import.meta.url);
const execArgv = process.execArgv.some((a) => a.includes('tsx')) ? process.execArgv : [...process.execArgv, '--import', 'tsx'];

function spec(jobId: string, config: Record<string, unknown>): JobSpec {
  return {
    job_id: jobId,
    api_name: 'worker-init',
    config,
    workers: 1,
    priority: 0,
    total_batch_count: 1,
    start_time: new Date().toISOString(),
    timeout: null,
    batch_timeout: 60,
    max_attempts: 1,
  };
}

function batches(job: JobSpec, n = 1): BatchesTask {
  const encoded = Array.from({ length: n }, (_, i) => encodeValue([i]));
  const ends: number[] = [];
  let end = 0;
  for (const e of encoded) ends.push((end += e.byteLength));
  const data = new Uint8Array(end);
  encoded.forEach((e, i) => data.set(e, ends[i - 1] ?? 0));
  return {
    kind: 'batches',
    jobId: job.job_id,
    job: encodeValue(job),
    batchIds: encoded.map((_, i) => String(i)),
    attempts: encoded.map(() => 1),
    data,
    ends,
    timeoutMs: 60_000,
  };
}

function complete(job: JobSpec): CompleteTask {
  const batch_metrics = { succeeded: 1, failed: 0, avg_time_per_batch: null };
  return { kind: 'complete', job, summary: { job_id: job.job_id, api_name: job.api_name, status: 'succeeded', total_batch_count: 1, batch_metrics, attempt: 1, rerun: false, output: null, results_stored: 0 } };
}

describe('worker thread: initMs travels with the task that constructed the handler', () => {
  const recordDir = mkdtempSync(join(tmpdir(), 'jetbatch-worker-init-'));
  let pool: Piscina;
  const run = async (task: BatchesTask): Promise<Outcome[]> => unpackOutcomes((await pool.run(task)) as WireOutcome[]);

  before(() => {
    const data: WorkerData = {
      apiName: 'worker-init',
      projectDir: join(FIXTURES, 'recorder'),
      handlerPath: undefined,
      python: 'python3',
      memoryLimitMb: undefined,
      gpus: [],
      logLevel: 'silent',
      host: 'test',
      daemonId: 'test',
      pretty: false,
      maxLineBytes: 16_384,
      nats: { servers: ['nats://127.0.0.1:1'] },
      s3: {},
      workerSlots: new SharedArrayBuffer(4),
    };
    // One thread taking two tasks at once, so two tasks share the thread's handler instances.
    pool = new Piscina({ filename: workerFile.href, minThreads: 1, maxThreads: 1, concurrentTasksPerWorker: 2, idleTimeout: Infinity, workerData: data, execArgv });
  });

  after(async () => {
    await pool.destroy();
    rmSync(recordDir, { recursive: true, force: true });
  });

  test('the first task of a job reports initMs on its first batch only; later tasks of the job report none', async () => {
    const job = spec('job-a', { record_dir: recordDir });
    const first = await run(batches(job, 3));
    assert.equal(first.length, 3);
    assert.ok(first.every((o) => o.ok));
    assert.equal(typeof first[0]!.initMs, 'number');
    assert.deepEqual(first.slice(1).map((o) => o.initMs), [undefined, undefined]);
    assert.equal((await run(batches(job)))[0]!.initMs, undefined);
  });

  test('a task that finishes while another task constructs its handler does not take that task’s initMs', async () => {
    const fast = spec('job-fast', { record_dir: recordDir });
    const slow = spec('job-slow', { record_dir: recordDir, delay_ms: 300 });
    assert.equal(typeof (await run(batches(fast)))[0]!.initMs, 'number', 'job-fast is constructed on the thread');
    // job-slow's task constructs its handler, then waits in handleBatch; job-fast's task ends meanwhile.
    const order: string[] = [];
    const [slowOutcomes, fastOutcomes] = await Promise.all([
      run(batches(slow)).then((o) => (order.push('slow'), o)),
      run(batches(fast)).then((o) => (order.push('fast'), o)),
    ]);
    assert.deepEqual(order, ['fast', 'slow'], 'the fast task ended first');
    assert.equal(fastOutcomes[0]!.initMs, undefined, 'the task that did not construct reports no initMs');
    assert.equal(typeof slowOutcomes[0]!.initMs, 'number', 'the task that constructed reports initMs');
  });

  test('onJobComplete reports initMs only when its task constructed the handler', async () => {
    const known = spec('job-known', { record_dir: recordDir });
    await run(batches(known));
    const knownDone = (await pool.run(complete(known))) as Outcome;
    assert.ok(knownDone.ok);
    assert.equal(knownDone.initMs, undefined);
    const fresh = (await pool.run(complete(spec('job-fresh', { record_dir: recordDir })))) as Outcome;
    assert.ok(fresh.ok);
    assert.equal(typeof fresh.initMs, 'number');
  });
});
