/**
 * Raw Piscina task (the dispatch limit): receives the batch bytes, transferred, and does the same work as the
 * jetbatch handlers, without decoding. With `t0` it returns the handler-start latency in ms.
 */
import { burn, nowMs } from './work.js';

export interface RawTask {
  payload: Uint8Array;
  iterations: number;
  /** Publish time (epoch ms) for latency runs. */
  t0?: number;
}

export default function run(task: RawTask): number {
  const latency = task.t0 === undefined ? 0 : nowMs() - task.t0;
  if (task.iterations > 0) burn(task.iterations);
  return latency;
}
