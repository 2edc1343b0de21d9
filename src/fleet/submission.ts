/**
 * Validation of job submissions, shared by the client and the daemon's one-request endpoint: a submission is
 * checked completely, and every batch encoded and size-checked, before anything is written to NATS.
 */
import { createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import { ErrorCodes, JetbatchError } from '../errors.js';
import { API_NAME_PATTERN, JOB_ID_PATTERN, encodeValue } from './protocol.js';
import { sourceInputSchema } from './source-spec.js';
import { checkShape } from './items.js';
import { normalizeOutput } from './output.js';
import type { BackoffOptions } from '../types.js';

const plainObject = z.record(z.string(), z.unknown());

/** A job id: the rule of a submission's `job_id` and of every job-id argument (see checkJobId). */
const jobIdSchema = z.string().regex(JOB_ID_PATTERN, 'must match ' + JOB_ID_PATTERN.source);

/**
 * The job-id check of the client's methods that name an existing job (status, stop, pause, …): the submission's
 * rule, but such a call is a request, not a submission. Returns the id, or throws JB_INVALID_REQUEST naming
 * `job_id`, the rule and what was given (cut to 80 characters). A submission's own job_id is checked by its schema
 * (JB_INVALID_SUBMISSION).
 */
export function checkJobId(value: unknown): string {
  const parsed = jobIdSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  const given = typeof value === 'string' ? `"${value.slice(0, 80)}"` : value === null ? 'null' : typeof value;
  throw new JetbatchError(ErrorCodes.INVALID_REQUEST, `job_id: must be a string matching ${JOB_ID_PATTERN.source}, got ${given}`);
}

const backoffSchema = z
  .object({
    initial_ms: z.number().int().min(0).max(86_400_000),
    factor: z.number().min(1).max(100),
    max_ms: z.number().int().min(0).max(86_400_000),
    jitter: z.number().min(0).max(1),
  })
  .partial()
  .strict();

/** A job's settings: everything of a submission but its items or batches (also the settings of a streamed job). */
export const settingsShape = {
  api_name: z.string().regex(API_NAME_PATTERN, 'must match ' + API_NAME_PATTERN.source),
  job_id: jobIdSchema.optional(),
  batch_size: z.number().int().min(1).max(1_000_000).optional(),
  workers: z.number().int().min(1).max(10_000).default(1),
  priority: z.number().int().min(-1000).max(1000).default(0),
  config: plainObject.default({}),
  timeout: z.number().positive().max(31_536_000).nullable().default(null),
  batch_timeout: z.number().positive().max(86_400).nullable().default(null),
  max_attempts: z.number().int().min(1).max(1000).nullable().default(null),
  backoff: backoffSchema.nullable().default(null),
  /**
   * Where the daemons write the job's results instead of the results stream (fleet/output.ts): a `file:///dir/`,
   * `obj://BUCKET/prefix/` or `s3://bucket/prefix/` URL, stored normalized as a prefix.
   */
  output: z
    .string()
    .max(1024)
    .transform((url, ctx) => {
      try {
        return normalizeOutput(url);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    })
    .optional(),
};


export const submissionSchema = z
  .object({
    ...settingsShape,
    items: z.array(z.unknown()).min(1, 'must hold at least one item').optional(),
    batches: z.array(z.array(z.unknown()).min(1, 'a batch must hold at least one item')).min(1).optional(),
    // A job over stored data (fleet/source-spec.ts): the fleet lists the stores and enqueues the batches.
    delimited_files: sourceInputSchema.optional(),
    file_path_lister: sourceInputSchema.optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    const inputs = [s.items, s.batches, s.delimited_files, s.file_path_lister].filter((x) => x !== undefined).length;
    if (inputs !== 1) {
      ctx.addIssue({ code: 'custom', message: 'give exactly one of items (with batch_size) or batches, or stored data (delimited_files or file_path_lister)', path: [] });
    }
    const stored = s.delimited_files !== undefined ? 'delimited_files' : s.file_path_lister !== undefined ? 'file_path_lister' : null;
    if (stored !== null && s.batch_size !== undefined) {
      ctx.addIssue({ code: 'custom', message: `goes inside ${stored} for a job over stored data`, path: ['batch_size'] });
    }
    if (s.file_path_lister?.max_bad_lines != null) {
      ctx.addIssue({ code: 'custom', message: 'only applies to delimited_files (a listing has no lines)', path: ['file_path_lister', 'max_bad_lines'] });
    }
    if (s.items !== undefined && s.batch_size === undefined) {
      ctx.addIssue({ code: 'custom', message: 'is required with items', path: ['batch_size'] });
    }
    if (s.batches !== undefined && s.batch_size !== undefined) {
      ctx.addIssue({ code: 'custom', message: 'only applies to items, not batches', path: ['batch_size'] });
    }
  });

/** What a publisher sends (the one-request body, or the client's argument). */
export type SubmissionInput = z.input<typeof submissionSchema>;

export interface PreparedJob {
  job_id: string;
  api_name: string;
  workers: number;
  priority: number;
  config: Record<string, unknown>;
  timeout: number | null;
  batch_timeout: number | null;
  max_attempts: number | null;
  backoff: Partial<BackoffOptions> | null;
  /** Items per batch of an `items` submission (batch N starts at item N × batch_size); null for ready-made batches. */
  batch_size: number | null;
  /** Where the results are written (normalized prefix URL), or null for the results stream. */
  output: string | null;
  /** Each batch as MessagePack, ready to publish; index = batch id. */
  batches: Uint8Array[];
  spec_hash: string;
}

export interface PrepareLimits {
  /** Largest encoded batch accepted, in bytes (the server's max_payload minus header room). */
  maxBatchBytes: number;
  /** Most batches in one job. */
  maxBatches: number;
}

export function formatIssues(error: z.ZodError, root = '(submission)'): string[] {
  return error.issues.map((issue) => {
    const path = issue.path.length > 0 ? issue.path.join('.') : root;
    return `${path}: ${issue.message}`;
  });
}


/** A submission that passed checkSubmission, defaults filled in; also valid as a SubmissionInput. */
export type CheckedSubmission = z.output<typeof submissionSchema>;

/**
 * The one check of a submission: the schema, then the nesting of config and items. Throws JB_INVALID_SUBMISSION
 * listing every problem by key path. prepareSubmission runs it first; the CLI runs it before connecting.
 */
export function checkSubmission(input: unknown): CheckedSubmission {
  const parsed = submissionSchema.safeParse(input);
  if (!parsed.success) {
    const details = formatIssues(parsed.error);
    throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `invalid submission: ${details.join('; ')}`, { details });
  }
  const s = parsed.data;
  const shapeProblems = [
    checkShape(s.config, 'config', false),
    checkShape(s.items ?? s.batches, s.items !== undefined ? 'items' : 'batches', true),
  ].filter((p): p is string => p !== null);
  if (shapeProblems.length > 0) {
    throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `invalid submission: ${shapeProblems.join('; ')}`, { details: shapeProblems });
  }
  return s;
}

/** Validates, splits and encodes a submission. Throws JetbatchError(JB_INVALID_SUBMISSION | JB_PAYLOAD_TOO_LARGE). */
export function prepareSubmission(input: unknown, limits: PrepareLimits): PreparedJob {
  const s = checkSubmission(input);
  const raw: unknown[][] = s.batches ?? chunk(s.items ?? [], s.batch_size ?? 1);
  if (raw.length > limits.maxBatches) {
    throw new JetbatchError(
      ErrorCodes.PAYLOAD_TOO_LARGE,
      `job has ${raw.length} batches; at most ${limits.maxBatches} are accepted`,
    );
  }
  const hash = createHash('sha256');
  const batches = raw.map((items, index) => {
    let bytes: Uint8Array;
    try {
      bytes = encodeValue(items);
    } catch (err) {
      throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `batch ${index} cannot be encoded as MessagePack`, {
        cause: err,
      });
    }
    if (bytes.byteLength > limits.maxBatchBytes) {
      throw new JetbatchError(
        ErrorCodes.PAYLOAD_TOO_LARGE,
        `batch ${index} is ${bytes.byteLength} bytes encoded; the limit is ${limits.maxBatchBytes} (use a smaller batch size)`,
      );
    }
    hash.update(bytes);
    return bytes;
  });
  const settings = jobSettingsOf(s);
  hash.update(JSON.stringify(settings));
  return {
    ...settings,
    output: s.output ?? null,
    batch_size: s.items !== undefined ? (s.batch_size ?? null) : null,
    job_id: s.job_id ?? newJobId(),
    batches,
    spec_hash: hash.digest('hex').slice(0, 32),
  };
}

/**
 * The settings of a checked submission (whole, streamed or over stored data) that its record keeps and its spec hash
 * covers, in the order the hash reads them. `output` is undefined when not set: JSON.stringify leaves it out, so a job
 * without output hashes as before outputs existed.
 */
export function jobSettingsOf(s: JobSettingsInput) {
  return {
    api_name: s.api_name,
    workers: s.workers,
    priority: s.priority,
    config: s.config,
    timeout: s.timeout,
    batch_timeout: s.batch_timeout,
    max_attempts: s.max_attempts,
    backoff: s.backoff,
    output: s.output,
  };
}

/** What jobSettingsOf reads: the checked settings every kind of submission has. */
type JobSettingsInput = Pick<CheckedSubmission, 'api_name' | 'workers' | 'priority' | 'config' | 'timeout' | 'batch_timeout' | 'max_attempts' | 'backoff' | 'output'>;

function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Time-ordered job ids (hex milliseconds + random), so ids sort by submission time. */
export function newJobId(): string {
  return Date.now().toString(16).padStart(12, '0') + randomBytes(4).toString('hex');
}
