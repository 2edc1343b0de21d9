/** Callers waiting for the next occurrence of one event: each wait ends at the next wake(), or when its signal aborts. */
export class Waiters {
  #waiting: Array<() => void> = [];

  wait(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted === true) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        signal?.removeEventListener('abort', done);
        resolve();
      };
      this.#waiting.push(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  /** Ends every wait in progress. */
  wake(): void {
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const done of waiting) done();
  }
}
