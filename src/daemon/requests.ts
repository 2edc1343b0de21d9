/**
 * Request/reply endpoints, answered by one daemon of the fleet (queue group `jetbatch`): the simplest publisher
 * needs one NATS request. Bodies are JSON or MessagePack; replies are JSON `{ok: true, …}` or
 * `{ok: false, error: {code, message, details?}}`.
 */
import type { Msg, Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { submitPrepared } from '../fleet/submit.js';
import type { FleetContext } from '../fleet/context.js';
import { ErrorCodes, JetbatchError } from '../errors.js';
import { endJob } from '../fleet/lifecycle.js';
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
      const b = (body ?? {}) as { api_name?: unknown; limit?: unknown };
      const filter: { api?: string; limit?: number } = {};
      if (typeof b.api_name === 'string') filter.api = b.api_name;
      filter.limit = typeof b.limit === 'number' && Number.isInteger(b.limit) && b.limit > 0 ? Math.min(b.limit, 1000) : 100;
      const records = await listJobs(ctx.jobs, filter);
      const activity = await readActivity(ctx);
      return { jobs: await Promise.all(records.map((r) => jobStatus(ctx, r, activity))) };
    },
    [Subjects.request.stop]: async (body) => {
      const r = await endJob(ctx, jobIdOf(body), 'stopped');
      if (r === null) throw new JetbatchError(ErrorCodes.JOB_NOT_FOUND, `job ${jobIdOf(body)} not found`);
      return { job: r.record };
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
