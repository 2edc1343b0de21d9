/**
 * Job progress derived from server state, so nothing double counts when a batch is redelivered:
 * - in queue  = batches the job's consumer has not had acked (pending, in flight or waiting for a retry);
 * - failed    = the job's messages in the dead-letter stream;
 * - succeeded = total − in queue − failed (a batch leaves the queue only by ack after success or by dead-lettering).
 * While a job is still `enqueuing`, not every batch is in the stream yet, so succeeded comes from the daemons'
 * timing counters instead. Terminal records carry their final figures.
 */
import { readActivity, type FleetActivity } from './activity.js';
import type { FleetContext } from './context.js';
import { JetStreamApiError } from '@nats-io/jetstream';
import { kvKeys } from './kv-keys.js';
import { Buckets, Streams, Subjects, consumerName, decodeJson } from './protocol.js';
import type { BatchMetrics, JobRecord, JobStatus } from '../types.js';
import { isTerminal } from '../types.js';

export interface LiveCounts {
  inQueue: number;
  failed: number;
  succeeded: number;
  avgTimePerBatch: number | null;
}

/**
 * Messages stored under one subject. The filter swaps the subject's first token for `*`, which in our streams matches
 * that subject alone: nats-server 2.9.10 answers a *literal* `subjects_filter` with no subjects at all once the
 * stream's first message block has been removed (a few MB through a WorkQueue stream), and reading that as 0 ended
 * jobs early and purged their remaining batches. Wildcard filters are answered correctly (test/mnist.test.ts).
 */
export async function countSubject(ctx: FleetContext, stream: string, subject: string): Promise<number> {
  const info = await ctx.jsm.streams.info(stream, { subjects_filter: subject.replace(/^[^.]+/, '*') });
  return info.state.subjects?.[subject] ?? 0;
}

/**
 * Batches of a job still in its queue. The job consumer's view (pending + awaiting ack, which includes batches
 * NAKed for a retry) is the reference: after a nats-server crash, WorkQueue messages that had been acked can
 * reappear in the stream below the consumer's ack floor, where they are never delivered again. Before a daemon has
 * created the consumer, the stream's count for the job's subject is used.
 */
export async function queuedBatches(ctx: FleetContext, record: JobRecord): Promise<number> {
  const consumer = await ctx.jsm.consumers.info(Streams.batches, consumerName(record.job_id)).catch((err: unknown) => {
    if (err instanceof JetStreamApiError && err.status === 404) return null;
    throw err;
  });
  if (consumer !== null) return consumer.num_pending + consumer.num_ack_pending;
  return countSubject(ctx, Streams.batches, Subjects.batch(record.api_name, record.job_id));
}

export async function timingStats(ctx: FleetContext, jobId: string): Promise<{ count: number; totalMs: number }> {
  let count = 0;
  let totalMs = 0;
  const names = await kvKeys(ctx, Buckets.stats, `${jobId}.*`);
  for (const k of names) {
    const e = await ctx.stats.get(k);
    if (e === null || e.operation !== 'PUT' || e.value.length === 0) continue;
    const v = decodeJson(e.value) as { count?: number; total_ms?: number };
    count += v.count ?? 0;
    totalMs += v.total_ms ?? 0;
  }
  return { count, totalMs };
}

export async function liveCounts(ctx: FleetContext, record: JobRecord): Promise<LiveCounts> {
  const [inQueue, failed, timing] = await Promise.all([
    queuedBatches(ctx, record),
    countSubject(ctx, Streams.deadLetters, Subjects.deadLetter(record.api_name, record.job_id)),
    timingStats(ctx, record.job_id),
  ]);
  const avg = timing.count > 0 ? timing.totalMs / timing.count / 1000 : null;
  if (record.status === 'enqueuing') {
    const succeeded = Math.min(timing.count, Math.max(0, record.total_batch_count - failed));
    return { inQueue: Math.max(0, record.total_batch_count - succeeded - failed), failed, succeeded, avgTimePerBatch: avg };
  }
  const succeeded = Math.max(0, record.total_batch_count - inQueue - failed);
  return { inQueue, failed, succeeded, avgTimePerBatch: avg };
}

export function metricsOf(counts: LiveCounts): BatchMetrics {
  return { succeeded: counts.succeeded, failed: counts.failed, avg_time_per_batch: counts.avgTimePerBatch };
}

const BACKOFF_KEYS = ['initial_ms', 'factor', 'max_ms', 'jitter'] as const;

export type JobSettings = Pick<JobStatus, 'timeout' | 'max_attempts' | 'batch_timeout' | 'backoff' | 'from_api_config'>;

/**
 * The limits of a job as its status shows them: the record's values, and the settings it leaves to the API's config
 * of each daemon (null, or absent from a publisher that left the field out; a backoff missing some keys).
 */
export function settingsOf(record: JobRecord): JobSettings {
  const fromApiConfig: JobStatus['from_api_config'] = [];
  if ((record.max_attempts ?? null) === null) fromApiConfig.push('max_attempts');
  if ((record.batch_timeout ?? null) === null) fromApiConfig.push('batch_timeout');
  const backoff = record.backoff ?? null;
  if (backoff === null || BACKOFF_KEYS.some((k) => backoff[k] === undefined)) fromApiConfig.push('backoff');
  return {
    timeout: record.timeout ?? null,
    max_attempts: record.max_attempts ?? null,
    batch_timeout: record.batch_timeout ?? null,
    backoff,
    from_api_config: fromApiConfig,
  };
}

/**
 * The status view of a record: stored figures when the job has ended, live ones otherwise. `activity` (what the
 * fleet runs now) is read when not given; pass one reading for a list of jobs.
 */
export async function jobStatus(ctx: FleetContext, record: JobRecord, activity?: FleetActivity): Promise<JobStatus> {
  const stored = storedStatus(record);
  if (stored !== null) return stored;
  const counts = await liveCounts(ctx, record);
  const batchMetrics = metricsOf(counts);
  const inQueue = counts.inQueue;
  const running = isTerminal(record.status) ? undefined : (activity ?? (await readActivity(ctx))).get(record.job_id);
  return statusOf(record, batchMetrics, inQueue, running);
}

/**
 * A job's status from its record and the figures read for it (no I/O). An ended job that stored its figures needs
 * nothing else: `storedStatus`.
 */
export function statusOf(record: JobRecord, batchMetrics: BatchMetrics, inQueue: number, running?: { batches: number; daemons: number }): JobStatus {
  const status: JobStatus = {
    job_id: record.job_id,
    api_name: record.api_name,
    status: record.status,
    workers: record.workers,
    priority: record.priority ?? 0,
    paused_at: record.paused_at ?? null,
    total_batch_count: record.total_batch_count,
    batches_in_queue: inQueue,
    running_batches: running?.batches ?? 0,
    running_daemons: running?.daemons ?? 0,
    batch_metrics: batchMetrics,
    start_time: record.start_time,
    end_time: record.end_time,
    ...settingsOf(record),
    config: record.config,
    output: record.output ?? null,
    results_stored: record.results_stored ?? null,
    enqueue: record.enqueue == null ? null : { batches: record.enqueue.batches, bad_lines: record.enqueue.bad_lines, owner: record.enqueue.owner ?? null, done: record.enqueue.done === true || record.status !== 'enqueuing' },
  };
  if (record.error !== null) status.error = record.error;
  if (record.completion !== null) status.completion = record.completion;
  return status;
}

/** The status of an ended job that stored its figures, without any read; null for any other job. */
export function storedStatus(record: JobRecord): JobStatus | null {
  if (!isTerminal(record.status) || record.batch_metrics === null) return null;
  return statusOf(record, record.batch_metrics, record.batches_in_queue ?? 0);
}
