/**
 * Submission of a job over stored data (fleet/source-spec.ts): the submitter only registers the job, `enqueuing`,
 * with its `source` and an empty checkpoint; a daemon serving the API claims the enqueue and publishes the batches
 * (daemon/source-enqueuer.ts). The submitter needs no access to the stores.
 */
import { createHash } from 'node:crypto';
import type { FleetContext } from './context.js';
import { ErrorCodes, JetbatchError } from '../errors.js';
import { sourceSpecHash, sourceSpecOf } from './source-spec.js';
import { getJob } from './registry.js';
import { RESUME_WITHIN_MS } from './stream-submit.js';
import { checkApiServed, registerJob, type RecordSettings } from './submit.js';
import { jobSettingsOf, newJobId, type CheckedSubmission } from './submission.js';
import type { JobRecord, SourceSpec } from '../types.js';

export interface SourceJob extends RecordSettings {
  source: SourceSpec;
}

/** Whether a submission (not checked yet) names stored data rather than items or batches: then see prepareSourceJob. */
export function namesStoredData(input: unknown): boolean {
  if (input === null || typeof input !== 'object') return false;
  const s = input as Record<string, unknown>;
  return s.delimited_files !== undefined || s.file_path_lister !== undefined;
}

/** The job of a checked submission over stored data (JB_INVALID_SUBMISSION if it names none). */
export function prepareSourceJob(s: CheckedSubmission): SourceJob {
  const source =
    s.delimited_files !== undefined
      ? sourceSpecOf('delimited_files', s.delimited_files)
      : s.file_path_lister !== undefined
        ? sourceSpecOf('file_path_lister', s.file_path_lister)
        : null;
  if (source === null) throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, 'invalid submission: names no stored data (delimited_files or file_path_lister)');
  const settings = jobSettingsOf(s);
  return {
    ...settings,
    output: s.output ?? null,
    // Batches cross file boundaries, so batch N holds items N × batch_size … (results --per-item relies on it).
    batch_size: source.batch_size,
    job_id: s.job_id ?? newJobId(),
    source,
    spec_hash: sourceSpecHash(settings, source),
  };
}

/** The checkpoint of an enqueue that has not started: nothing published, nobody claims it. */
export function emptyCheckpoint(): NonNullable<JobRecord['enqueue']> {
  return { batches: 0, digest: createHash('sha256').digest('hex'), bad_lines: 0, owner: null, lease_until: null };
}

/**
 * Registers the job (`enqueuing`, with its source) and returns its record at once: the batches are enqueued by the
 * fleet. The same submission under the same id returns the existing record; other content is JB_JOB_CONFLICT.
 */
export async function submitSource(ctx: FleetContext, job: SourceJob): Promise<JobRecord> {
  await checkApiServed(ctx, job.api_name);
  const now = Date.now();
  const { source, ...settings } = job;
  // The deadline is pushed forward by each checkpoint of the daemon enqueuing; unclaimed for RESUME_WITHIN_MS (no
  // daemon serving the API running), the job ends enqueue_failed.
  const fields = { total_batch_count: 0, enqueue_deadline: new Date(now + RESUME_WITHIN_MS).toISOString(), enqueue: emptyCheckpoint(), source };
  const existing = await registerJob(ctx, settings, now, fields);
  if (existing !== null) return existing;
  const created = await getJob(ctx.jobs, job.job_id);
  if (created === null) throw new JetbatchError(ErrorCodes.INTERNAL, `job ${job.job_id} vanished after it was registered`);
  return created.record;
}
