/**
 * Request/reply endpoints, answered by one daemon of the fleet (queue group `jetbatch`): the simplest publisher
 * needs one NATS request. Bodies are a JSON object or a MessagePack map, checked by fleet/requests-schema.ts; replies
 * are JSON `{ok: true, …}` or `{ok: false, error: {code, message, details?}}`.
 */
import { ClosedConnectionError, DrainingConnectionError, type Msg, type Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { submitPrepared } from '../fleet/submit.js';
import type { FleetContext } from '../fleet/context.js';
import type { JobRecord } from '../types.js';
import { ErrorCodes, JetbatchError } from '../errors.js';
import { endJob, pauseJob, resumeJob } from '../fleet/lifecycle.js';
import { readActivity } from '../fleet/activity.js';
import { jobStatus } from '../fleet/progress.js';
import { RequestQueueGroup, maxBodyBytes, Subjects, encodeJson } from '../fleet/protocol.js';
import { getJob, listJobs } from '../fleet/registry.js';
import { checkSubmission, prepareSubmission } from '../fleet/submission.js';
import { namesStoredData, prepareSourceJob, submitSource } from '../fleet/source-submit.js';
import { parseJobIdRequest, parseJobsRequest, submissionBody } from '../fleet/requests-schema.js';

type Handler = (body: Uint8Array) => Promise<Record<string, unknown>>;

export function serveRequests(ctx: FleetContext, log: Logger): Subscription[] {
  const handlers: Record<string, Handler> = {
    [Subjects.request.submit]: async (body) => {
      const input = submissionBody(body);
      // A job over stored data: the reply comes at once, `enqueuing`; a daemon serving the API enqueues it.
      if (namesStoredData(input)) return { job: await submitSource(ctx, prepareSourceJob(checkSubmission(input))) };
      const prepared = prepareSubmission(input, { maxBatchBytes: maxBodyBytes(ctx.nc), maxBatches: 1_000_000 });
      return { job: await submitPrepared(ctx, prepared) };
    },
    [Subjects.request.status]: async (body) => {
      const jobId = parseJobIdRequest('status', body);
      const v = await getJob(ctx.jobs, jobId);
      if (v === null) throw new JetbatchError(ErrorCodes.JOB_NOT_FOUND, `job ${jobId} not found`);
      return { status: await jobStatus(ctx, v.record) };
    },
    [Subjects.request.jobs]: async (body) => {
      const records = await listJobs(ctx, parseJobsRequest(body));
      const activity = await readActivity(ctx);
      return { jobs: await Promise.all(records.map((r) => jobStatus(ctx, r, activity))) };
    },
    [Subjects.request.stop]: async (body) => {
      const jobId = parseJobIdRequest('stop', body);
      return { job: found(jobId, (await endJob(ctx, jobId, 'stopped'))?.record ?? null) };
    },
    // The reply comes once no batch of the job can start any more (PAUSE_SETTLE_MS after the pause is recorded).
    [Subjects.request.pause]: async (body) => {
      const jobId = parseJobIdRequest('pause', body);
      return { job: found(jobId, await pauseJob(ctx, jobId)) };
    },
    [Subjects.request.resume]: async (body) => {
      const jobId = parseJobIdRequest('resume', body);
      return { job: found(jobId, await resumeJob(ctx, jobId)) };
    },
  };
  return Object.entries(handlers).map(([subject, handle]) =>
    ctx.nc.subscribe(subject, {
      queue: RequestQueueGroup,
      callback: (err, msg) => {
        if (err !== null) return;
        void answer(msg, handle, log);
      },
    }),
  );
}

async function answer(msg: Msg, handle: Handler, log: Logger): Promise<void> {
  let reply: Record<string, unknown>;
  try {
    reply = { ok: true, ...(await handle(msg.data)) };
  } catch (err) {
    if (isConnectionClosing(err)) {
      // The daemon is shutting down (its connection drains): no reply can be sent, and nothing went wrong.
      log.info({ subject: msg.subject }, 'request left unanswered: shutting down');
      return;
    }
    const e = err instanceof JetbatchError ? err : new JetbatchError(ErrorCodes.INTERNAL, (err as Error).message, { cause: err });
    if (e.code === ErrorCodes.INTERNAL) log.error({ err, subject: msg.subject }, 'request failed');
    reply = { ok: false, error: e.toJSON() };
  }
  if (msg.reply) msg.respond(encodeJson(reply));
}

/** A request that failed because this daemon's connection is draining or closed (a normal shutdown). */
export function isConnectionClosing(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 3; e = e.cause, depth++) {
    if (e instanceof DrainingConnectionError || e instanceof ClosedConnectionError) return true;
  }
  return false;
}

/** The record a lifecycle operation returned, or JB_JOB_NOT_FOUND when it found no such job (it returned null). */
function found(jobId: string, record: JobRecord | null): JobRecord {
  if (record === null) throw new JetbatchError(ErrorCodes.JOB_NOT_FOUND, `job ${jobId} not found`);
  return record;
}
