/**
 * Raw reference of the Python channel: the same batch bytes through bare Python loops (handlers/raw_echo.py) on the
 * same kind of pipes as jetbatch's handler processes, one process per worker thread (handlers/raw-pipe-thread.ts),
 * one request outstanding per process, without NATS and without jetbatch. Timed from the go signal (every process
 * started and warmed up) to the last reply.
 */
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { throughput, type Throughput } from './figures.js';
import type { RawPipeThreadData, RawPipeThreadMessage } from './handlers/raw-pipe-thread.js';
import { nowMs } from './handlers/work.js';
import { collectGarbage } from './heap.js';

/** A CommonJS entry that requires handlers/raw-pipe-thread.ts (see there). */
const THREAD_FILE = new URL('./handlers/raw-pipe-thread.cjs', import.meta.url);
const SCRIPT = fileURLToPath(new URL('./handlers/raw_echo.py', import.meta.url));
const WARMUP = 200;

export interface RawPipeOptions {
  python: string;
  threads: number;
  /** Fixed CPU work per batch (bench_work.burn rounds), 0 for none. */
  iterations: number;
  /** Decode the batch with msgpack in Python, as the runner does (default true). */
  decode?: boolean;
}

export async function rawPipe(bytes: Uint8Array, itemsPerBatch: number, n: number, o: RawPipeOptions): Promise<Throughput> {
  const counter = new SharedArrayBuffer(4);
  const data: RawPipeThreadData = { python: o.python, script: SCRIPT, bytes, counter, n, decode: o.decode ?? true, iterations: o.iterations, warmup: o.iterations > 0 ? 5 : WARMUP };
  const workers = Array.from({ length: o.threads }, () => new Worker(THREAD_FILE, { workerData: data }));
  try {
    const failed = new Promise<never>((_, reject) => {
      for (const w of workers) {
        w.once('error', reject);
        w.once('exit', (code) => code !== 0 && reject(new Error(`raw pipe thread exited with code ${code}`)));
      }
    });
    const next = (w: Worker): Promise<RawPipeThreadMessage> => Promise.race([failed, new Promise<RawPipeThreadMessage>((resolve) => w.once('message', resolve))]);
    await Promise.all(workers.map(next));
    collectGarbage();
    const started = nowMs();
    const done = workers.map(next);
    for (const w of workers) w.postMessage('go');
    const results = await Promise.all(done);
    let end = 0;
    let count = 0;
    for (const r of results) {
      if (r.type !== 'done') throw new Error(`raw pipe thread: unexpected ${r.type}`);
      end = Math.max(end, r.t);
      count += r.count;
    }
    if (count !== n) throw new Error(`raw pipe: ${count} of ${n} batches answered`);
    return throughput(n, itemsPerBatch, bytes.byteLength, (end - started) / 1000);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
