/**
 * The one rule of every one-request endpoint (docs/PROTOCOL.md §6): the body is a JSON object or a MessagePack map
 * (an empty body only for `jobs`), unknown keys are refused, and each field is checked by one small schema per
 * endpoint. A malformed status/stop/pause/resume/jobs request is JB_INVALID_REQUEST naming each field; a submission
 * is JB_INVALID_SUBMISSION (its schema is in submission.ts).
 */
import { z } from 'zod';
import { ErrorCodes, JetbatchError, type ErrorCode } from '../errors.js';
import { API_NAME_PATTERN, JOB_ID_PATTERN, RequestBodyError, decodeRequestBody } from './protocol.js';
import { formatIssues } from './submission.js';

/** Most jobs one `jobs` request lists, and how many when it names no limit. */
export const JOBS_LIMIT_MAX = 1000;
export const JOBS_LIMIT_DEFAULT = 100;

/** What a value was, for messages: `"a.b"` (cut to 80 characters), `nothing`, `null`, `an array`, `number 2.5`. */
function given(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') return `"${value.slice(0, 80)}"`;
  if (typeof value === 'number' || typeof value === 'boolean') return `${typeof value} ${String(value)}`;
  return Array.isArray(value) ? 'an array' : typeof value;
}

/** One message for every way a field breaks its rule: `must be <rule>, got <value>`. */
const rule = (text: string): { error: (issue: { input?: unknown }) => string } => ({
  error: (issue) => `must be ${text}, got ${given(issue.input)}`,
});

const JOB_ID_RULE = rule(`a string matching ${JOB_ID_PATTERN.source}`);
const API_NAME_RULE = rule(`a string matching ${API_NAME_PATTERN.source}`);
const LIMIT_RULE = rule(`an integer from 1 to ${JOBS_LIMIT_MAX}`);

const jobIdRequest = z.strictObject({ job_id: z.string(JOB_ID_RULE).regex(JOB_ID_PATTERN, JOB_ID_RULE) });

const jobsRequest = z.strictObject({
  api_name: z.string(API_NAME_RULE).regex(API_NAME_PATTERN, API_NAME_RULE).optional(),
  limit: z.number(LIMIT_RULE).int(LIMIT_RULE).min(1, LIMIT_RULE).max(JOBS_LIMIT_MAX, LIMIT_RULE).optional(),
});

/** The endpoints whose body is `{"job_id": str}`. */
export type JobIdEndpoint = 'status' | 'stop' | 'pause' | 'resume';

/** The job id of a status, stop, pause or resume request. Throws JB_INVALID_REQUEST. */
export function parseJobIdRequest(endpoint: JobIdEndpoint, bytes: Uint8Array): string {
  const what = `${endpoint} request`;
  return check(jobIdRequest, body(bytes, ErrorCodes.INVALID_REQUEST, what, false), what, 'job_id only').job_id;
}

/** The filter of a jobs request: an empty body or `{}` lists the newest 100 of every API. Throws JB_INVALID_REQUEST. */
export function parseJobsRequest(bytes: Uint8Array): { api?: string; limit: number } {
  const what = 'jobs request';
  const { api_name: api, limit } = check(jobsRequest, body(bytes, ErrorCodes.INVALID_REQUEST, what, true) ?? {}, what, 'api_name and limit');
  return api === undefined ? { limit: limit ?? JOBS_LIMIT_DEFAULT } : { api, limit: limit ?? JOBS_LIMIT_DEFAULT };
}

/** The body of a submit request, for prepareSubmission. Throws JB_INVALID_SUBMISSION when it is not an object. */
export function submissionBody(bytes: Uint8Array): Record<string, unknown> {
  return body(bytes, ErrorCodes.INVALID_SUBMISSION, 'submission', false);
}

function body(bytes: Uint8Array, code: ErrorCode, what: string, emptyAllowed: true): Record<string, unknown> | undefined;
function body(bytes: Uint8Array, code: ErrorCode, what: string, emptyAllowed: false): Record<string, unknown>;
function body(bytes: Uint8Array, code: ErrorCode, what: string, emptyAllowed: boolean): Record<string, unknown> | undefined {
  const expected = emptyAllowed ? 'an empty body, a JSON object or a MessagePack map' : 'a JSON object or a MessagePack map';
  let decoded: Record<string, unknown> | undefined;
  try {
    decoded = decodeRequestBody(bytes);
  } catch (err) {
    if (!(err instanceof RequestBodyError)) throw err;
    throw new JetbatchError(code, `invalid ${what}: expected ${expected}, got ${err.got}`, { cause: err });
  }
  if (decoded === undefined && !emptyAllowed) {
    throw new JetbatchError(code, `invalid ${what}: expected ${expected}, got an empty body`);
  }
  return decoded;
}

/** Unknown keys named in one reply, at most (a body may hold thousands). */
const MAX_KEYS_NAMED = 10;

function check<T>(schema: z.ZodType<T>, input: unknown, what: string, takes: string): T {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const details = parsed.error.issues.flatMap((issue) => {
    if (issue.code !== 'unrecognized_keys') return formatIssues(new z.ZodError([issue]), `(${what})`);
    const named = issue.keys.slice(0, MAX_KEYS_NAMED).map((key) => `${key.slice(0, 80)}: unknown key (a ${what} takes ${takes})`);
    const more = issue.keys.length - named.length;
    return more > 0 ? [...named, `… and ${more} more unknown keys`] : named;
  });
  throw new JetbatchError(ErrorCodes.INVALID_REQUEST, `invalid ${what}: ${details.join('; ')}`, { details });
}
