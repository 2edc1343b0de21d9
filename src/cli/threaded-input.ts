/**
 * A submission's input read on a thread of its own (cli/input-thread.ts): the batches arrive encoded, so parsing
 * the input and publishing it run side by side on two cores. The main thread sees the same ReadStats as an
 * in-process read (cli/read-input.ts), updated as each group of batches arrives.
 */
import { Worker } from 'node:worker_threads';
import { ErrorCodes, JetbatchError, isErrorCode } from '../errors.js';
import { EncodedBatch } from '../fleet/stream-submit.js';
import { threadEntry } from '../worker/thread-entry.js';
import { ReadStats, type BadLine, type ReadOptions } from './read-input.js';

export interface InputThreadData {
  file: string;
  options: ReadOptions;
  /** Items per batch; null when each value of the input is a batch (--batches). */
  batchSize: number | null;
}

export type FromInputThread =
  | { kind: 'batches'; bytes: Uint8Array[]; lengths: number[]; stats: StatsSnapshot }
  | { kind: 'end'; stats: StatsSnapshot }
  | { kind: 'error'; error: { code: string | null; message: string } };

export interface StatsSnapshot {
  bytes: number;
  totalBytes: number | null;
  values: number;
  badLines: number;
  samples: BadLine[];
}

export interface ThreadedInput {
  /** The batches, encoded; iterate once. Stopping early ends the thread. */
  batches: AsyncIterable<EncodedBatch>;
  stats: ReadStats;
  /** Ends the thread if it still runs (the batches not taken, or not all). Idempotent. */
  close(): void;
}

/**
 * Starts reading `file` ('-' for stdin) on its own thread and waits until its first batches (or its end, or its
 * first error) arrive, so an empty or unreadable input fails before anything else is done. Fails with the reader's
 * own errors (JB_INVALID_SUBMISSION with the line number, ...).
 */
export async function openThreadedInput(file: string, options: ReadOptions, batchSize: number | null): Promise<ThreadedInput> {
  const entry = threadEntry('input-thread', import.meta.url);
  const data: InputThreadData = { file, options, batchSize };
  // From source (a clone without dist/), a bare thread does not get tsx's loader from --import: its first module
  // loads the TypeScript entry through tsx's API, as worker/load-handler.ts loads a handler.
  const fromSource = entry.url.pathname.endsWith('.ts');
  const main = fromSource ? `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) => tsx.tsImport(${JSON.stringify(entry.url.href)}, ${JSON.stringify(entry.url.href)}))` : entry.url;
  // A smaller young generation than V8's default: the parse garbage is short-lived, and the submitter of a 2 GB file
  // peaked at 205 MB RSS without it, 159 MB with it, at the same rate.
  const worker = new Worker(main, { eval: fromSource, workerData: data, execArgv: entry.execArgv, stdin: file === '-', resourceLimits: { maxYoungGenerationSizeMb: 16 } });
  if (file === '-') process.stdin.pipe(worker.stdin!);
  const stats = new ReadStats();
  const queue = new MessageQueue(worker);
  const stop = (): void => {
    if (file === '-') process.stdin.unpipe(worker.stdin!);
    void worker.terminate();
  };
  let first: FromInputThread;
  try {
    first = await queue.next();
    apply(stats, first);
  } catch (err) {
    stop();
    throw err;
  }
  async function* batches(): AsyncGenerator<EncodedBatch> {
    try {
      for (let m = first; ; m = await queue.next()) {
        if (m !== first) apply(stats, m);
        if (m.kind === 'end') return;
        if (m.kind === 'batches') {
          worker.postMessage('more');
          for (let i = 0; i < m.bytes.length; i++) yield new EncodedBatch(m.bytes[i]!, m.lengths[i]!);
        }
      }
    } finally {
      stop();
    }
  }
  if (first.kind === 'end') stop();
  return { batches: batches(), stats, close: stop };
}

function apply(stats: ReadStats, m: FromInputThread): void {
  if (m.kind === 'error') throw new JetbatchError(m.error.code !== null && isErrorCode(m.error.code) ? m.error.code : ErrorCodes.INTERNAL, m.error.message);
  const s = m.stats;
  stats.bytes = s.bytes;
  stats.totalBytes = s.totalBytes;
  stats.values = s.values;
  stats.badLines = s.badLines;
  stats.samples.splice(0, stats.samples.length, ...s.samples);
}

/** The thread's messages in order; its crash (or exit before its end) as an error. */
class MessageQueue {
  readonly #messages: FromInputThread[] = [];
  #failure: Error | null = null;
  #waiting: { resolve: (m: FromInputThread) => void; reject: (e: Error) => void } | null = null;

  constructor(worker: Worker) {
    worker.on('message', (m: FromInputThread) => {
      if (this.#waiting !== null) {
        this.#waiting.resolve(m);
        this.#waiting = null;
      } else this.#messages.push(m);
    });
    const fail = (err: Error): void => {
      this.#failure ??= err;
      this.#waiting?.reject(this.#failure);
      this.#waiting = null;
    };
    worker.on('error', (err) => fail(new JetbatchError(ErrorCodes.INTERNAL, `the input reader failed: ${err.message}`, { cause: err })));
    worker.on('exit', (code) => fail(new JetbatchError(ErrorCodes.INTERNAL, `the input reader stopped (exit code ${code}) before the end of the input`)));
  }

  next(): Promise<FromInputThread> {
    const m = this.#messages.shift();
    if (m !== undefined) return Promise.resolve(m);
    if (this.#failure !== null) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => (this.#waiting = { resolve, reject }));
  }
}
