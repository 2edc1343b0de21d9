/**
 * The order in which a pool's tasks reach its threads. Piscina is given a task only when one of its places (a
 * thread, ApiPool) is free, so it never queues one: its own queue let a waiting task be passed, again and
 * again, by tasks submitted later that found a thread free first (a priority-10 job's batch waited 6.5 s there while a
 * backlog's 20 ms batches kept starting). Here a task waits for a place in order: higher priority first, then first
 * come, first served.
 */

interface Waiter {
  priority: number;
  admit(): void;
}

export class TaskGate {
  readonly #places: number;
  #inside = 0;
  /** Waiting tasks, best first. */
  readonly #waiting: Waiter[] = [];

  constructor(places: number) {
    this.#places = Math.max(1, places);
  }

  /** Whether a task would take a place at once (one is free and nobody waits). */
  get free(): boolean {
    return this.#inside < this.#places && this.#waiting.length === 0;
  }

  /** Tasks waiting for a place. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /**
   * Takes a place for a task of `priority`: at once when one is free and nobody waits, else when the tasks ahead have
   * had theirs. False when `signal` aborts first (no place is taken then). Each true must be followed by leave().
   */
  enter(priority: number, signal?: AbortSignal): boolean | Promise<boolean> {
    if (signal?.aborted === true) return false;
    if (this.#inside < this.#places && this.#waiting.length === 0) {
      this.#inside++;
      return true;
    }
    return new Promise((resolve) => {
      const waiter: Waiter = {
        priority,
        admit: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve(true);
        },
      };
      const onAbort = (): void => {
        const i = this.#waiting.indexOf(waiter);
        if (i >= 0) this.#waiting.splice(i, 1);
        resolve(false);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      // After the last waiter of a higher or equal priority: first come, first served among equals.
      let at = this.#waiting.length;
      while (at > 0 && this.#waiting[at - 1]!.priority < priority) at--;
      this.#waiting.splice(at, 0, waiter);
    });
  }

  /** Gives a place back; the best waiter takes it. */
  leave(): void {
    const next = this.#waiting.shift();
    if (next !== undefined) next.admit();
    else this.#inside = Math.max(0, this.#inside - 1);
  }
}
