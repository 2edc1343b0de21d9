/**
 * One Piscina task of a runner (a single batch, or several of a burst run back to back on one thread): its abort
 * signal, why it was aborted, and its deadline. The deadline covers every batch of the task; until handleBatch
 * starts it also covers loading and constructing the handler. ctx.signal aborts at the deadline, and the thread is
 * terminated after a short grace if the handler ignores it.
 */
import type { AbortReason } from '../pools/pool.js';

export class TaskRun {
  readonly size: number;
  readonly #ac = new AbortController();
  #reason: AbortReason = 'timeout';
  #timer: NodeJS.Timeout | undefined;
  readonly #batchTimeoutMs: number;
  readonly #graceMs: number;
  #started = false;

  /** `size` batches of `batchTimeoutS` seconds each, plus `initTimeoutMs` until the first lease event. */
  constructor(size: number, batchTimeoutS: number, initTimeoutMs: number) {
    this.size = size;
    this.#batchTimeoutMs = batchTimeoutS * 1000;
    this.#graceMs = Math.min(5000, Math.max(200, batchTimeoutS * 100));
    this.#arm(initTimeoutMs + this.#batchTimeoutMs * size);
  }

  get signal(): AbortSignal {
    return this.#ac.signal;
  }

  /** Why the task was aborted (meaningful once `signal` is aborted). */
  get reason(): AbortReason {
    return this.#reason;
  }

  /**
   * Restarts the deadline from now (handleBatch started, or ctx.extendLease()). Returns true the first time: the task
   * has started running a batch.
   */
  extend(): boolean {
    const first = !this.#started;
    this.#started = true;
    if (!this.#ac.signal.aborted) this.#arm(this.#batchTimeoutMs * this.size);
    return first;
  }

  /** Aborts the task for `reason` unless it is already aborted. */
  abort(reason: AbortReason): void {
    if (this.#ac.signal.aborted) return;
    this.#reason = reason;
    clearTimeout(this.#timer);
    this.#ac.abort();
  }

  /** The task ended: no deadline any more. Returns whether it had started running a batch. */
  finish(): boolean {
    clearTimeout(this.#timer);
    return this.#started;
  }

  #arm(ms: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.abort('timeout'), ms + this.#graceMs);
    this.#timer.unref();
  }
}
