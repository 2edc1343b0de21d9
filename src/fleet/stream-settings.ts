/**
 * The settings of a streamed job (fleet/stream-submit.ts): a submission without its items or batches, checked by
 * the same rules, plus how the stream is cut into batches. The spec hash covers the settings and that mode, not the
 * content (unknown until the stream ends): a resumed stream's content is checked against the checkpoint's digest.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { ErrorCodes, JetbatchError } from '../errors.js';
import { checkShape } from './items.js';
import { formatIssues, jobSettingsOf, newJobId, settingsShape } from './submission.js';
import type { BackoffOptions } from '../types.js';

const streamSettingsSchema = z.object(settingsShape).strict();

/** Input of `submitStream`: `batch_size` given means the stream yields items; absent, it yields batches. */
export type StreamSettingsInput = z.input<typeof streamSettingsSchema>;

export interface StreamSettings {
  job_id: string;
  api_name: string;
  /** Items per batch when the stream yields items; null when it yields ready-made batches. */
  batch_size: number | null;
  workers: number;
  priority: number;
  config: Record<string, unknown>;
  timeout: number | null;
  batch_timeout: number | null;
  max_attempts: number | null;
  backoff: Partial<BackoffOptions> | null;
  /** Where the results are written (normalized prefix URL), or null for the results stream. */
  output: string | null;
  spec_hash: string;
}

/** Validates a streamed job's settings. Throws JB_INVALID_SUBMISSION listing every problem by key path. */
export function checkStreamSettings(input: unknown): StreamSettings {
  const parsed = streamSettingsSchema.safeParse(input);
  if (!parsed.success) {
    const details = formatIssues(parsed.error);
    throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `invalid submission: ${details.join('; ')}`, { details });
  }
  const s = parsed.data;
  const shape = checkShape(s.config, 'config', false);
  if (shape !== null) throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `invalid submission: ${shape}`, { details: [shape] });
  // batch_size second, as the spec hash has always read it.
  const { api_name, ...rest } = jobSettingsOf(s);
  const settings = { api_name, batch_size: s.batch_size ?? null, ...rest };
  const spec_hash = createHash('sha256').update('stream\n').update(JSON.stringify(settings)).digest('hex').slice(0, 32);
  return { ...settings, output: s.output ?? null, job_id: s.job_id ?? newJobId(), spec_hash };
}
