/**
 * The batches of running tasks that the Python runtime writes to its process ahead of their turn (python-runtime.ts):
 * the plan (announced by the task loop, not written yet, in order) and the batches written, with their replies and
 * the sinks holding what each sends before the thread reaches it. At most AHEAD_BATCHES batches and AHEAD_BYTES (or
 * one batch, whatever its size) are written ahead at once.
 */
import type { Logger } from 'pino';
import type { HandlerContext } from '../../handler.js';
import type { AheadBatch } from '../runtime.js';
import type { PythonChild } from './child.js';
import type { Frame } from './frames.js';
import { RequestSink, type FrameOwner } from './request-sink.js';

const AHEAD_BATCHES = 16;
const AHEAD_BYTES = 4 * 1024 * 1024;

type Planned = AheadBatch & { jobId: string };

interface Written {
  entry: Planned;
  child: PythonChild<FrameOwner>;
  reply: Promise<Frame>;
  sink: RequestSink;
}

const keyOf = (jobId: string, batchId: string, attempt: number): string => `${jobId}\u0000${batchId}\u0000${attempt}`;

export class WrittenAhead {
  readonly #log: Logger;
  #plan: Planned[] = [];
  readonly #written = new Map<string, Written>();
  #bytes = 0;

  /** `log` gets what a batch written ahead logs when the thread never reaches it. */
  constructor(log: Logger) {
    this.#log = log;
  }

  /** Adds a task's batches to the plan; the returned function forgets those not reached (the task is over). */
  plan(jobId: string, batches: readonly AheadBatch[]): () => void {
    const entries = batches.map((b) => ({ ...b, jobId }));
    this.#plan.push(...entries);
    return () => {
      const mine = new Set(entries);
      this.#plan = this.#plan.filter((e) => !mine.has(e));
      for (const e of entries) this.#forget(keyOf(jobId, e.batchId, e.attempt));
    };
  }

  /**
   * The batch's turn came: it leaves the plan, and if it was written to `child`, its reply (its sink now delivering
   * to `ctx`); undefined when it must be written now.
   */
  take(child: PythonChild<FrameOwner>, jobId: string, batchId: string, ctx: HandlerContext): Promise<Frame> | undefined {
    const attempt = ctx.attempt;
    const planned = this.#plan.findIndex((e) => e.batchId === batchId && e.jobId === jobId && e.attempt === attempt);
    if (planned >= 0) this.#plan.splice(planned, 1);
    if (this.#written.size === 0) return undefined;
    const key = keyOf(jobId, batchId, attempt);
    const found = this.#written.get(key);
    if (found === undefined) return undefined;
    this.#remove(key, found);
    if (found.child !== child) {
      found.sink.release(this.#log);
      return undefined;
    }
    found.sink.attach(ctx);
    return found.reply;
  }

  /** Writes the plan's next batches to `child`, while their jobs' handlers are constructed there and room is left. */
  write(child: PythonChild<FrameOwner>, constructed: ReadonlySet<string>): void {
    while (this.#plan.length > 0 && this.#written.size < AHEAD_BATCHES && child.alive) {
      const next = this.#plan[0]!;
      if (!constructed.has(next.jobId)) return;
      if (this.#written.size > 0 && this.#bytes + next.payload.byteLength > AHEAD_BYTES) return;
      this.#plan.shift();
      const sink = new RequestSink(undefined);
      const reply = child.request(['batch', next.jobId, next.batchId, next.attempt], next.payload, sink);
      reply.catch(() => undefined); // a process gone before the thread reached the batch: written again then
      this.#written.set(keyOf(next.jobId, next.batchId, next.attempt), { entry: next, child, reply, sink });
      this.#bytes += next.payload.byteLength;
    }
  }

  /**
   * The batches written (of one job, or all) will not be answered usefully (their process is gone, or their handler
   * was missing there): they go back to the front of the plan, in order, to be written again.
   */
  requeue(jobId?: string): void {
    const back: Planned[] = [];
    for (const [key, found] of [...this.#written]) {
      if (jobId !== undefined && found.entry.jobId !== jobId) continue;
      this.#forget(key);
      back.push(found.entry);
    }
    this.#plan.unshift(...back);
  }

  /** Forgets everything (the runtime is closing). */
  clear(): void {
    for (const key of [...this.#written.keys()]) this.#forget(key);
    this.#plan = [];
  }

  #forget(key: string): void {
    const found = this.#written.get(key);
    if (found === undefined) return;
    this.#remove(key, found);
    found.sink.release(this.#log);
  }

  #remove(key: string, found: Written): void {
    this.#written.delete(key);
    this.#bytes -= found.entry.payload.byteLength;
  }
}
