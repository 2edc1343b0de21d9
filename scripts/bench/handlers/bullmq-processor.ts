/** BullMQ sandboxed processor (run in worker threads): the same no-op / fixed-CPU work as the jetbatch handlers. */
import type { SandboxedJob } from 'bullmq';
import { burn } from './work.js';

export interface BullData {
  /** Padding so the job's data has the scenario's size. */
  p: string;
  iterations: number;
}

export default async function processor(job: SandboxedJob<BullData>): Promise<void> {
  if (job.data.iterations > 0) burn(job.data.iterations);
}
