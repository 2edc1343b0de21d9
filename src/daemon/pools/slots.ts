/**
 * Local capacity of one API pool, shared fairly by the jobs running on it: a job reserves slots before it pulls
 * from JetStream (so we never pull more than we can run), and waiters are served first-come first-served.
 *
 * Capacity = running lanes (threads × concurrency) + a prefetch that adapts to how long batches take: enough
 * queued work to cover about PREFETCH_TARGET_MS, between one batch per lane and MAX_PREFETCH. Tiny batches get a
 * deep local queue (one pull and one task serve many); long batches get no more than one queued per lane, so a
 * daemon does not sit on batches other daemons could be running.
 */
const PREFETCH_TARGET_MS = 50;
const MAX_PREFETCH = 512;
/** Weight of the newest duration in the moving average. */
const EWMA_ALPHA = 0.1;

interface Waiter {
  max: number;
  signal: AbortSignal;
  resolve(n: number): void;
  onAbort(): void;
}

export class Slots {
  readonly lanes: number;
  #prefetch: number;
  #ewmaMs: number | undefined;
  #used = 0;
  /** Reservations waiting, first come first served; each is handed its slots by #serve, never left to race for them. */
  readonly #waiters: Waiter[] = [];

  constructor(lanes: number) {
    this.lanes = lanes;
    this.#prefetch = lanes;
  }

  get capacity(): number {
    return this.lanes + this.#prefetch;
  }

  get used(): number {
    return this.#used;
  }

  get free(): number {
    return this.capacity - this.#used;
  }

  /** Feeds the duration of a finished batch attempt into the prefetch sizing. */
  observe(durationMs: number): void {
    if (!Number.isFinite(durationMs) || durationMs < 0) return;
    this.#ewmaMs = this.#ewmaMs === undefined ? durationMs : this.#ewmaMs + EWMA_ALPHA * (durationMs - this.#ewmaMs);
    const wanted = Math.round((PREFETCH_TARGET_MS * this.lanes) / Math.max(this.#ewmaMs, 0.01));
    this.#prefetch = Math.max(this.lanes, Math.min(MAX_PREFETCH, wanted));
    this.#serve();
  }

  /**
   * Waits until at least min(`max`, half the capacity) slots are free and no earlier reservation waits, then takes up
   * to `max`; resolves 0 if `signal` aborts first. Refilling in halves (not slot by slot) keeps pulls large: one round
   * trip serves many.
   */
  reserve(max: number, signal: AbortSignal): Promise<number> {
    if (signal.aborted || max <= 0) return Promise.resolve(0);
    if (this.#waiters.length === 0 && this.free >= this.#need(max)) return Promise.resolve(this.#take(max));
    return new Promise((resolve) => {
      const waiter: Waiter = {
        max,
        signal,
        resolve,
        onAbort: () => {
          const i = this.#waiters.indexOf(waiter);
          if (i >= 0) this.#waiters.splice(i, 1);
          resolve(0);
          // It may have been the one holding the others back.
          if (i === 0) this.#serve();
        },
      };
      this.#waiters.push(waiter);
      signal.addEventListener('abort', waiter.onAbort, { once: true });
    });
  }

  release(n: number): void {
    if (n <= 0) return;
    // Over-release would be a bookkeeping bug; clamping keeps the pool usable instead of crashing the daemon.
    this.#used = Math.max(0, this.#used - n);
    this.#serve();
  }

  #need(max: number): number {
    return Math.max(1, Math.min(max, Math.ceil(this.capacity / 2)));
  }

  #take(max: number): number {
    const n = Math.max(0, Math.min(max, this.free));
    this.#used += n;
    return n;
  }

  /** Hands free slots to the waiters in order, as long as the first one's need is met. */
  #serve(): void {
    while (this.#waiters.length > 0) {
      const w = this.#waiters[0]!;
      if (this.free < this.#need(w.max)) return;
      this.#waiters.shift();
      w.signal.removeEventListener('abort', w.onAbort);
      w.resolve(this.#take(w.max));
    }
  }
}
