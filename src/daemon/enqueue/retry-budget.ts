/**
 * How long an enqueue keeps retrying transient failures: RETRY_FOR_MS *without progress*, where progress is a batch
 * acknowledged beyond the furthest one so far (a checkpoint, or a publish acked in between). Publishing again what
 * a resume skips or re-sends is not progress, so a failure that always strikes at the same point still ends the job.
 * The backoff between attempts starts over after progress.
 */

/** How long transient failures are retried without progress before the job ends `enqueue_failed`. */
export const RETRY_FOR_MS = 120_000;
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 15_000;

export class RetryBudget {
  readonly #windowMs: number;
  #lastProgress: number;
  #furthest: number;
  #delay = BACKOFF_FIRST_MS;

  /** `at`: batches already enqueued (the checkpoint the run starts from); `now`: performance.now(). */
  constructor(at: number, now: number, windowMs = RETRY_FOR_MS) {
    this.#windowMs = windowMs;
    this.#lastProgress = now;
    this.#furthest = at;
  }

  /** `at` batches are acknowledged (or checkpointed): progress if that is further than before. */
  progress(at: number, now: number): void {
    if (at <= this.#furthest) return;
    this.#furthest = at;
    this.#lastProgress = now;
    this.#delay = BACKOFF_FIRST_MS;
  }

  /** The furthest batch count acknowledged so far. */
  get furthest(): number {
    return this.#furthest;
  }

  /** True once no progress was made for the whole window: the failure at `now` ends the job. */
  exhausted(now: number): boolean {
    return now - this.#lastProgress > this.#windowMs;
  }

  /** The wait before the next attempt (doubling up to BACKOFF_MAX_MS). */
  nextDelay(): number {
    const delay = this.#delay;
    this.#delay = Math.min(delay * 2, BACKOFF_MAX_MS);
    return delay;
  }
}
