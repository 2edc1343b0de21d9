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

export class Slots {
  readonly lanes: number;
  #prefetch: number;
  #ewmaMs: number | undefined;
  #used = 0;
  #waiters: Array<() => void> = [];

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
    const before = this.free;
    this.#prefetch = Math.min(MAX_PREFETCH, Math.max(this.lanes, wanted));
    if (this.free > before && before <= 0) this.#waiters[0]?.();
  }

  /**
   * Waits until at least min(`max`, half the capacity) slots are free, then takes up to `max`; resolves 0 if
   * `signal` aborts first. Refilling in halves (not slot by slot) keeps pulls large: one round trip serves many.
   */
  async reserve(max: number, signal: AbortSignal): Promise<number> {
    const enough = (): number => Math.max(1, Math.min(max, Math.ceil(this.capacity / 2)));
    while (this.free < enough() || this.#waiters.length > 0) {
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
      if (this.free >= enough()) break;
    }
    if (signal.aborted) return 0;
    const n = Math.max(0, Math.min(max, this.free));
    this.#used += n;
    return n;
  }

  release(n: number): void {
    if (n <= 0) return;
    // Over-release would be a bookkeeping bug; clamping keeps the pool usable instead of crashing the daemon.
    this.#used = Math.max(0, this.#used - n);
    if (this.free >= Math.ceil(this.capacity / 2) || this.#used === 0) this.#waiters[0]?.();
  }
}
