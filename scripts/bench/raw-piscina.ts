/**
 * Raw Piscina dispatch limit: one task per batch, the batch bytes copied (as a consumer must copy msg.data) and
 * transferred, a window of tasks in flight, the same no-op / fixed-CPU work as the jetbatch handlers.
 */
import { Piscina } from 'piscina';
import { throughput, type Throughput } from './figures.js';
import { nowMs } from './handlers/work.js';
import { collectGarbage } from './heap.js';
import type { RawTask } from './handlers/piscina-task.js';

export const TASK_FILE = new URL('./handlers/piscina-task.ts', import.meta.url);
/** Tasks in flight at once: enough to keep every thread fed without an unbounded queue. */
const WINDOW = 64;

export function rawPool(threads: number): Piscina {
  return new Piscina({ filename: TASK_FILE.href, minThreads: threads, maxThreads: threads, idleTimeout: Infinity });
}

export function runTask(pool: Piscina, bytes: Uint8Array, iterations: number, t0?: number): Promise<number> {
  // A copy of its own, transferred (DESIGN.md §6: never move a view into someone else's buffer).
  const payload = new Uint8Array(bytes);
  const task: RawTask = t0 === undefined ? { payload, iterations } : { payload, iterations, t0 };
  return pool.run(task, { transferList: [payload.buffer as ArrayBuffer] }) as Promise<number>;
}

export async function rawPiscina(bytes: Uint8Array, itemsPerBatch: number, n: number, threads: number, iterations: number): Promise<Throughput> {
  const pool = rawPool(threads);
  try {
    // Warm-up: every thread started and the task module loaded before timing.
    await Promise.all(Array.from({ length: threads * 4 }, () => runTask(pool, bytes, 0)));
    collectGarbage();
    const started = nowMs();
    await new Promise<void>((resolve, reject) => {
      let next = 0;
      let done = 0;
      const launch = (): void => {
        while (next < n && next - done < WINDOW) {
          next++;
          runTask(pool, bytes, iterations).then(() => {
            if (++done === n) resolve();
            else launch();
          }, reject);
        }
      };
      launch();
    });
    return throughput(n, itemsPerBatch, bytes.byteLength, (nowMs() - started) / 1000);
  } finally {
    await pool.destroy();
  }
}
