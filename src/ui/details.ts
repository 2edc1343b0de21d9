/**
 * The heavier parts of a job page, read on demand with a bound: the first dead letters and results (payload and
 * value previews cut to PREVIEW_CHARS), and the timing of up to CHART_MAX results for the charts. Results and dead
 * letters are stream messages; the bounded read fetches them with an ordered consumer and stops.
 */
import { outputResults } from '../client/results.js';
import { DeliverPolicy } from '@nats-io/jetstream';
import type { FleetContext } from '../fleet/context.js';
import { Streams, Subjects, decodeValue } from '../fleet/protocol.js';
import type { BatchResult, DeadLetter, ErrorInfo, JobRecord } from '../types.js';

export const PREVIEW_CHARS = 400;
export const DEAD_LETTERS_SHOWN = 50;
export const RESULTS_SHOWN = 20;
export const CHART_MAX = 5000;

export interface DeadLetterView {
  batch_id: string;
  attempts: number;
  generation: number;
  failed_at: string;
  host: string;
  error: ErrorInfo;
  /** The batch's items as JSON, cut to PREVIEW_CHARS. */
  payload: string;
}

export interface ResultView {
  batch_id: string;
  attempt: number;
  duration_ms: number;
  /** The result as JSON, cut to PREVIEW_CHARS. */
  result: string;
}

export interface ChartData {
  /** handleBatch durations of succeeded batches with a result, ms. */
  durations: number[];
  /** When each was stored, ms since epoch (same order). */
  times: number[];
  /** More results exist than were read. */
  truncated: boolean;
}

interface Raw {
  data: Uint8Array;
  time: number;
}

/** Up to `max` messages of `subject`, oldest first. */
async function readSome(ctx: FleetContext, stream: string, subject: string, max: number): Promise<{ messages: Raw[]; pending: number }> {
  const consumer = await ctx.js.consumers.get(stream, { filter_subjects: subject, deliver_policy: DeliverPolicy.All });
  const pending = (await consumer.info()).num_pending;
  const want = Math.min(pending, max);
  const messages: Raw[] = [];
  while (messages.length < want) {
    const batch = await consumer.fetch({ max_messages: want - messages.length, expires: 2000 });
    let got = 0;
    for await (const m of batch) {
      messages.push({ data: m.data, time: Math.round(m.info.timestampNanos / 1e6) });
      got++;
      if (messages.length >= want) break;
    }
    if (got === 0) break; // Removed meanwhile (replayed, aged out): what is there is what we show.
  }
  return { messages, pending };
}

/** JSON of anything decoded from MessagePack (bytes as `<N bytes>`), cut to `max` characters. */
export function preview(value: unknown, max = PREVIEW_CHARS): string {
  let text: string;
  try {
    text = JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? `<${v.length} bytes>` : typeof v === 'bigint' ? v.toString() : v)) ?? 'undefined';
  } catch (err) {
    text = `(cannot show: ${(err as Error).message})`;
  }
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

function decodedPreview(bytes: Uint8Array): string {
  try {
    return preview(decodeValue(bytes));
  } catch {
    return `<${bytes.length} bytes, not MessagePack>`;
  }
}

export async function deadLetterViews(ctx: FleetContext, record: JobRecord): Promise<{ letters: DeadLetterView[]; total: number }> {
  const { messages, pending } = await readSome(ctx, Streams.deadLetters, Subjects.deadLetter(record.api_name, record.job_id), DEAD_LETTERS_SHOWN);
  const letters: DeadLetterView[] = [];
  for (const m of messages) {
    let d: Partial<DeadLetter>;
    try {
      d = decodeValue(m.data) as Partial<DeadLetter>;
    } catch {
      continue;
    }
    const e = d.error;
    letters.push({
      batch_id: String(d.batch_id ?? '?'),
      attempts: Number(d.attempts ?? 0),
      generation: Number(d.generation ?? 0),
      failed_at: String(d.failed_at ?? ''),
      host: String(d.host ?? ''),
      error: { name: String(e?.name ?? 'Error'), message: String(e?.message ?? ''), ...(e?.code !== undefined ? { code: String(e.code) } : {}), ...(e?.stack !== undefined ? { stack: String(e.stack) } : {}) },
      payload: d.payload instanceof Uint8Array ? decodedPreview(d.payload) : '',
    });
  }
  return { letters, total: pending };
}

export async function resultViews(ctx: FleetContext, record: JobRecord): Promise<{ results: ResultView[]; total: number }> {
  if (record.output != null) return outputResultViews(ctx, record);
  const { messages, pending } = await readSome(ctx, Streams.results, Subjects.result(record.api_name, record.job_id), RESULTS_SHOWN);
  const results: ResultView[] = [];
  for (const m of messages) {
    try {
      const r = decodeValue(m.data) as Partial<BatchResult>;
      results.push({ batch_id: String(r.batch_id ?? '?'), attempt: Number(r.attempt ?? 0), duration_ms: Number(r.duration_ms ?? 0), result: preview(r.result) });
    } catch {
      results.push({ batch_id: '?', attempt: 0, duration_ms: 0, result: `<${m.data.length} bytes, not MessagePack>` });
    }
  }
  return { results, total: pending };
}

/**
 * The first parts of a job with an `output` (its results are not in the stream). The total is the job's
 * `results_stored` once it completed; before, what was read (plus one when more parts follow).
 */
async function outputResultViews(ctx: FleetContext, record: JobRecord): Promise<{ results: ResultView[]; total: number }> {
  const results: ResultView[] = [];
  let more = false;
  try {
    for await (const r of outputResults(ctx, record)) {
      if (results.length === RESULTS_SHOWN) {
        more = true;
        break;
      }
      results.push({ batch_id: String(r.batch_id ?? '?'), attempt: Number(r.attempt ?? 0), duration_ms: Number(r.duration_ms ?? 0), result: preview(r.result) });
    }
  } catch (err) {
    results.push({ batch_id: '?', attempt: 0, duration_ms: 0, result: `<reading ${record.output} failed: ${(err as Error).message}>` });
  }
  return { results, total: record.results_stored ?? results.length + (more ? 1 : 0) };
}

export async function chartData(ctx: FleetContext, record: JobRecord): Promise<ChartData> {
  const { messages, pending } = await readSome(ctx, Streams.results, Subjects.result(record.api_name, record.job_id), CHART_MAX);
  const durations: number[] = [];
  const times: number[] = [];
  for (const m of messages) {
    try {
      const r = decodeValue(m.data) as Partial<BatchResult>;
      if (typeof r.duration_ms !== 'number' || !Number.isFinite(r.duration_ms)) continue;
      durations.push(r.duration_ms);
      times.push(m.time);
    } catch {
      // Not a result jetbatch wrote: left out of the chart.
    }
  }
  return { durations, times, truncated: pending > messages.length };
}
