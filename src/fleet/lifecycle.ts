/**
 * Ending a job early (stop, job timeout, worker error, enqueue failure), and pausing and resuming it: shared by the
 * client and the daemons.
 * Order matters: the job is counted, then its record turns terminal with those final figures in one write (so no
 * daemon pulls more or claims completion, and no reader ever sees it terminal without them), then every daemon is
 * told to abort the job's in-flight batches, then the queue is purged and the consumer deleted.
 */
import { JetStreamApiError } from '@nats-io/jetstream';
import { ErrorCodes, JetbatchError } from '../errors.js';
import { sleep } from '../util/sleep.js';
import type { FleetContext } from './context.js';
import { liveCounts, metricsOf } from './progress.js';
import { Streams, Subjects, consumerName, encodeJson } from './protocol.js';
import { getJob, transitionJob } from './registry.js';
import type { ErrorInfo, JobRecord, TerminalStatus } from '../types.js';
import { isTerminal } from '../types.js';

export type EarlyEnd = Extract<TerminalStatus, 'stopped' | 'timed_out' | 'worker_error' | 'worker_oom' | 'enqueue_failed'>;

/** Ends an active job with `status`; returns the stored record and whether this call ended it. */
export async function endJob(
  ctx: FleetContext,
  jobId: string,
  status: EarlyEnd,
  error: ErrorInfo | null = null,
): Promise<{ record: JobRecord; changed: boolean } | null> {
  // Counted before the record turns terminal, and stored with it: a reader that sees the job ended sees its final
  // figures (the queue is purged right after, so counting it later, as a reader would without them, finds it empty
  // and would report every batch as succeeded). A job still enqueuing is counted the enqueuing way: unpublished
  // batches did not succeed. Batches in flight when counted are counted as queued: the abort below ends them.
  const before = await getJob(ctx.jobs, jobId);
  if (before === null) return null;
  if (isTerminal(before.record.status)) return { record: before.record, changed: false };
  const counts = await liveCounts(ctx, { ...before.record, status: before.record.status === 'enqueuing' ? 'enqueuing' : 'running' });
  const result = await transitionJob(ctx.jobs, jobId, (current) => {
    if (isTerminal(current.status)) return null;
    return {
      ...current,
      status,
      error: error ?? current.error,
      end_time: new Date().toISOString(),
      completion: null,
      batch_metrics: metricsOf(counts),
      batches_in_queue: counts.inQueue,
    };
  });
  if (result === null || !result.changed) return result;
  const record = result.record;
  ctx.nc.publish(Subjects.control(jobId), encodeJson({ action: 'abort', status }));
  await discardQueue(ctx, record);
  await publishEvent(ctx, record, 'completed');
  return { record, changed: true };
}

export async function discardQueue(ctx: FleetContext, record: JobRecord): Promise<void> {
  await ctx.jsm.consumers.delete(Streams.batches, consumerName(record.job_id)).catch(ignoreNotFound);
  await ctx.jsm.streams.purge(Streams.batches, { filter: Subjects.batch(record.api_name, record.job_id) });
}

/**
 * Publishes a job event (JSON record) to the events stream; type is `submitted`, `running` or `completed`. One event
 * of a type per completion round: two daemons that both end a job (a compare-and-set that a clustered nats-server
 * before 2.9.21 let both win) publish one event; a job reopened by a replay is a new round and completes again.
 */
export async function publishEvent(ctx: FleetContext, record: JobRecord, type: string): Promise<void> {
  await ctx.js.publish(Subjects.event(record.api_name, record.job_id, type), encodeJson(record), {
    msgID: `${record.job_id}:${type}:${record.round ?? 0}`,
  });
}

export function ignoreNotFound(err: unknown): void {
  if (err instanceof JetStreamApiError && err.status === 404) return;
  throw err;
}

/** A job still `pending` turns `running` when its first batch starts anywhere (published as an event). */
export async function markRunning(ctx: FleetContext, jobId: string): Promise<void> {
  const r = await transitionJob(ctx.jobs, jobId, (cur) => (cur.status === 'pending' ? { ...cur, status: 'running' } : null));
  if (r?.changed) await publishEvent(ctx, r.record, 'running');
}

/** A batch dead-lettered after its thread hit the memory cap: the job will end `worker_oom`, with this error. */
export async function noteOutOfMemory(ctx: FleetContext, jobId: string, error: ErrorInfo): Promise<void> {
  await transitionJob(ctx.jobs, jobId, (cur) => (cur.error === null && !isTerminal(cur.status) ? { ...cur, error } : null));
}

const EARLY_ENDS = new Set(['stopped', 'timed_out', 'worker_error', 'worker_oom', 'enqueue_failed']);

/**
 * Whoever ends a job early purges its queue right after. In case it could not (an ender without the rights to
 * purge, or one that died in between), the queue is purged here `delayMs` later (purging an empty subject is
 * harmless). Only for the same ending: a job reopened in between (a dead-letter replay of a `worker_oom` job) has
 * new batches in its queue, which must not be purged.
 */
export function purgeLeftoversLater(ctx: FleetContext, record: JobRecord, delayMs = 10_000): void {
  if (!EARLY_ENDS.has(record.status)) return;
  setTimeout(() => {
    void getJob(ctx.jobs, record.job_id)
      .then((v) => {
        const same = v !== null && v.record.status === record.status && v.record.end_time === record.end_time;
        return same ? discardQueue(ctx, v.record) : undefined;
      })
      .catch(() => undefined);
  }, delayMs).unref();
}

/**
 * How long after a pause is recorded a batch may still start: a daemon that asked for a batch just before it saw the
 * pause may receive it until that pull expires (1 s), and runs it. pauseJob returns only after this.
 */
export const PAUSE_SETTLE_MS = 1500;

/**
 * Pauses an active job: no daemon starts a new batch of it (running ones finish); its queue, counts and consumer
 * stay, and its job timeout stops running. Resolves once no batch of it can start any more (PAUSE_SETTLE_MS), with
 * the stored record; null if the job does not exist. Pausing a paused job changes nothing.
 */
export async function pauseJob(ctx: FleetContext, jobId: string): Promise<JobRecord | null> {
  const result = await transitionJob(ctx.jobs, jobId, (current) => {
    refuseUnlessActive(current, 'paused');
    if (current.paused_at != null) return null;
    return { ...current, paused_at: new Date().toISOString(), paused_ms: current.paused_ms ?? 0 };
  });
  if (result === null) return null;
  // Every caller waits out the settling time, including one that finds the job paused a moment ago by another.
  const since = Date.now() - Date.parse(result.record.paused_at ?? '');
  if (since < PAUSE_SETTLE_MS) await sleep(PAUSE_SETTLE_MS - Math.max(0, since));
  return result.record;
}

/**
 * Resumes a paused job where it stopped; resuming an active job that is not paused changes nothing. Throws
 * JB_JOB_ENDED for a job that has ended or is completing.
 */
export async function resumeJob(ctx: FleetContext, jobId: string): Promise<JobRecord | null> {
  const result = await transitionJob(ctx.jobs, jobId, (current) => {
    refuseUnlessActive(current, 'resumed');
    if (current.paused_at == null) return null;
    return { ...current, paused_at: null, paused_ms: pausedMs(current, Date.now()) };
  });
  return result?.record ?? null;
}

/** Milliseconds the job has spent paused up to `now` (its job timeout does not run meanwhile). */
export function pausedMs(record: JobRecord, now: number): number {
  const current = record.paused_at == null ? 0 : Math.max(0, now - Date.parse(record.paused_at));
  return (record.paused_ms ?? 0) + current;
}

function refuseUnlessActive(record: JobRecord, what: 'paused' | 'resumed'): void {
  if (isTerminal(record.status)) {
    throw new JetbatchError(ErrorCodes.JOB_ENDED, `job ${record.job_id} has ended (${record.status}); only an active job can be ${what}`);
  }
  if (record.status === 'completing') {
    throw new JetbatchError(ErrorCodes.JOB_ENDED, `every batch of job ${record.job_id} has settled and it is completing; it cannot be ${what}`);
  }
}
