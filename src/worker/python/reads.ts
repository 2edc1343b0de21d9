/**
 * Stored objects a Python handler reads with `jetbatch.open(url)`: the thread opens them with `ctx.open` (the three
 * store schemes) and serves their bytes in chunks as the process asks. A stream lives as long as the request that
 * opened it (a batch, the handler's construction, on_job_complete): the runtime closes what is still open when the
 * request ends, so a handler that forgets to close a file leaks nothing.
 */
import type { Readable } from 'node:stream';
import { ErrorCodes, JetbatchError } from '../../errors.js';
import type { HandlerContext } from '../../handler.js';

/** Largest chunk one read returns (the process asks for its buffer's size). */
const MAX_CHUNK = 4 * 1024 * 1024;
/** Streams open at once in one request. */
const MAX_OPEN = 64;

interface Reader {
  stream: Readable;
  chunks: AsyncIterator<Buffer>;
  /** The part of the last chunk not returned yet. */
  rest: Buffer | null;
}

export class OpenReads {
  #next = 0;
  readonly #open = new Map<number, Reader>();

  /** Opens `url` for the request `ctx`; returns its handle. */
  async open(ctx: HandlerContext, url: unknown): Promise<number> {
    if (typeof url !== 'string') throw new JetbatchError(ErrorCodes.INVALID_STORE_URL, `jetbatch.open() takes a URL string, got ${typeof url}`);
    if (this.#open.size >= MAX_OPEN) {
      throw new JetbatchError(ErrorCodes.STORE_FAILED, `more than ${MAX_OPEN} stored objects open at once in one call of the handler; close the ones read (a with block does)`);
    }
    const stream = await ctx.open(url);
    const id = ++this.#next;
    this.#open.set(id, { stream, chunks: (stream as AsyncIterable<Buffer>)[Symbol.asyncIterator](), rest: null });
    return id;
  }

  /** Up to `size` bytes of the stream `id`; empty once it has no more. */
  async read(id: unknown, size: unknown): Promise<Uint8Array> {
    const reader = typeof id === 'number' ? this.#open.get(id) : undefined;
    if (reader === undefined) throw new JetbatchError(ErrorCodes.STORE_FAILED, 'this stored object is closed (a stream lives until the handler call that opened it returns)');
    const max = typeof size === 'number' && Number.isInteger(size) && size > 0 ? Math.min(size, MAX_CHUNK) : MAX_CHUNK;
    let chunk = reader.rest;
    reader.rest = null;
    if (chunk === null) {
      const next = await reader.chunks.next();
      if (next.done === true) return new Uint8Array(0);
      chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value as Uint8Array);
    }
    if (chunk.byteLength > max) {
      reader.rest = chunk.subarray(max);
      return chunk.subarray(0, max);
    }
    return chunk;
  }

  close(id: unknown): void {
    const reader = typeof id === 'number' ? this.#open.get(id) : undefined;
    if (reader === undefined) return;
    this.#open.delete(id as number);
    reader.stream.destroy();
  }

  /** Closes every stream still open (the request that opened them ended, or the process is gone). */
  closeAll(): void {
    for (const id of [...this.#open.keys()]) this.close(id);
  }
}
