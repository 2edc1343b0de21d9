/**
 * A batch's abort (timeout, stop, shutdown) whose AbortSignal is only made if something reads it: most handlers never
 * look at ctx.signal, and an AbortController per batch was ~5 % of a worker thread's time on 100-record batches.
 * Aborting before the signal exists is remembered; the signal, made later, is born aborted with the same reason.
 */
export class BatchAbort {
  #controller: AbortController | undefined;
  #aborted = false;
  #reason: unknown;

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

  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
  }
}
