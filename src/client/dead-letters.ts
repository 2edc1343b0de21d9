/**
 * Reading and replaying a job's dead letters. Replay re-enqueues every dead-lettered batch as a new generation of
 * the same job (same batch ids, fresh attempts) and removes its dead letters, so the job's counts stay exact: the
 * job reopens if it had ended, runs the batches again, and completes again (onJobComplete runs again).
 */
import { readSubject } from './read-subject.js';
import { headers } from '@nats-io/transport-node';
import type { FleetContext } from '../context.js';
import { ErrorCodes, JetbatchError } from '../errors.js';
import { Headers, Streams, Subjects, batchMsgId, decodeValue } from '../protocol.js';
import { getJob, transitionJob } from '../registry.js';
import type { DeadLetter, JobRecord } from '../types.js';
import { enqueueDeadline } from './submit.js';

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
  // Reopen an ended job as `enqueuing`: daemons pick it up again, and nobody can complete it mid-replay.
  const reopened = await transitionJob(ctx.jobs, jobId, (r) => {
    if (r.status === 'completed_with_failures' || r.status === 'worker_oom') {
      return { ...r, status: 'enqueuing', end_time: null, batch_metrics: null, batches_in_queue: null, error: null, completion: null, enqueue_deadline: enqueueDeadline(Date.now(), letters.length) };
    }
    return REPLAYABLE.has(r.status) ? r : null;
  });
  if (reopened === null || (!reopened.changed && !REPLAYABLE.has(reopened.record.status))) {
    throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `job ${jobId} changed state during replay; try again`);
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
    await ctx.jsm.streams.deleteMessage(Streams.deadLetters, letter.seq, false);
  }
  const done = await transitionJob(ctx.jobs, jobId, (r) => (r.status === 'enqueuing' ? { ...r, status: 'pending' } : null));
  return { record: done?.record ?? reopened.record, replayed: letters.length };
}
