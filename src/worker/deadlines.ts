/**
 * The batch timeouts of a worker thread on one timer. A timer per batch (setTimeout, then clearTimeout when the batch
 * ends a few µs later) was ~8 % of a thread's time on 100-record batches. Here a batch's deadline is a number; the
 * one timer is armed for the earliest deadline and, when it fires, ends what is due and re-arms for the next. A
 * deadline that ends or moves later leaves the timer as it is: it fires early at worst, and is re-armed then.
 */

/** One batch's deadline (Deadlines.start). */
export interface Deadline {
  /** performance.now() time at which it expires. */
  readonly at: number;
}

interface Entry {
  at: number;
  readonly onExpire: () => void;
}

export class Deadlines {
  readonly #entries = new Set<Entry>();
  #timer: NodeJS.Timeout | undefined;
  /** When the armed timer fires (performance.now() time), or Infinity when none is armed. */
  #armedFor = Infinity;

  /** Calls `onExpire` `ms` from now, unless the deadline is cleared first (or extended: then later). */
  start(ms: number, onExpire: () => void): Deadline {
    const entry: Entry = { at: performance.now() + ms, onExpire };
    this.#entries.add(entry);
    if (entry.at < this.#armedFor) this.#arm(entry.at);
    return entry;
  }

  /** Moves a deadline to `ms` from now (ctx.extendLease()); nothing for one cleared or expired. */
  extend(deadline: Deadline, ms: number): void {
    const entry = deadline as Entry;
    if (!this.#entries.has(entry)) return;
    entry.at = performance.now() + ms;
    if (entry.at < this.#armedFor) this.#arm(entry.at);
  }

  /** The batch ended: nothing happens at its deadline. */
  clear(deadline: Deadline): void {
    this.#entries.delete(deadline as Entry);
  }

  /** Deadlines neither cleared nor expired. */
  get size(): number {
    return this.#entries.size;
  }

  #arm(at: number): void {
    clearTimeout(this.#timer);
    this.#armedFor = at;
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, at - performance.now()));
    this.#timer.unref();
  }

  #fire(): void {
    this.#timer = undefined;
    this.#armedFor = Infinity;
    const now = performance.now();
    const due: Entry[] = [];
    let next = Infinity;
    for (const e of this.#entries) {
      // A timer may fire up to a millisecond early by performance.now(): what is due within 1 ms is due.
      if (e.at <= now + 1) due.push(e);
      else next = Math.min(next, e.at);
    }
    for (const e of due) this.#entries.delete(e);
    if (next !== Infinity) this.#arm(next);
    for (const e of due) e.onExpire();
  }
}
