/**
 * BullMQ 6 with a sandboxed processor in worker threads (useWorkerThreads, concurrency 2 = two threads) on the
 * local Redis: the jobs are added first, then a worker drains them; timed from the first job turning active to
 * the last completion. Jobs are removed on completion, as a throughput-minded deployment would.
 */
import { Queue, Worker } from 'bullmq';
import { throughput, type Throughput } from './figures.js';
import { burn as bullBurn, type BullData } from './handlers/bullmq-processor.mjs';
import { burn, nowMs } from './handlers/work.js';
import { REDIS_PORT, within } from './infra.js';
import { collectGarbage } from './heap.js';

const PROCESSOR = new URL('./handlers/bullmq-processor.mjs', import.meta.url);
const connection = { host: '127.0.0.1', port: REDIS_PORT, maxRetriesPerRequest: null };

/** Job data whose JSON is `size` bytes. */
export function bullData(size: number, iterations: number): BullData {
  const base = JSON.stringify({ p: '', iterations }).length;
  return { p: 'x'.repeat(Math.max(0, size - base)), iterations };
}

/** The processor is JavaScript (see there); its work must be the handlers' work. */
function checkSameWork(): void {
  const [a, b, c, d] = [burn(1000), burn(1000), bullBurn(1000), bullBurn(1000)];
  if ((a ^ b) !== (c ^ d)) throw new Error('bullmq-processor.mjs burn() differs from work.ts burn()');
}

export async function bullmqThroughput(size: number, n: number, iterations: number, concurrency = 2): Promise<Throughput> {
  checkSameWork();
  const name = `jetbatch-bench-${process.pid}-${Date.now()}`;
  const queue = new Queue<BullData>(name, { connection });
  try {
    const data = bullData(size, iterations);
    for (let i = 0; i < n; i += 1000) {
      const chunk = Array.from({ length: Math.min(1000, n - i) }, () => ({ name: 'b', data, opts: { removeOnComplete: true, removeOnFail: true } }));
      await queue.addBulk(chunk);
    }
    collectGarbage();
    let first = 0;
    let done = 0;
    let worker: Worker<BullData> | undefined;
    const finished = new Promise<number>((resolve, reject) => {
      worker = new Worker<BullData>(name, PROCESSOR, { connection, useWorkerThreads: true, concurrency, autorun: false });
      worker.on('active', () => {
        if (first === 0) first = nowMs();
      });
      worker.on('completed', () => {
        if (++done === n) resolve(nowMs());
      });
      worker.on('failed', (_job, err) => reject(err));
      worker.on('error', reject);
      void worker.run();
    });
    try {
      const end = await within(finished, 180_000, `BullMQ drain of ${n} jobs`);
      return throughput(n, 1, size, (end - first) / 1000);
    } finally {
      await worker?.close();
    }
  } finally {
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
  }
}
