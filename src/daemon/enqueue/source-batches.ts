/**
 * The batches of a job over stored data, read from its stores (fleet/source-spec.ts). The sequence is a pure
 * function of the stores' contents: the roots in the order given, each listed in byte order of its keys, so a daemon
 * resuming another's enqueue reads the same batches (and checks it against the checkpoint's digest).
 *
 * - `delimited_files`: each object is JSON Lines, gunzipped when its name ends in `.gz` or it starts with the gzip
 *   magic bytes. Batches cross file boundaries: every batch but the last holds `batch_size` items. A malformed line
 *   (not JSON, a value a batch cannot carry, or longer than MAX_LINE_CHARS) is skipped, counted and logged with its
 *   file and line number; past `max_bad_lines` the read fails (the job ends `enqueue_failed`).
 * - `file_path_lister`: each batch is `batch_size` object URLs.
 *
 * A listing that finds no object, or objects that hold no valid item, fails with JB_NO_INPUT.
 */
import type { Logger } from 'pino';
import { ErrorCodes, JetbatchError } from '../../errors.js';
import { checkShape } from '../../fleet/items.js';
import { storeFor, type OpenStore, type StoreDeps } from '../../stores/index.js';
import { parseStoreUrl } from '../../stores/url.js';
import type { SourceSpec } from '../../types.js';
import { decompressed } from '../../util/gzip.js';
import { MAX_LINE_CHARS, lineRuns, lineValue } from '../../util/lines.js';

/** Malformed lines logged one by one per read; the rest are only counted (and summed up in the end). */
const LOGGED_BAD_LINES = 20;

export interface SourceReadStats {
  objects: number;
  items: number;
  badLines: number;
}

export interface SourceReadOptions {
  /** What the stores need (the fleet's JetStream for obj://, the daemon config's s3 section). */
  storeDeps: StoreDeps;
  log: Logger;
  /** Stops the read between batches (the daemon shutting down). */
  signal: AbortSignal;
}

export function sourceBatches(source: SourceSpec, options: SourceReadOptions, stats: SourceReadStats): AsyncGenerator<unknown[]> {
  return source.kind === 'delimited_files' ? delimitedBatches(source, options, stats) : pathBatches(source, options, stats);
}

/** One store per scheme, opened on first use, closed when the read ends. */
class Stores {
  readonly #open = new Map<string, Promise<OpenStore>>();
  readonly #deps: StoreDeps;

  constructor(deps: StoreDeps) {
    this.#deps = deps;
  }

  for(url: string): Promise<OpenStore> {
    const scheme = parseStoreUrl(url).scheme;
    let store = this.#open.get(scheme);
    if (store === undefined) {
      store = storeFor(url, this.#deps);
      this.#open.set(scheme, store);
    }
    return store;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.#open.values()].map(async (s) => (await s).close()));
  }
}

/** Every listed object of the source, root by root. */
async function* listed(source: SourceSpec, stores: Stores, options: SourceReadOptions, stats: SourceReadStats): AsyncGenerator<{ url: string; store: OpenStore }> {
  for (const root of source.paths) {
    const store = await stores.for(root);
    for await (const obj of store.list(root, { includes: source.includes, excludes: source.excludes })) {
      if (options.signal.aborted) throw abortedError(options.signal);
      stats.objects++;
      yield { url: obj.url, store };
    }
  }
  if (stats.objects === 0) {
    const globs = [source.includes.length > 0 ? `includes ${JSON.stringify(source.includes)}` : '', source.excludes.length > 0 ? `excludes ${JSON.stringify(source.excludes)}` : ''].filter((g) => g !== '');
    throw new JetbatchError(ErrorCodes.NO_INPUT, `the listing of ${source.paths.join(', ')}${globs.length > 0 ? ` (${globs.join(', ')})` : ''} found no objects`);
  }
}

async function* pathBatches(source: SourceSpec, options: SourceReadOptions, stats: SourceReadStats): AsyncGenerator<unknown[]> {
  const stores = new Stores(options.storeDeps);
  try {
    let batch: string[] = [];
    for await (const { url } of listed(source, stores, options, stats)) {
      stats.items++;
      batch.push(url);
      if (batch.length >= source.batch_size) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length > 0) yield batch;
  } finally {
    await stores.close();
  }
}

async function* delimitedBatches(source: SourceSpec, options: SourceReadOptions, stats: SourceReadStats): AsyncGenerator<unknown[]> {
  const stores = new Stores(options.storeDeps);
  const bad = (url: string, line: number, message: string): void => {
    stats.badLines++;
    if (stats.badLines <= LOGGED_BAD_LINES) options.log.warn({ file: url, line, error: message }, 'malformed line skipped');
    if (source.max_bad_lines !== null && stats.badLines > source.max_bad_lines) {
      throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `more than ${source.max_bad_lines} malformed lines (max_bad_lines); the last: ${url} line ${line}: ${message}`);
    }
  };
  try {
    let batch: unknown[] = [];
    for await (const { url, store } of listed(source, stores, options, stats)) {
      const bytes = await store.open(url);
      try {
        for await (const run of lineRuns(await decompressed(bytes, url), MAX_LINE_CHARS)) {
          for (const [n, text] of run) {
            const line = lineValue(text, MAX_LINE_CHARS);
            if (line === null) continue;
            if ('problem' in line) {
              bad(url, n, line.problem);
              continue;
            }
            const value = line.value;
            const shape = checkShape(value, 'item', true);
            if (shape !== null) {
              bad(url, n, shape);
              continue;
            }
            stats.items++;
            batch.push(value);
            if (batch.length >= source.batch_size) {
              yield batch;
              batch = [];
              if (options.signal.aborted) throw abortedError(options.signal);
            }
          }
        }
      } catch (err) {
        throw gzipError(err, url);
      } finally {
        bytes.destroy();
      }
    }
    if (batch.length > 0) yield batch;
    if (stats.items === 0) {
      throw new JetbatchError(ErrorCodes.NO_INPUT, `the ${stats.objects} object${stats.objects === 1 ? '' : 's'} listed under ${source.paths.join(', ')} hold no valid items (${stats.badLines} malformed lines)`);
    }
  } finally {
    if (stats.badLines > LOGGED_BAD_LINES) options.log.warn({ bad_lines: stats.badLines, logged: LOGGED_BAD_LINES }, 'malformed lines skipped in all (only the first were logged)');
    await stores.close();
  }
}

/** zlib's errors (a truncated or corrupt .gz) are bad input, not a store failure to retry. */
function gzipError(err: unknown, url: string): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.startsWith('Z_')) {
    return new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `${url}: not a valid gzip file (${code}: ${(err as Error).message})`, { cause: err });
  }
  return err;
}

function abortedError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('aborted');
}
