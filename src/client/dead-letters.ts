/**
 * Reading and replaying a job's dead letters. Replay re-enqueues every dead-lettered batch as a new generation of
 * the same job (same batch ids, fresh attempts) and removes its dead letters, so the job's counts stay exact: the
 * job reopens if it had ended, runs the batches again, and completes again (onJobComplete runs again).
 */
import { readSubject } from './read-subject.js';
import { headers } from '@nats-io/transport-node';
import { JetStreamApiError } from '@nats-io/jetstream';
import type { FleetContext } from '../fleet/context.js';
import { ErrorCodes, JetbatchError } from '../errors.js';
import { Headers, Streams, Subjects, batchMsgId, decodeValue } from '../fleet/protocol.js';
import { getJob, transitionJob } from '../fleet/registry.js';
import type { DeadLetter, JobRecord } from '../types.js';
import { enqueueDeadline } from '../fleet/submit.js';

export interface StoredDeadLetter extends DeadLetter {
  /** Sequence of the dead letter in the JETBATCH_DLQ stream. */
  seq: number;
}

const REPLAYABLE = new Set(['pending', 'running', 'completed_with_failures', 'worker_oom']);

export async function readDeadLetters(ctx: FleetContext, record: JobRecord): Promise<StoredDeadLetter[]> {
  const subject = Subjects.deadLetter(record.api_name, record.job_id);
  const out: StoredDeadLetter[] = [];
  for await (const m of readSubject(ctx, Streams.deadLetters, subject)) out.push({ ...(decodeValue(m.data) as DeadLetter), seq: m.seq });
  return out;
}

export async function replayDeadLetters(ctx: FleetContext, jobId: string): Promise<{ record: JobRecord; replayed: number }> {
  const current = await getJob(ctx.jobs, jobId);
  if (current === null) throw new JetbatchError(ErrorCodes.JOB_NOT_FOUND, `job ${jobId} not found`);
  if (!REPLAYABLE.has(current.record.status)) {
    throw new JetbatchError(
      ErrorCodes.INVALID_SUBMISSION,
      `job ${jobId} is ${current.record.status}; only active jobs and jobs that ended completed_with_failures or worker_oom can be replayed`,
    );
  }
  const letters = await readDeadLetters(ctx, current.record);
  if (letters.length === 0) return { record: current.record, replayed: 0 };
  // The job turns `enqueuing` for the replay, ended or still active: daemons run it, nobody can complete it
  // mid-replay (a completion in between would purge the batches just re-published, after which their dead letters
  // are removed: lost), and a second replay at the same time is refused.
  let resume: 'pending' | 'running' = 'pending';
  const reopened = await transitionJob(ctx.jobs, jobId, (r) => {
    if (!REPLAYABLE.has(r.status)) return null;
    resume = r.status === 'running' ? 'running' : 'pending';
    const deadline = enqueueDeadline(Date.now(), letters.length);
    if (r.status === 'pending' || r.status === 'running') return { ...r, status: 'enqueuing', enqueue_deadline: deadline };
    return { ...r, status: 'enqueuing', end_time: null, batch_metrics: null, batches_in_queue: null, results_stored: null, error: null, completion: null, enqueue_deadline: deadline, round: (r.round ?? 0) + 1 };
  });
  if (reopened === null || !reopened.changed) {
    throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `job ${jobId} changed state during replay (it is ${reopened?.record.status ?? 'gone'}); try again`);
  }
  const subject = Subjects.batch(current.record.api_name, jobId);
  // Publish first, then remove the dead letter: a batch is never missing from both places.
  for (const letter of letters) {
    const generation = letter.generation + 1;
    const h = headers();
    h.set(Headers.jobId, jobId);
    h.set(Headers.batchId, letter.batch_id);
    h.set(Headers.apiName, current.record.api_name);
    h.set(Headers.generation, String(generation));
    await ctx.js.publish(subject, letter.payload, { msgID: batchMsgId(jobId, letter.batch_id, generation), headers: h, expect: { streamName: Streams.batches } });
    await ctx.jsm.streams.deleteMessage(Streams.deadLetters, letter.seq, false).catch(ignoreMissingMessage);
  }
  const done = await transitionJob(ctx.jobs, jobId, (r) => (r.status === 'enqueuing' ? { ...r, status: resume } : null));
  return { record: done?.record ?? reopened.record, replayed: letters.length };
}

/** JetStream API error 10057: the message is gone already (removed by someone else, or aged out). */
function ignoreMissingMessage(err: unknown): void {
  if (err instanceof JetStreamApiError && err.code === 10057) return;
  throw err;
}
