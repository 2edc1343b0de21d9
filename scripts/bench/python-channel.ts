/**
 * jetbatch's Python channel without NATS: the daemon's own pool (ApiPool, task-runner.ts's task loop, the Python runtime
 * and runner) fed BatchesTasks straight from memory (built before the clock starts), as the daemon hands a backlog
 * to its threads (a pull's worth of batches split over the threads, at most MAX_GROUP per task, one task per thread
 * at a time), running the bench's handler.py. The same bytes, counts and processes
 * (one per thread) as the raw pipe (raw-pipe.ts), so the ratio isolates what jetbatch's thread ↔ process channel
 * costs; the `python:jetbatch:*` steps add NATS (consume, ack) on the same two cores. Timed from the go (every
 * thread's handler constructed) to the last outcome.
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ApiPool } from '../../src/daemon/pools/pool.js';
import { groupSize } from '../../src/daemon/batches/grouping.js';
import { pullLimit } from '../../src/daemon/batches/puller.js';
import { encodeValue } from '../../src/fleet/protocol.js';
import type { BatchesTask, Outcome } from '../../src/worker/thread-protocol.js';
import type { JobSpec } from '../../src/types.js';
import { throughput, type Throughput } from './figures.js';
import { nowMs } from './handlers/work.js';
import { collectGarbage } from './heap.js';

export interface PythonChannelOptions {
  python: string;
  /** The bench's Python project (handlers/python). */
  project: string;
  threads: number;
}

export async function pythonChannel(bytes: Uint8Array, itemsPerBatch: number, n: number, o: PythonChannelOptions): Promise<Throughput> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  const pool = new ApiPool({
    api: {
      name: 'b-py-channel', project: o.project, handler: join(o.project, 'handler.py'), deployed: false, python: o.python,
      threads: o.threads, concurrency: 1, config: {}, batchTimeoutMs: 120_000, initTimeoutMs: 120_000, maxAttempts: 1,
      backoff: { initial_ms: 0, factor: 1, max_ms: 0, jitter: 0 }, memoryLimitMb: undefined, gpus: [], logLevel: 'warn',
    },
    host: hostname(), daemonId: 'bench', pretty: false, maxLineBytes: 1 << 20, nats: { servers: ['127.0.0.1:1'] } as never, env,
    onMetric: () => {},
  });
  const spec: JobSpec = {
    job_id: 'bench-channel', api_name: 'b-py-channel', config: {}, workers: o.threads, priority: 0, total_batch_count: n,
    start_time: new Date().toISOString(), timeout: null, batch_timeout: 120, max_attempts: 1,
  };
  const job = encodeValue(spec);
  let batchNo = 0;
  const task = (count: number): BatchesTask => {
    const data = new Uint8Array(bytes.byteLength * count);
    const ends: number[] = [];
    const batchIds: string[] = [];
    for (let i = 0; i < count; i++) {
      data.set(bytes, i * bytes.byteLength);
      ends.push((i + 1) * bytes.byteLength);
      batchIds.push(String(batchNo++));
    }
    return { kind: 'batches', jobId: spec.job_id, job, batchIds, attempts: batchIds.map(() => 1), data, ends, timeoutMs: 120_000 };
  };
  const run = async (t: BatchesTask): Promise<number> => {
    const out: Outcome[] | Outcome = await pool.runBatches(t, 0, new AbortController().signal, () => 'timeout');
    const outcomes = Array.isArray(out) ? out : [out];
    const failed = outcomes.find((x) => !x.ok);
    if (failed !== undefined || outcomes.length !== t.batchIds.length) throw new Error(`python channel: a task failed: ${JSON.stringify(failed ?? outcomes.length)}`);
    return outcomes.length;
  };
  try {
    // Warm-up: every thread's process started and the job's handler constructed there.
    await Promise.all(Array.from({ length: o.threads * 2 }, () => run(task(2))));
    // Tasks as large as the daemon makes them from a backlog: a pull's worth of batches (bounded in bytes) split over
    // the threads, at most MAX_GROUP each (64 × 128 B; 4 × 1 MiB).
    const group = groupSize(pullLimit(bytes.byteLength), o.threads, false);
    // Built before the clock starts: the raw pipe sends bytes it already has, so copying the batches into tasks
    // (which the daemon does as messages arrive) is not the channel's cost.
    const tasks: BatchesTask[] = [];
    for (let left = n; left > 0; left -= group) tasks.push(task(Math.min(group, left)));
    let done = 0;
    collectGarbage();
    const started = nowMs();
    await Promise.all(Array.from({ length: o.threads }, async () => {
      for (let t = tasks.shift(); t !== undefined; t = tasks.shift()) {
        const answered = await run(t);
        done += answered;
      }
    }));
    const seconds = (nowMs() - started) / 1000;
    if (done !== n) throw new Error(`python channel: ${done} of ${n} batches answered`);
    return throughput(n, itemsPerBatch, bytes.byteLength, seconds);
  } finally {
    await pool.close();
  }
}
