/**
 * The work every benchmarked system does per batch, so their figures compare like with like: nothing (no-op) or a
 * fixed number of xorshift rounds (fixed CPU), plus the marks a jetbatch handler sends to the benchmark process.
 */
import { BroadcastChannel } from 'node:worker_threads';

/** Name of the BroadcastChannel on which handlers report to the benchmark (same process, any thread). */
export const BENCH_CHANNEL = 'jetbatch-bench';

/** What a handler reports: when its thread started its first batch of a job, and handler-start latencies. */
export type BenchMark = { type: 'first'; job: string; t: number } | { type: 'latency'; job: string; ms: number };

/** Epoch milliseconds with sub-millisecond resolution, comparable across the threads of one process. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

let sink = 0;

/** Fixed CPU work: `iterations` xorshift rounds. The result is kept so the loop cannot be optimised away. */
export function burn(iterations: number): number {
  let x = 0x9e3779b9 | 0;
  for (let i = 0; i < iterations; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
  }
  sink ^= x;
  return sink;
}

let channel: BroadcastChannel | undefined;

/** Posts a mark to the benchmark process (the daemon runs in it, so every worker thread reaches it). */
export function postMark(mark: BenchMark): void {
  if (channel === undefined) {
    channel = new BroadcastChannel(BENCH_CHANNEL);
    channel.unref();
  }
  channel.postMessage(mark);
}
