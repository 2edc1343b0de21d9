/**
 * A task's batches sent to the Python process in one `batches` request (python-runtime.ts, handleBatches): their
 * bytes back to back in one tail, and one owner per batch that routes what the batch sends (logs, metrics, lease
 * extensions, calls) to its context, made only when the batch sends something.
 */
import type { Logger } from 'pino';
import type { HandlerContext } from '../../handler.js';
import type { AheadBatch } from '../runtime.js';
import type { Frame } from './frames.js';
import type { FrameOwner, Route } from './request-sink.js';

/** The owner of one batch of a `batches` request: it is running whenever the process sends a frame for it. */
export class TaskBatchOwner implements FrameOwner {
  readonly #make: () => HandlerContext;
  #ctx: HandlerContext | undefined;

  constructor(make: () => HandlerContext) {
    this.#make = make;
  }

  get log(): Logger {
    return this.#context().log;
  }

  deliver(frame: Frame, route: Route): void {
    route(frame, this.#context());
  }

  #context(): HandlerContext {
    this.#ctx ??= this.#make();
    return this.#ctx;
  }
}

/**
 * The batches' bytes as one tail and where each ends in it. Batches of a task are views into its one buffer, back to
 * back: the tail is then a view too; otherwise they are copied together.
 */
export function backToBack(batches: readonly AheadBatch[]): { tail: Uint8Array; ends: number[] } {
  const ends: number[] = [];
  let total = 0;
  let contiguous = true;
  const first = batches[0]?.payload;
  for (const b of batches) {
    const p = b.payload;
    if (first === undefined || p.buffer !== first.buffer || p.byteOffset !== first.byteOffset + total) contiguous = false;
    total += p.byteLength;
    ends.push(total);
  }
  if (first === undefined) return { tail: new Uint8Array(0), ends };
  if (contiguous) return { tail: new Uint8Array(first.buffer, first.byteOffset, total), ends };
  const tail = new Uint8Array(total);
  let at = 0;
  for (const b of batches) {
    tail.set(b.payload, at);
    at += b.payload.byteLength;
  }
  return { tail, ends };
}
