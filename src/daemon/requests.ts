/**
 * Request/reply endpoints, answered by one daemon of the fleet (queue group `jetbatch`): the simplest publisher
 * needs one NATS request. Bodies are JSON or MessagePack; replies are JSON `{ok: true, …}` or
 * `{ok: false, error: {code, message, details?}}`.
 */
import type { Msg, Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { submitPrepared } from '../fleet/submit.js';
import type { FleetContext } from '../fleet/context.js';
import type { JobRecord } from '../types.js';
import { ErrorCodes, JetbatchError } from '../errors.js';
import { endJob, pauseJob, resumeJob } from '../fleet/lifecycle.js';
import { readActivity } from '../fleet/activity.js';
import { jobStatus } from '../fleet/progress.js';
import { RequestQueueGroup, maxBodyBytes, Subjects, decodeRequestBody, encodeJson } from '../fleet/protocol.js';
import { getJob, listJobs } from '../fleet/registry.js';
import { checkJobId, prepareSubmission } from '../fleet/submission.js';


export function serveRequests(ctx: FleetContext, log: Logger): Subscription[] {
  const handlers: Record<string, (body: unknown) => Promise<Record<string, unknown>>> = {
    [Subjects.request.submit]: async (body) => {
      const prepared = prepareSubmission(body, { maxBatchBytes: maxBodyBytes(ctx.nc), maxBatches: 1_000_000 });
      return { job: await submitPrepared(ctx, prepared) };
    },
    [Subjects.request.status]: async (body) => {
      const v = await getJob(ctx.jobs, jobIdOf(body));
      if (v === null) throw new JetbatchError(ErrorCodes.JOB_NOT_FOUND, `job ${jobIdOf(body)} not found`);
      return { status: await jobStatus(ctx, v.record) };
    },
    [Subjects.request.jobs]: async (body) => {
      const records = await listJobs(ctx, jobsFilterOf(body));
      const activity = await readActivity(ctx);
      return { jobs: await Promise.all(records.map((r) => jobStatus(ctx, r, activity))) };
    },
    [Subjects.request.stop]: async (body) => {
      const jobId = jobIdOf(body);
      return { job: found(jobId, (await endJob(ctx, jobId, 'stopped'))?.record ?? null) };
    },
    // The reply comes once no batch of the job can start any more (PAUSE_SETTLE_MS after the pause is recorded).
    [Subjects.request.pause]: async (body) => {
      const jobId = jobIdOf(body);
      return { job: found(jobId, await pauseJob(ctx, jobId)) };
    },
    [Subjects.request.resume]: async (body) => {
      const jobId = jobIdOf(body);
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

async function answer(msg: Msg, handle: (body: unknown) => Promise<Record<string, unknown>>, log: Logger): Promise<void> {
  let reply: Record<string, unknown>;
  try {
    let body: unknown;
    try {
      body = decodeRequestBody(msg.data);
    } catch (err) {
      throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `request body is neither JSON nor MessagePack: ${(err as Error).message}`);
    }
    reply = { ok: true, ...(await handle(body)) };
  } catch (err) {
    const e = err instanceof JetbatchError ? err : new JetbatchError(ErrorCodes.INTERNAL, (err as Error).message, { cause: err });
    if (e.code === ErrorCodes.INTERNAL) log.error({ err, subject: msg.subject }, 'request failed');
    reply = { ok: false, error: e.toJSON() };
  }
  if (msg.reply) msg.respond(encodeJson(reply));
}

function jobIdOf(body: unknown): string {
  return checkJobId((body as { job_id?: unknown } | null)?.job_id);
}

/** The record a lifecycle operation returned, or JB_JOB_NOT_FOUND when it found no such job (it returned null). */
function found(jobId: string, record: JobRecord | null): JobRecord {
  if (record === null) throw new JetbatchError(ErrorCodes.JOB_NOT_FOUND, `job ${jobId} not found`);
  return record;
}

/** Most jobs one `jobs` request lists, and how many when it names no limit. */
const JOBS_LIMIT_MAX = 1000;
const JOBS_LIMIT_DEFAULT = 100;

/**
 * The filter of a `jobs` request: no body (or `{}`) lists the newest 100 of every API. A field of the wrong type is
 * refused naming it, rather than ignored, so a publisher's typo does not silently list something else; a limit
 * above 1000 is lowered to 1000.
 */
function jobsFilterOf(body: unknown): { api?: string; limit: number } {
  if (body === undefined || body === null) return { limit: JOBS_LIMIT_DEFAULT };
  if (typeof body !== 'object' || Array.isArray(body)) {
    throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, 'jobs request: the body must be an object {api_name?, limit?}');
  }
  const { api_name: api, limit } = body as { api_name?: unknown; limit?: unknown };
  const problems: string[] = [];
  if (api !== undefined && typeof api !== 'string') problems.push(`api_name: must be a string, got ${typeOf(api)}`);
  if (limit !== undefined && !(typeof limit === 'number' && Number.isInteger(limit) && limit > 0)) {
    problems.push(`limit: must be a positive integer, got ${typeof limit === 'number' ? String(limit) : typeOf(limit)}`);
  }
  if (problems.length > 0) {
    throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `invalid jobs request: ${problems.join('; ')}`, { details: problems });
  }
  const filter: { api?: string; limit: number } = { limit: Math.min(typeof limit === 'number' ? limit : JOBS_LIMIT_DEFAULT, JOBS_LIMIT_MAX) };
  if (typeof api === 'string') filter.api = api;
  return filter;
}

function typeOf(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
}
