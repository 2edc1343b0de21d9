/**
 * Local capacity of one API pool, shared fairly by the jobs running on it: a job reserves slots before it pulls
 * from JetStream (so we never pull more than we can run), and waiters are served first-come first-served.
 */
export class Slots {
  readonly capacity: number;
  #used = 0;
  #waiters: Array<() => void> = [];

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  get used(): number {
    return this.#used;
  }

  get free(): number {
    return this.capacity - this.#used;
  }

  /** Waits for at least one free slot, then takes up to `max`. Resolves 0 if `signal` aborts first. */
  async reserve(max: number, signal: AbortSignal): Promise<number> {
    while (this.free <= 0 || this.#waiters.length > 0) {
      if (signal.aborted) return 0;
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          signal.removeEventListener('abort', wake);
          const i = this.#waiters.indexOf(wake);
          if (i >= 0) this.#waiters.splice(i, 1);
          resolve();
        };
        this.#waiters.push(wake);
        signal.addEventListener('abort', wake, { once: true });
      });
      if (this.free > 0) break;
    }
    if (signal.aborted) return 0;
    const n = Math.max(0, Math.min(max, this.free));
    this.#used += n;
    return n;
  }

  release(n: number): void {
    if (n <= 0) return;
    this.#used -= n;
    if (this.#used < 0) throw new Error('Slots.release: more released than reserved');
    this.#waiters[0]?.();
  }
}
