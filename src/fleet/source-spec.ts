/**
 * A job over stored data (issue #16 item 2): instead of items or batches, a submission names stores to list, and the
 * fleet enqueues the batches (daemon/source-enqueuer.ts). Two kinds, one shape:
 *
 * - `delimited_files`: every listed object is JSON Lines (gzip-compressed when its name ends in `.gz` or it starts
 *   with the gzip magic bytes); each batch is `batch_size` items, read across file boundaries in listing order, so
 *   every batch but the last is full.
 * - `file_path_lister`: each batch is `batch_size` object URLs (strings), read with `ctx.open(url)` by the handler.
 *
 * `paths` are listing roots (file://, obj://, s3://), listed in the order given, each recursively in byte order of its
 * keys, filtered by `includes` / `excludes` (globs on the key relative to the root).
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { parseStoreUrl } from '../stores/url.js';
import type { SourceKind, SourceSpec } from '../types.js';

export type { SourceKind, SourceSpec } from '../types.js';

export const SOURCE_KINDS: readonly SourceKind[] = ['delimited_files', 'file_path_lister'];

/** Most listing roots in one job, and most globs in each of includes / excludes. */
const MAX_PATHS = 1000;
const MAX_GLOBS = 100;

const storeUrl = z
  .string()
  .min(1)
  .max(4096)
  .superRefine((url, ctx) => {
    try {
      parseStoreUrl(url);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
    }
  });

const glob = z.string().min(1).max(1024);

/** What a submission gives under `delimited_files` or `file_path_lister`. */
export const sourceInputSchema = z
  .object({
    paths: z.array(storeUrl).min(1, 'must name at least one store URL').max(MAX_PATHS),
    includes: z.array(glob).max(MAX_GLOBS).default([]),
    excludes: z.array(glob).max(MAX_GLOBS).default([]),
    batch_size: z.number().int().min(1).max(1_000_000),
    /**
     * Malformed lines skipped (counted in `enqueue.bad_lines`, logged with file and line) before the job ends
     * `enqueue_failed`; null = no limit (the CLI's `--max-bad-lines` default). Only for `delimited_files`.
     */
    max_bad_lines: z.number().int().min(0).nullable().default(null),
  })
  .strict();

export type SourceInput = z.input<typeof sourceInputSchema>;

export function sourceSpecOf(kind: SourceKind, parsed: z.output<typeof sourceInputSchema>): SourceSpec {
  return { kind, paths: parsed.paths, includes: parsed.includes, excludes: parsed.excludes, batch_size: parsed.batch_size, max_bad_lines: parsed.max_bad_lines };
}

/**
 * The spec hash of a job over stored data: its settings and its source, not the data (read by the fleet later). The
 * same submission under the same id is a no-op; anything else under that id is JB_JOB_CONFLICT.
 */
export function sourceSpecHash(settings: Record<string, unknown>, source: SourceSpec): string {
  return createHash('sha256').update('source\n').update(JSON.stringify(settings)).update('\n').update(JSON.stringify(source)).digest('hex').slice(0, 32);
}
