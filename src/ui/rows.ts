/**
 * What a page shows of a job: the status object of docs/PROTOCOL.md §9 flattened into a row. Live figures of
 * active jobs are read from NATS at most once per LIVE_TTL_MS per job, however many pages and streams show it;
 * ended jobs carry their final figures in the record and cost nothing.
 */
import type { FleetContext } from '../fleet/context.js';
import { jobStatus, storedStatus } from '../fleet/progress.js';
import { isTerminal, type JobRecord, type JobStatus, type JobStatusName } from '../types.js';
import type { FleetCache } from './fleet-cache.js';

export interface JobRow {
  job_id: string;
  api_name: string;
  status: JobStatusName;
  paused: boolean;
  priority: number;
  workers: number;
  total: number;
  succeeded: number;
  failed: number;
  queued: number;
  running: number;
  running_daemons: number;
  /** Mean handleBatch time of succeeded batches, seconds. */
  avg_s: number | null;
  start_time: string;
  end_time: string | null;
  /** end − start, or now − start while active; ms. */
  duration_ms: number | null;
}

export const LIVE_TTL_MS = 800;

export function rowOf(s: JobStatus, now = Date.now()): JobRow {
  const start = Date.parse(s.start_time);
  const end = s.end_time === null ? now : Date.parse(s.end_time);
  return {
    job_id: s.job_id,
    api_name: s.api_name,
    status: s.status,
    paused: s.paused_at !== null && !isTerminal(s.status),
    priority: s.priority,
    workers: s.workers,
    total: s.total_batch_count,
    succeeded: s.batch_metrics.succeeded,
    failed: s.batch_metrics.failed,
    queued: s.batches_in_queue,
    running: s.running_batches,
    running_daemons: s.running_daemons,
    avg_s: s.batch_metrics.avg_time_per_batch,
    start_time: s.start_time,
    end_time: s.end_time,
    duration_ms: Number.isFinite(start) && Number.isFinite(end) ? Math.max(0, end - start) : null,
  };
}

export class StatusSource {
  readonly #ctx: FleetContext;
  readonly #fleet: FleetCache;
  readonly #live = new Map<string, { at: number; record: JobRecord; status: Promise<JobStatus> }>();

  constructor(ctx: FleetContext, fleet: FleetCache) {
    this.#ctx = ctx;
    this.#fleet = fleet;
  }

  async status(record: JobRecord): Promise<JobStatus> {
    const stored = storedStatus(record);
    if (stored !== null) {
      this.#live.delete(record.job_id);
      return stored;
    }
    const now = performance.now();
    const hit = this.#live.get(record.job_id);
    if (hit !== undefined && hit.record === record && now - hit.at < LIVE_TTL_MS) return hit.status;
    const status = jobStatus(this.#ctx, record, this.#fleet.activity());
    this.#live.set(record.job_id, { at: now, record, status });
    status.catch(() => this.#live.delete(record.job_id));
    if (this.#live.size > 5000) for (const [k, v] of this.#live) if (now - v.at > LIVE_TTL_MS) this.#live.delete(k);
    return status;
  }

  rows(records: JobRecord[]): Promise<JobRow[]> {
    const now = Date.now();
    return Promise.all(records.map(async (r) => rowOf(await this.status(r), now)));
  }
}
