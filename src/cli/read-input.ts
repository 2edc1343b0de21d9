/**
 * Reads the items or batches of `submit` as a stream, with memory bounded by one line: JSON Lines (one value per
 * line), gzip-compressed when the file name ends in `.gz` or it starts with the gzip magic bytes (util/gzip.ts, the
 * rule of stored delimited files too), `-` for stdin. A file that is one JSON document (an array of values,
 * pretty-printed or not) is read whole instead, up to MAX_DOCUMENT_BYTES.
 *
 * A malformed line (not JSON, a value the job cannot take, or longer than `maxLineChars`) fails the read with its
 * line number when `strict`; otherwise it is skipped, counted and kept as a sample for the report, and the read
 * fails only once more than `maxBadLines` were skipped.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Transform, type Readable } from 'node:stream';
import { ErrorCodes, JetbatchError } from '../errors.js';
import { checkShape } from '../fleet/items.js';
import { decompressed } from '../util/gzip.js';
import { lineRuns, lineValue, tooLongMessage, type Line } from '../util/lines.js';

/** Largest file read as one JSON document, and the longest line by default; JSON Lines files have no size limit. */
export const MAX_DOCUMENT_BYTES = 256 * 1024 * 1024;
/** Malformed lines kept for the report. */
const SAMPLES = 10;

export interface ReadOptions {
  /** Each value must be a non-empty array (a batch), not an item. */
  batches: boolean;
  strict: boolean;
  /** Skipped lines tolerated; null for no limit. */
  maxBadLines: number | null;
  /**
   * Longest line read, in characters; a longer one is a malformed line (its text is never held whole).
   * @defaultValue MAX_DOCUMENT_BYTES, so a one-line JSON array is read up to the size of a one-document file
   */
  maxLineChars?: number;
}

export interface BadLine {
  line: number;
  message: string;
}

/** What a read has seen so far (for the progress bar and the report). */
export class ReadStats {
  /** Bytes read from the file (compressed bytes for `.gz`). */
  bytes = 0;
  /** The file's size, or null for stdin. */
  totalBytes: number | null = null;
  values = 0;
  badLines = 0;
  readonly samples: BadLine[] = [];
}

export interface InputReader {
  /** The values, in runs of those read together (one per read chunk: few awaits per value, at any file size). */
  values: AsyncIterable<unknown[]>;
  stats: ReadStats;
}

function sourceName(file: string): string {
  return file === '-' ? 'stdin' : file;
}

/** Opens the input; fails at once (JB_INVALID_SUBMISSION) if the file cannot be read. */
export async function openInput(file: string, options: ReadOptions): Promise<InputReader> {
  const stats = new ReadStats();
  let raw: Readable;
  if (file === '-') raw = process.stdin;
  else {
    try {
      const st = await stat(file);
      if (!st.isFile()) throw new Error('not a file');
      stats.totalBytes = st.size;
    } catch (err) {
      throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `cannot read ${file}: ${(err as Error).message}`);
    }
    // Small reads: a run of values is short-lived, so little survives into the old generation and RSS stays low.
    raw = createReadStream(file, { highWaterMark: 1 << 16 });
  }
  // Counted by a transform, not a 'data' listener: a listener would switch the file to flowing mode, and it would
  // be read as fast as the disk allows, whatever the publishing pace (memory no longer bounded).
  const counted = raw.pipe(new Transform({ transform(chunk: Buffer, _encoding, done) { stats.bytes += chunk.length; done(null, chunk); } }));
  return { values: readValues(await decompressed(counted, file), sourceName(file), options, stats), stats };
}

/** Reads lines one at a time from the runs (awaiting only between runs), or the rest of the current run at once. */
class LineCursor {
  readonly #runs: AsyncIterator<Line[]>;
  #run: Line[] = [];
  #at = 0;

  constructor(runs: AsyncIterable<Line[]>) {
    this.#runs = runs[Symbol.asyncIterator]();
  }

  async next(): Promise<Line | undefined> {
    while (this.#at >= this.#run.length) {
      const r = await this.#runs.next();
      if (r.done === true) return undefined;
      this.#run = r.value;
      this.#at = 0;
    }
    return this.#run[this.#at++];
  }

  /** The next line that is not blank (a line too long to read counts as not blank). */
  async nextNonEmpty(): Promise<Line | undefined> {
    for (let l = await this.next(); l !== undefined; l = await this.next()) if (l[1] === null || l[1].trim().length > 0) return l;
    return undefined;
  }

  /** The lines not read yet: the rest of the current run, then each following run. */
  async *restRuns(): AsyncGenerator<Line[]> {
    if (this.#at < this.#run.length) yield this.#run.slice(this.#at);
    this.#run = [];
    for (let r = await this.#runs.next(); r.done !== true; r = await this.#runs.next()) yield r.value;
  }
}

async function* readValues(input: AsyncIterable<Buffer>, source: string, options: ReadOptions, stats: ReadStats): AsyncGenerator<unknown[]> {
  const maxLineChars = options.maxLineChars ?? MAX_DOCUMENT_BYTES;
  const cursor = new LineCursor(lineRuns(input, maxLineChars));
  const problem: Problem = (line, message) => {
    if (options.strict) throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `${source} line ${line}: ${message}`);
    stats.badLines++;
    if (stats.samples.length < SAMPLES) stats.samples.push({ line, message });
    if (options.maxBadLines !== null && stats.badLines > options.maxBadLines) {
      throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `${source}: more than ${options.maxBadLines} malformed lines (--max-bad-lines); the last, line ${line}: ${message}`);
    }
  };
  // The first non-empty line decides the format: JSON Lines, or one JSON document read whole.
  const first = await cursor.nextNonEmpty();
  if (first === undefined) throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `${source} is empty`);
  const firstText = first[1];
  if (firstText === null) {
    // Too long to be read: JSON Lines whose first line is malformed (a document that long is refused anyway).
    problem(first[0], tooLongMessage(maxLineChars));
    for await (const run of cursor.restRuns()) {
      const values = parseLines(run, maxLineChars, options, stats, problem);
      if (values.length > 0) yield values;
    }
    return;
  }
  let firstValue: { value: unknown } | undefined;
  try {
    firstValue = { value: JSON.parse(firstText) };
  } catch {
    // not a value on its own line: one document over several lines, or a malformed first line
  }
  if (firstValue === undefined) {
    yield* document([first[0], firstText], cursor, source, maxLineChars, options, stats, problem);
    return;
  }
  const second = await cursor.nextNonEmpty();
  if (second === undefined) {
    // A single line: a JSON array there is the list of values, anything else is one value.
    yield accepted(Array.isArray(firstValue.value) ? firstValue.value : [firstValue.value], first[0], options, stats, problem);
    return;
  }
  yield accepted([firstValue.value], first[0], options, stats, problem);
  yield parseLines([second], maxLineChars, options, stats, problem);
  for await (const run of cursor.restRuns()) {
    const values = parseLines(run, maxLineChars, options, stats, problem);
    if (values.length > 0) yield values;
  }
}

/** JSON Lines: one value per non-empty line; malformed ones reported. */
function parseLines(run: readonly Line[], maxLineChars: number, options: ReadOptions, stats: ReadStats, problem: Problem): unknown[] {
  const out: unknown[] = [];
  for (const [n, text] of run) {
    const line = lineValue(text, maxLineChars);
    if (line === null) continue;
    if ('problem' in line) problem(n, line.problem);
    else accept(out, line.value, false, 0, n, options, stats, problem);
  }
  return out;
}

/** Reports a malformed line (its number; for a value of a one-document file, the document's first line). */
type Problem = (line: number, message: string) => void;

/**
 * The values that pass the item (or batch) checks, counted; the others are reported as problems of `line`, naming
 * their index when the line held several (a one-line JSON array, or a whole document).
 */
function accepted(values: unknown[], line: number, options: ReadOptions, stats: ReadStats, problem: Problem): unknown[] {
  const out: unknown[] = [];
  for (let i = 0; i < values.length; i++) accept(out, values[i], values.length > 1, i, line, options, stats, problem);
  return out;
}

function accept(out: unknown[], value: unknown, indexed: boolean, i: number, line: number, options: ReadOptions, stats: ReadStats, problem: Problem): void {
  const kind = options.batches ? 'batch' : 'item';
  // A constant for a line of JSON Lines (no string built per value of a file of any size).
  const what = indexed ? `${kind} ${i}` : kind;
  const message = options.batches && (!Array.isArray(value) || value.length === 0)
    ? `${what}: must be a non-empty array of items`
    : checkShape(value, what, true);
  if (message !== null) problem(line, message);
  else {
    stats.values++;
    out.push(value);
  }
}

/**
 * The input did not start with a value on one line: read it whole as one JSON document (an array of values), or,
 * if it is not one, as JSON Lines whose first line is malformed.
 */
async function* document(first: [number, string], cursor: LineCursor, source: string, maxLineChars: number, options: ReadOptions, stats: ReadStats, problem: Problem): AsyncGenerator<unknown[]> {
  const numbered: Line[] = [first];
  let size = first[1].length;
  for (let l = await cursor.next(); l !== undefined; l = await cursor.next()) {
    // A line too long to read: no document holding it is read whole either.
    size += l[1] === null ? Infinity : l[1].length + 1;
    if (size > MAX_DOCUMENT_BYTES) {
      throw new JetbatchError(
        ErrorCodes.INVALID_SUBMISSION,
        `${source} line ${first[0]} is not a JSON value on its own, and a JSON document larger than ${MAX_DOCUMENT_BYTES / 1024 / 1024} MiB is not read whole: write JSON Lines (one value per line; e.g. jq -c '.[]' FILE)`,
      );
    }
    numbered.push(l);
  }
  let whole: unknown;
  try {
    whole = JSON.parse(numbered.map((l) => l[1]).join('\n'));
  } catch {
    // JSON Lines after all, starting with a malformed line
    yield parseLines(numbered, maxLineChars, options, stats, problem);
    return;
  }
  if (!Array.isArray(whole)) {
    throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `${source} line ${first[0]}: expected a JSON array or JSON Lines, found a multi-line JSON ${whole === null ? 'null' : typeof whole}`);
  }
  yield accepted(whole, first[0], options, stats, problem);
}
