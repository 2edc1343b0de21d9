/**
 * A job's `output`: where the daemons write its results instead of the results stream, and the names and formats
 * of what they write there (docs/PROTOCOL.md §10a). Under `<output>/<job id>/`:
 *
 * - `part-<batch id, 12 digits>.jsonl`: one object per batch that returned a value, written whole when the batch
 *   succeeds and before it is acked. The zero padding makes byte order of the names = batch order, so a listing
 *   (stores list in byte order) reads the results in batch order. A redelivered batch overwrites its own part:
 *   no duplicates. The object holds one JSON line, `{job_id, batch_id, duration_ms, attempt, result}\n`, the same
 *   line `jetbatch results` prints.
 * - `manifest.json`: written once the job completed, before its final status: what a reader needs to know it has
 *   every result (ManifestRecord).
 */
import { joinStoreUrl, parseStoreUrl, formatStoreUrl, withSlash } from '../stores/url.js';

/** Digits of the zero-padded batch id in a part name: batch ids go up to 999,999 (1,000,000 batches per job). */
export const PART_DIGITS = 12;
export const MANIFEST_NAME = 'manifest.json';
export const PART_PATTERN = /^part-(\d{12})\.jsonl$/;

/**
 * The output URL as stored in the record: validated (JB_INVALID_STORE_URL), normalized, and always a prefix
 * (ending in `/`). Throws for anything but file://, obj:// and s3:// URLs.
 */
export function normalizeOutput(url: string): string {
  const loc = parseStoreUrl(url);
  if (loc.scheme === 'file') return formatStoreUrl({ scheme: 'file', path: withSlash(loc.path) });
  return formatStoreUrl({ ...loc, key: withSlash(loc.key) });
}

/** `<output>/<job id>/`: everything the job writes is under it. */
export function jobOutputRoot(output: string, jobId: string): string {
  return joinStoreUrl(output, `${jobId}/`);
}

/** The part name of a batch: `part-000000000042.jsonl`; null for a batch id that is not a decimal index. */
export function partName(batchId: string): string | null {
  if (!/^\d{1,12}$/.test(batchId)) return null;
  return `part-${batchId.padStart(PART_DIGITS, '0')}.jsonl`;
}

export function partUrl(output: string, jobId: string, batchId: string): string | null {
  const name = partName(batchId);
  return name === null ? null : joinStoreUrl(output, `${jobId}/${name}`);
}

export function manifestUrl(output: string, jobId: string): string {
  return joinStoreUrl(output, `${jobId}/${MANIFEST_NAME}`);
}

/** The content of `manifest.json`. */
export interface ManifestRecord {
  job_id: string;
  api_name: string;
  /** The final status the job is about to be given (succeeded, completed_with_failures, worker_oom). */
  status: string;
  /** Completion round (0, +1 per dead-letter replay that reopened the job): a replay rewrites the manifest. */
  round: number;
  total_batch_count: number;
  /** Batches that succeeded and that failed (dead-lettered), as in the final status. */
  batch_metrics: { succeeded: number; failed: number };
  /** Dead letters of the job (= batch_metrics.failed). */
  dead_letters: number;
  /** Parts present = `parts.length`: the batches whose result is stored (a batch that returned nothing has none). */
  results_stored: number;
  /** Part names (relative to the manifest's folder), in batch order. */
  parts: string[];
  /** Items per batch of an `items` submission (item index = batch id × batch_size + position); null otherwise. */
  batch_size: number | null;
  written_at: string;
}

/**
 * One result as a JSON line. MessagePack can hold what JSON cannot: 64-bit integers beyond 2^53 become decimal
 * strings, binary data becomes `{"$binary": "<base64>"}`. Everything else is plain JSON.
 */
export function resultLine(result: object): string {
  return JSON.stringify(result, jsonSafe) + '\n';
}

function jsonSafe(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  if (value instanceof Uint8Array) return { $binary: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') };
  return value;
}
