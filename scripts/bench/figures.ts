/** The shape of a throughput figure, and the few statistics the report needs. */
import type { CpuPerBatch } from './cpu-split.js';
import { MiB } from './payloads.js';

export interface Throughput {
  batches: number;
  items: number;
  bytes: number;
  seconds: number;
  batchesPerSec: number;
  itemsPerSec: number;
  mibPerSec: number;
  /** Where the CPU of the measured interval went, per batch (cpu-split.ts; Linux, and the scenarios that sample it). */
  cpu?: CpuPerBatch;
}

export function throughput(batches: number, itemsPerBatch: number, bytesPerBatch: number, seconds: number): Throughput {
  const s = Math.max(seconds, 1e-9);
  return {
    batches,
    items: batches * itemsPerBatch,
    bytes: batches * bytesPerBatch,
    seconds: round(seconds, 3),
    batchesPerSec: round(batches / s, 0),
    itemsPerSec: round((batches * itemsPerBatch) / s, 0),
    mibPerSec: round((batches * bytesPerBatch) / MiB / s, 1),
  };
}

/** The run with the median batches/s of several repetitions. */
export function medianRun(runs: Throughput[]): Throughput {
  const sorted = [...runs].sort((a, b) => a.batchesPerSec - b.batchesPerSec);
  const m = sorted[Math.floor((sorted.length - 1) / 2)];
  if (m === undefined) throw new Error('no runs');
  return m;
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? Number.NaN;
}

export function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
