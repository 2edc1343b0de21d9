/**
 * Where the frames a request to the Python process causes go (log records, lease extensions, metrics, client
 * calls): the context of the batch (or init, or completion) it belongs to. A batch written ahead has no context until
 * the task loop reaches it; what it sends before is held, in order, and delivered on `attach`. A request the thread
 * gave up (its process replaced, its task over) is `release`d: held and later log records go to the thread's logger,
 * the rest is dropped.
 */
import type { Logger } from 'pino';
import type { HandlerContext } from '../../handler.js';
import type { Frame } from './frames.js';

/** Frames held for one batch before its context exists; beyond, further ones are dropped (counted in a warning). */
const MAX_HELD = 10_000;

export type Route = (frame: Frame, ctx: HandlerContext | undefined) => void;

/** What owns a request to the process: where the frames it causes, and the process's output meanwhile, go. */
export interface FrameOwner {
  readonly log: Logger | undefined;
  deliver(frame: Frame, route: Route): void;
}

export class RequestSink implements FrameOwner {
  #ctx: HandlerContext | undefined;
  #held: Array<{ frame: Frame; route: Route }> = [];
  #dropped = 0;
  #released = false;
  #fallback: Logger | undefined;

  constructor(ctx: HandlerContext | undefined) {
    this.#ctx = ctx;
  }

  /** The logger for the process's own output (stdout, stderr) while this request runs, when known. */
  get log(): Logger | undefined {
    return this.#ctx?.log ?? this.#fallback;
  }

  deliver(frame: Frame, route: Route): void {
    if (this.#ctx !== undefined || this.#released) {
      route(frame, this.#ctx);
      return;
    }
    if (this.#held.length < MAX_HELD) this.#held.push({ frame, route });
    else this.#dropped++;
  }

  /** The task loop reached the batch: everything held goes to `ctx`, and what follows too. */
  attach(ctx: HandlerContext): void {
    this.#ctx = ctx;
    this.#flush();
  }

  /** The thread no longer waits for this request: what it held or sends goes nowhere but the thread's log. */
  release(log: Logger): void {
    if (this.#released || this.#ctx !== undefined) return;
    this.#released = true;
    this.#fallback = log;
    this.#flush();
  }

  #flush(): void {
    for (const { frame, route } of this.#held.splice(0)) route(frame, this.#ctx);
    if (this.#dropped > 0) {
      this.log?.warn({ dropped: this.#dropped }, `a batch sent more than ${MAX_HELD} log records, metrics or calls before the thread reached it; the rest were dropped`);
      this.#dropped = 0;
    }
  }
}
