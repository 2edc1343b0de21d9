/**
 * How many results a completed job has stored, so a reader can tell it has all of them (`results_stored` on the
 * final record), and the manifest of a job with an `output`. Run by the daemon that completes the job, once every
 * batch has settled: parts are written and results published before their batch is acked, so nothing is added
 * after the queue is empty.
 */
import { readSubject } from '../client/read-subject.js';
import { storeFor, type StoreDeps } from '../stores/index.js';
import { makeFolderUnder } from '../stores/file-store.js';
import { parseStoreUrl } from '../stores/url.js';
import type { FleetContext } from './context.js';
import { PART_PATTERN, jobOutputRoot, manifestUrl, type ManifestRecord } from './output.js';
import { countSubject } from './progress.js';
import { Streams, Subjects, resultBatchOf } from './protocol.js';
import type { BatchMetrics, JobRecord } from '../types.js';
import { ErrorCodes, JetbatchError } from '../errors.js';

/**
 * Counts the stored results of a job whose every batch has settled; for a job with an `output`, lists its parts
 * and writes `manifest.json` (replacing one of an earlier round). Returns the count for `results_stored`. Throws
 * the store's error when the output cannot be listed or the manifest written.
 */
export async function settleStoredResults(ctx: FleetContext, record: JobRecord, status: string, metrics: BatchMetrics, storeDeps: StoreDeps): Promise<number> {
  if (record.output == null) return countStreamResults(ctx, record);
  const output = record.output;
  // file://: the output folder must exist on this host (JB_STORE_NOT_FOUND otherwise), as for the part writes: a
  // host without the volume mounted would find no parts and write a manifest saying so, locally.
  if (parseStoreUrl(output).scheme === 'file') await makeFolderUnder(output, `${record.job_id}/`);
  const store = await storeFor(output, storeDeps);
  try {
    const root = jobOutputRoot(output, record.job_id);
    const parts: string[] = [];
    try {
      for await (const o of store.list(root, { includes: ['part-*.jsonl'] })) {
        const name = o.url.slice(o.url.lastIndexOf('/') + 1);
        if (PART_PATTERN.test(name) && o.url === root + name) parts.push(name);
      }
    } catch (err) {
      // A bucket that does not exist holds no part: obj:// creates its bucket with the first part, so a job whose
      // batches all returned nothing has none (and S3 refuses parts to a missing bucket, failing their batches). A
      // file:// output that is not there on this host was refused above, before listing.
      if (!(err instanceof JetbatchError && err.code === ErrorCodes.STORE_NOT_FOUND)) throw err;
    }
    const manifest: ManifestRecord = {
      job_id: record.job_id,
      api_name: record.api_name,
      status,
      round: record.round ?? 0,
      total_batch_count: record.total_batch_count,
      batch_metrics: { succeeded: metrics.succeeded, failed: metrics.failed },
      dead_letters: metrics.failed,
      results_stored: parts.length,
      parts,
      batch_size: record.batch_size ?? null,
      written_at: new Date().toISOString(),
    };
    await store.write(manifestUrl(output, record.job_id), Buffer.from(JSON.stringify(manifest, null, 1) + '\n', 'utf8'));
    return parts.length;
  } finally {
    await store.close();
  }
}

/**
 * Distinct batch ids among the job's messages in the results stream. A batch's result is published once per
 * generation and deduplicated by `Nats-Msg-Id` within the duplicate window, so the message count is almost always
 * the answer; the ids are read anyway (headers only, no bodies) because a redelivery outside the window stores one
 * twice. Memory: one bit per batch.
 */
export async function countStreamResults(ctx: FleetContext, record: JobRecord): Promise<number> {
  const subject = Subjects.result(record.api_name, record.job_id);
  if ((await countSubject(ctx, Streams.results, subject)) === 0) return 0;
  const bits = new Uint8Array(Math.ceil(Math.max(1, record.total_batch_count) / 8));
  const others = new Set<string>();
  let distinct = 0;
  for await (const m of readSubject(ctx, Streams.results, subject, { headersOnly: true })) {
    const parsed = resultBatchOf(m.msgId ?? '');
    const batchId = parsed?.batchId ?? `seq-${m.seq}`;
    const n = parsed?.index ?? -1;
    if (n >= 0 && n < record.total_batch_count) {
      const bit = 1 << (n & 7);
      if ((bits[n >> 3]! & bit) !== 0) continue;
      bits[n >> 3]! |= bit;
      distinct++;
    } else if (!others.has(batchId)) {
      others.add(batchId);
      distinct++;
    }
  }
  return distinct;
}
