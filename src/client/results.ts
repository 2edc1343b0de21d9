/**
 * Reading a job's results back with bounded memory, from either source:
 * - a job with an `output`: its parts by batch id (= batch order, fleet/output.ts), one part in memory at a time;
 * - the results stream, in batch order: a first pass reads only the headers (which batch each message holds, 8 bytes
 *   per batch kept), a second fetches the bodies by sequence number in batch order, a few at a time.
 * `perItem` turns batch results into one value per input item, with its index.
 */
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { FleetContext } from '../fleet/context.js';
import { partUrl } from '../fleet/output.js';
import { Streams, Subjects, decodeValue, resultBatchOf } from '../fleet/protocol.js';
import { storeFor } from '../stores/index.js';
import { ErrorCodes, JetbatchError } from '../errors.js';
import type { BatchResult, JobRecord } from '../types.js';
import { readSubject } from './read-subject.js';

/** One input item's result (`results --per-item`). */
export interface ItemResult {
  /** 0-based position of the item in the job's input: batch id × batch_size + position in the batch. */
  item_index: number;
  batch_id: string;
  result: unknown;
}

/** Bodies fetched at once while reading the results stream in batch order. */
const FETCH_WINDOW = 16;

/** Parts opened ahead while reading an output (each holds an open file or an HTTP response until read). */
const OPEN_AHEAD = 4;

/**
 * The parts of a job's output in batch order, each part's line as a result. The part of batch N has a known name, so
 * the parts are opened by batch id (0 … total − 1; a batch without one, dead-lettered or returning nothing, is
 * skipped) rather than listed: memory stays bounded however many parts there are, where a listing may hold every key.
 */
export async function* outputResults(ctx: FleetContext, record: JobRecord): AsyncGenerator<BatchResult> {
  const output = record.output!;
  const store = await storeFor(output, { js: ctx.js });
  const ahead: Array<Promise<Readable | null>> = [];
  const open = (n: number): Promise<Readable | null> =>
    store.open(partUrl(output, record.job_id, String(n))!).catch((err: unknown) => {
      if (err instanceof JetbatchError && err.code === ErrorCodes.STORE_NOT_FOUND) return null;
      throw err;
    });
  try {
    let next = 0;
    const total = record.total_batch_count;
    while (next < total || ahead.length > 0) {
      while (next < total && ahead.length < OPEN_AHEAD) ahead.push(open(next++));
      const input = await ahead.shift()!;
      if (input === null) continue;
      try {
        for await (const line of createInterface({ input, crlfDelay: Infinity })) if (line.length > 0) yield JSON.parse(line) as BatchResult;
      } finally {
        // Closing the line reader leaves its input open: a reader that stops early would leak the part's file or socket.
        input.destroy();
      }
    }
  } finally {
    // Stopped early (or failed): release what was opened ahead.
    for (const p of ahead) void p.then((r) => r?.destroy(), () => undefined);
    await Promise.allSettled(ahead);
    await store.close();
  }
}

/**
 * The results stream of a job in batch order (numeric batch ids first, then others by text), each batch once (its
 * first stored result), without holding the results: only the sequence number of each batch's result.
 */
export async function* streamResultsByBatch(ctx: FleetContext, record: JobRecord): AsyncGenerator<BatchResult> {
  const subject = Subjects.result(record.api_name, record.job_id);
  const seqs = new Float64Array(record.total_batch_count);
  // Numeric ids beyond the record's count (a streamed job read while still enqueuing), then any other id.
  const beyond = new Map<number, number>();
  const others = new Map<string, number>();
  for await (const m of readSubject(ctx, Streams.results, subject, { headersOnly: true })) {
    const parsed = resultBatchOf(m.msgId ?? '');
    const batchId = parsed?.batchId ?? `seq-${m.seq}`;
    const n = parsed?.index ?? -1;
    if (n >= 0 && n < seqs.length) {
      if (seqs[n] === 0) seqs[n] = m.seq;
    } else if (n >= 0) {
      if (!beyond.has(n)) beyond.set(n, m.seq);
    } else if (!others.has(batchId)) others.set(batchId, m.seq);
  }
  const order: number[] = [];
  for (const seq of seqs) if (seq > 0) order.push(seq);
  for (const n of [...beyond.keys()].sort((a, b) => a - b)) order.push(beyond.get(n)!);
  for (const id of [...others.keys()].sort()) order.push(others.get(id)!);
  const fetch = async (seq: number): Promise<BatchResult | null> => {
    // null: removed between the two passes (aged out past retention.results), gone for every reader.
    const m = await ctx.jsm.streams.getMessage(Streams.results, { seq });
    return m === null ? null : (decodeValue(m.data) as BatchResult);
  };
  const window: Array<Promise<BatchResult | null>> = [];
  let i = 0;
  while (i < order.length || window.length > 0) {
    while (i < order.length && window.length < FETCH_WINDOW) window.push(fetch(order[i++]!));
    const r = await window.shift()!;
    if (r !== null) yield r;
  }
}

/**
 * One result per input item, in input order, from batch results in batch order. Needs a job submitted as `items`
 * with a fixed `batch_size` (batch N starts at item N × batch_size) and a handler that returns one value per item:
 * an array of the batch's length. JB_PER_ITEM_UNAVAILABLE otherwise, naming why (for a batch: before its first item).
 */
export async function* perItem(record: JobRecord, results: AsyncIterable<BatchResult>): AsyncGenerator<ItemResult> {
  const size = record.batch_size;
  if (typeof size !== 'number') {
    throw new JetbatchError(
      ErrorCodes.PER_ITEM_UNAVAILABLE,
      `job ${record.job_id} was submitted as ready-made batches (or by a publisher that does not record batch_size): item indices cannot be told from batch ids; read its results per batch`,
    );
  }
  const last = record.total_batch_count - 1;
  for await (const r of results) {
    const n = /^\d+$/.test(r.batch_id) ? Number(r.batch_id) : NaN;
    if (!Number.isSafeInteger(n)) throw new JetbatchError(ErrorCodes.PER_ITEM_UNAVAILABLE, `batch "${r.batch_id}" of job ${record.job_id} has no numeric batch id: its items have no index`);
    const values = r.result;
    if (!Array.isArray(values) || values.length > size || (n < last && values.length !== size)) {
      const got = Array.isArray(values) ? `an array of ${values.length}` : values === null ? 'null' : typeof values;
      throw new JetbatchError(
        ErrorCodes.PER_ITEM_UNAVAILABLE,
        `batch ${r.batch_id} of job ${record.job_id} returned ${got}, not one value per item (${n < last ? `an array of ${size}` : `an array of at most ${size}`}): use results without --per-item`,
      );
    }
    for (let i = 0; i < values.length; i++) yield { item_index: n * size + i, batch_id: r.batch_id, result: values[i] };
  }
}
