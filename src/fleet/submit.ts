/**
 * The publisher side of the protocol: register the job (KV create), publish every batch with a Nats-Msg-Id, then
 * move the job from `enqueuing` to `pending`. A publisher that dies half-way leaves an `enqueuing` record whose
 * `enqueue_deadline` lets the fleet fail it as `enqueue_failed`; resubmitting the same job id finishes the enqueue
 * instead (the msg ids make already-published batches no-ops within the stream's duplicate window).
 */
import { headers } from '@nats-io/transport-node';
import type { PubAck } from '@nats-io/jetstream';
import type { FleetContext } from './context.js';
import { ErrorCodes, JetbatchError } from '../errors.js';
import { discardQueue, publishEvent } from './lifecycle.js';
import { Headers, Streams, Subjects, batchMsgId } from './protocol.js';
import { currentDeployment } from './deployments.js';
import { createJob, getJob, transitionJob } from './registry.js';
import type { PreparedJob } from './submission.js';
import { API_STALE_MS, isTerminal, type ApiRecord, type JobRecord } from '../types.js';

export interface SubmitProgress {
  enqueued: number;
  total: number;
}

/** PubAcks awaited at once while enqueuing. */
const PUBLISH_WINDOW = 256;

/** Time a publisher gets to enqueue: a base plus a per-batch allowance. */
export function enqueueDeadline(now: number, batches: number): string {
  return new Date(now + 120_000 + batches * 2).toISOString();
}

/** Throws JB_UNKNOWN_API unless some daemon registered the API within API_STALE_MS. */
export async function checkApiServed(ctx: FleetContext, apiName: string): Promise<void> {
  const api = await ctx.apis.get(apiName);
  if (api === null || api.operation !== 'PUT' || api.value.length === 0) {
    throw new JetbatchError(ErrorCodes.UNKNOWN_API, `no daemon serves an API named "${apiName}" (see \`jetbatch apis\`)`);
  }
  const lastSeen = Date.parse((api.json<ApiRecord>()).last_seen);
  if (!(Date.now() - lastSeen < API_STALE_MS)) {
    throw new JetbatchError(ErrorCodes.UNKNOWN_API, `no daemon has served the API "${apiName}" since ${new Date(lastSeen).toISOString()}; start one`);
  }
}

/** What a new record takes from its submission (whole or streamed). */
export type RecordSettings = Pick<JobRecord, 'job_id' | 'api_name' | 'workers' | 'config' | 'timeout' | 'batch_timeout' | 'max_attempts' | 'backoff' | 'spec_hash'> & {
  priority: number;
  batch_size: number | null;
  output: string | null;
};

/**
 * Registers a job (KV create, then the `submitted` event). Returns null when this call created it; otherwise the
 * record an earlier submission of the same id created (JB_JOB_CONFLICT if its spec hash differs).
 */
export async function registerJob(
  ctx: FleetContext,
  settings: RecordSettings,
  now: number,
  fields: Pick<JobRecord, 'total_batch_count' | 'enqueue_deadline'> & Pick<Partial<JobRecord>, 'enqueue' | 'source'>,
): Promise<JobRecord | null> {
  const fresh: JobRecord = {
    job_id: settings.job_id,
    api_name: settings.api_name,
    status: 'enqueuing',
    workers: settings.workers,
    priority: settings.priority,
    config: settings.config,
    timeout: settings.timeout,
    batch_timeout: settings.batch_timeout,
    max_attempts: settings.max_attempts,
    backoff: settings.backoff,
    project_version: (await currentDeployment(ctx, settings.api_name))?.deployment.version ?? null,
    spec_hash: settings.spec_hash,
    start_time: new Date(now).toISOString(),
    end_time: null,
    error: null,
    batch_metrics: null,
    batches_in_queue: null,
    completion: null,
    paused_at: null,
    paused_ms: 0,
    batch_size: settings.batch_size,
    output: settings.output,
    results_stored: null,
    ...fields,
  };
  if (await createJob(ctx.jobs, fresh)) {
    await publishEvent(ctx, fresh, 'submitted');
    return null;
  }
  const existing = await getJob(ctx.jobs, settings.job_id);
  if (existing === null) throw new JetbatchError(ErrorCodes.INTERNAL, `job ${settings.job_id} vanished during submission`);
  if (existing.record.spec_hash !== settings.spec_hash) {
    throw new JetbatchError(ErrorCodes.JOB_CONFLICT, `job ${settings.job_id} exists with different content; pick another job id`);
  }
  return existing.record;
}

export async function submitPrepared(
  ctx: FleetContext,
  job: PreparedJob,
  onEnqueued?: (progress: SubmitProgress) => void,
): Promise<JobRecord> {
  await checkApiServed(ctx, job.api_name);
  const now = Date.now();
  const existing = await registerJob(ctx, job, now, { total_batch_count: job.batches.length, enqueue_deadline: enqueueDeadline(now, job.batches.length) });
  if (existing !== null && existing.status !== 'enqueuing') return existing;
  await publishBatches(ctx, job, onEnqueued);
  const done = await transitionJob(ctx.jobs, job.job_id, (current) =>
    current.status === 'enqueuing' ? { ...current, status: 'pending' } : null,
  );
  if (done === null) throw new JetbatchError(ErrorCodes.JOB_NOT_FOUND, `job ${job.job_id} was removed during submission`);
  if (!done.changed && isTerminal(done.record.status) && done.record.end_time !== null && Date.parse(done.record.end_time) >= now) {
    // Ended (stopped, enqueue deadline) while we were publishing: nobody will consume what we just published.
    await discardQueue(ctx, done.record);
    throw new JetbatchError(ErrorCodes.JOB_ENDED, `job ${job.job_id} ended as ${done.record.status} while its batches were being enqueued`);
  }
  return done.record;
}

async function publishBatches(
  ctx: FleetContext,
  job: PreparedJob,
  onEnqueued?: (progress: SubmitProgress) => void,
): Promise<void> {
  const window: Array<Promise<PubAck>> = [];
  let acked = 0;
  const total = job.batches.length;
  const settleOldest = async (): Promise<void> => {
    await window.shift();
    acked++;
    onEnqueued?.({ enqueued: acked, total });
  };
  try {
    for (let i = 0; i < total; i++) {
      window.push(publishBatch(ctx, job.api_name, job.job_id, i, job.batches[i]!));
      if (window.length >= PUBLISH_WINDOW) await settleOldest();
    }
    while (window.length > 0) await settleOldest();
  } catch (err) {
    await Promise.allSettled(window);
    throw new JetbatchError(ErrorCodes.INTERNAL, `enqueuing job ${job.job_id} failed after ${acked} batches: ${(err as Error).message}`, { cause: err });
  }
}

/** Publishes batch `index` of a job (generation 0), deduplicated by its Nats-Msg-Id. */
export function publishBatch(ctx: FleetContext, api: string, jobId: string, index: number, bytes: Uint8Array): Promise<PubAck> {
  const batchId = String(index);
  const h = headers();
  h.set(Headers.jobId, jobId);
  h.set(Headers.batchId, batchId);
  h.set(Headers.apiName, api);
  h.set(Headers.generation, '0');
  return ctx.js.publish(Subjects.batch(api, jobId), bytes, { msgID: batchMsgId(jobId, batchId, 0), headers: h, expect: { streamName: Streams.batches } });
}
