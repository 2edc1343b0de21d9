/**
 * The end of a job that ran to completion, once across the fleet. A daemon that finds the job's queue empty claims
 * completion with a CAS (status `completing` + a lease), runs `onJobComplete` on a handler instance, then writes
 * the final status and publishes the completion event. A claimer that dies is replaced once its lease lapses, so
 * the hook runs at least once, and exactly once unless a claimer dies mid-hook.
 */
import type { Logger } from 'pino';
import type { FleetContext } from '../context.js';
import { discardQueue, endJob, publishEvent } from '../lifecycle.js';
import { liveCounts, metricsOf, queuedBatches } from '../progress.js';
import { transitionJob } from '../registry.js';
import type { ErrorInfo, JobRecord, JobSummary } from '../types.js';
import { ErrorCodes } from '../errors.js';
import type { ApiPool } from './pool.js';
import { jobSpecOf } from './job-spec.js';
import { toErrorInfo } from './settle.js';

export interface CompletionDeps {
  ctx: FleetContext;
  daemonId: string;
  log: Logger;
  /** How long a claim stays valid without renewal, in ms. */
  leaseMs: number;
  poolFor(record: JobRecord): Promise<ApiPool>;
  /** Called before onJobComplete runs, to let in-flight stats land. */
  flushStats(jobId: string): Promise<void>;
}

/** Checks one active job and moves it on if it is due: completion, job timeout, enqueue deadline, lost claimer. */
export async function checkJob(deps: CompletionDeps, record: JobRecord): Promise<void> {
  const jobId = record.job_id;
  const now = Date.now();
  if (record.status === 'enqueuing') {
    if (now > Date.parse(record.enqueue_deadline)) {
      await endJob(deps.ctx, jobId, 'enqueue_failed', { name: 'EnqueueTimeout', code: ErrorCodes.TIMEOUT, message: `the publisher did not finish enqueuing by ${record.enqueue_deadline}` });
    }
    return;
  }
  if (record.timeout !== null && (record.status === 'pending' || record.status === 'running')) {
    if (now > Date.parse(record.start_time) + record.timeout * 1000) {
      await endJob(deps.ctx, jobId, 'timed_out', { name: 'JobTimeout', code: ErrorCodes.TIMEOUT, message: `job exceeded its timeout of ${record.timeout} s` });
      return;
    }
  }
  if (record.status === 'completing') {
    if (record.completion !== null && now < Date.parse(record.completion.lease_until)) return;
  } else if (record.status !== 'pending' && record.status !== 'running') {
    return;
  }
  if ((await queuedBatches(deps.ctx, record)) > 0) return;
  const pool = await deps.poolFor(record);
  const claimed = await transitionJob(deps.ctx.jobs, jobId, (r) => {
    if (r.status === 'completing' && r.completion !== null && Date.now() < Date.parse(r.completion.lease_until)) return null;
    if (r.status !== 'pending' && r.status !== 'running' && r.status !== 'completing') return null;
    return { ...r, status: 'completing', completion: { claimed_by: deps.daemonId, lease_until: new Date(Date.now() + deps.leaseMs).toISOString() } };
  });
  if (claimed === null || !claimed.changed) return;
  await runCompletion(deps, pool, claimed.record);
}

async function runCompletion(deps: CompletionDeps, pool: ApiPool, record: JobRecord): Promise<void> {
  const log = deps.log.child({ job_id: record.job_id, api_name: record.api_name });
  const renew = setInterval(() => {
    void transitionJob(deps.ctx.jobs, record.job_id, (r) =>
      r.status === 'completing' && r.completion?.claimed_by === deps.daemonId
        ? { ...r, completion: { claimed_by: deps.daemonId, lease_until: new Date(Date.now() + deps.leaseMs).toISOString() } }
        : null,
    ).catch((err: unknown) => log.warn({ err }, 'renewing the completion lease failed'));
  }, Math.max(200, Math.floor(deps.leaseMs / 3)));
  renew.unref();
  try {
    await deps.flushStats(record.job_id);
    const counts = await liveCounts(deps.ctx, { ...record, status: 'running' });
    const metrics = metricsOf(counts);
    const status = counts.failed === 0 ? 'succeeded' : record.error?.code === ErrorCodes.WORKER_OOM ? 'worker_oom' : 'completed_with_failures';
    const summary: JobSummary = { job_id: record.job_id, api_name: record.api_name, status, total_batch_count: record.total_batch_count, batch_metrics: metrics };
    const outcome = await pool.runComplete({ kind: 'complete', job: jobSpecOf(record, pool.api), summary }, new AbortController().signal, () => 'shutdown');
    let hookError: ErrorInfo | null = null;
    if (!outcome.ok) {
      hookError = toErrorInfo(outcome.error);
      log.error({ error: hookError }, 'onJobComplete failed');
    }
    const final = await transitionJob(deps.ctx.jobs, record.job_id, (r) =>
      r.status === 'completing' && r.completion?.claimed_by === deps.daemonId
        ? { ...r, status, end_time: new Date().toISOString(), batch_metrics: metrics, batches_in_queue: 0, completion: null, error: hookError ?? r.error }
        : null,
    );
    if (final?.changed) {
      await discardQueue(deps.ctx, final.record).catch((err: unknown) => log.warn({ err }, 'removing the job consumer failed'));
      await publishEvent(deps.ctx, final.record, 'completed');
      log.info({ status, succeeded: metrics.succeeded, failed: metrics.failed }, 'job completed');
    }
  } finally {
    clearInterval(renew);
  }
}
