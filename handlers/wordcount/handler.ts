/**
 * Data processing without a model: word counts, map-reduce style.
 * - map (handleBatch): counts the words of each document of the batch;
 * - reduce (onJobComplete, once per job across the fleet): reads every batch result back through ctx.client(),
 *   merges the counts, logs the top words and, with `output_dir`, writes `<output_dir>/<job_id>.json`.
 *
 * Item:   { id, text } (or a bare string, whose id is its position in the batch).
 * Result: { documents: [{ id, words }], counts: [[word, n], …] } — counts sorted by n descending, then word.
 *
 * Config (API config in the daemon YAML, overridable per job):
 * - `stopwords`: words not to count (compared lower-case). @defaultValue []
 * - `min_length`: shortest word counted, in characters. @defaultValue 1
 * - `top`: words kept in the reduced output. @defaultValue 20
 * - `output_dir`: where the reduce step writes its JSON; relative paths are relative to the project folder. In a
 *   fleet the hook runs on whichever daemon completes the job, so point this at shared storage. @defaultValue none
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { HandlerContext, JobSpec, JobSummary } from '../../src/handler.js';

/**
 * A failure no retry can fix: the batch is dead-lettered at once. jetbatch recognises it by `permanent: true`, not by
 * its class (errors cross threads as plain data), so this local twin of `PermanentError` from 'jetbatch/handler'
 * keeps the project free of runtime imports from jetbatch: it runs as is from any folder, e.g. after `jetbatch deploy`.
 */
class PermanentError extends Error {
  readonly permanent = true;
  readonly code: string;

  constructor(message: string, options: { cause?: unknown; code?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PermanentError';
    this.code = options.code ?? 'JB_HANDLER_PERMANENT';
  }
}

export interface Document {
  id: string | number;
  text: string;
}

export interface BatchCounts {
  documents: Array<{ id: string | number; words: number }>;
  counts: Array<[string, number]>;
}

export interface Report {
  job_id: string;
  documents: number;
  words: number;
  distinct_words: number;
  /** Batches whose counts are missing because they were dead-lettered. */
  failed_batches: number;
  top: Array<[string, number]>;
}

/** Letters and digits, with inner apostrophes kept ("don't", "l’homme"); case-folded and NFKC-normalized. */
const WORD = /[\p{L}\p{N}]+(?:['’][\p{L}\p{N}]+)*/gu;

export function words(text: string, stopwords: ReadonlySet<string> = new Set(), minLength = 1): string[] {
  const out: string[] = [];
  for (const m of text.normalize('NFKC').toLowerCase().matchAll(WORD)) {
    const w = m[0].replace(/’/g, "'");
    if ([...w].length >= minLength && !stopwords.has(w)) out.push(w);
  }
  return out;
}

/** Counts sorted by count descending, then word (so results are deterministic). */
export function sortedCounts(counts: Map<string, number>): Array<[string, number]> {
  return [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

function documentOf(item: unknown, index: number): Document {
  if (typeof item === 'string') return { id: index, text: item };
  const d = item as Partial<Document> | null;
  if (d !== null && typeof d === 'object' && typeof d.text === 'string' && (typeof d.id === 'string' || typeof d.id === 'number')) {
    return { id: d.id, text: d.text };
  }
  // Bad input never gets better on retry: dead-letter the batch at once.
  throw new PermanentError(`item ${index}: expected { id: string | number, text: string } or a string`, { code: 'WORDCOUNT_BAD_ITEM' });
}

export default class WordCountHandler {
  readonly #stopwords: Set<string>;
  readonly #minLength: number;
  readonly #top: number;
  readonly #outputDir: string | null;

  constructor(config: Record<string, unknown>, _jobSpec: JobSpec, ctx: HandlerContext) {
    const stop = Array.isArray(config.stopwords) ? config.stopwords : [];
    this.#stopwords = new Set(stop.filter((w): w is string => typeof w === 'string').map((w) => w.toLowerCase()));
    this.#minLength = typeof config.min_length === 'number' ? config.min_length : 1;
    this.#top = typeof config.top === 'number' ? config.top : 20;
    this.#outputDir = typeof config.output_dir === 'string' ? resolve(ctx.projectDir, config.output_dir) : null;
  }

  handleBatch(payload: unknown[], _batchId: string, ctx: HandlerContext): BatchCounts {
    const counts = new Map<string, number>();
    const documents = payload.map((item, i) => {
      const doc = documentOf(item, i);
      const ws = words(doc.text, this.#stopwords, this.#minLength);
      for (const w of ws) counts.set(w, (counts.get(w) ?? 0) + 1);
      return { id: doc.id, words: ws.length };
    });
    ctx.log.debug({ documents: documents.length, distinct_words: counts.size }, 'batch counted');
    return { documents, counts: sortedCounts(counts) };
  }

  async onJobComplete(summary: JobSummary, ctx: HandlerContext): Promise<void> {
    const client = await ctx.client();
    const total = new Map<string, number>();
    let documents = 0;
    for await (const r of client.results(summary.job_id)) {
      const batch = r.result as BatchCounts;
      documents += batch.documents.length;
      for (const [w, n] of batch.counts) total.set(w, (total.get(w) ?? 0) + n);
    }
    const top = sortedCounts(total).slice(0, this.#top);
    const report: Report = {
      job_id: summary.job_id,
      documents,
      words: [...total.values()].reduce((a, b) => a + b, 0),
      distinct_words: total.size,
      failed_batches: summary.batch_metrics.failed,
      top,
    };
    let file: string | undefined;
    if (this.#outputDir !== null) {
      mkdirSync(this.#outputDir, { recursive: true });
      file = join(this.#outputDir, `${summary.job_id}.json`);
      writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
    }
    ctx.log.info({ documents, words: report.words, distinct_words: report.distinct_words, top: top.slice(0, 10), file }, 'word count reduced');
  }
}
