/**
 * A batch's abort (timeout, stop, shutdown) whose AbortSignal is only made if something reads it: most handlers never
 * look at ctx.signal, and an AbortController per batch was ~5 % of a worker thread's time on 100-record batches.
 * Aborting before the signal exists is remembered; the signal, made later, is born aborted with the same reason.
 */
export class BatchAbort {
  #controller: AbortController | undefined;
  #aborted = false;
  #reason: unknown;
  #listeners: Array<(reason: unknown) => void> = [];

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  get reason(): unknown {
    return this.#reason;
  }

  /** Calls `fn` on abort (at once if already aborted) without making the signal; returns what removes it. */
  listen(fn: (reason: unknown) => void): () => void {
    if (this.#aborted) {
      fn(this.#reason);
      return () => {};
    }
    this.#listeners.push(fn);
    return () => {
      this.#listeners = this.#listeners.filter((l) => l !== fn);
    };
  }

  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
    for (const fn of this.#listeners.splice(0)) fn(reason);
  }
}
