/**
 * Local capacity of one API pool, shared by the jobs running on it: a job reserves slots before it pulls from
 * JetStream (so we never pull more than we can run), and free slots go to the jobs waiting for them by priority, then
 * in turn (fair share).
 *
 * Capacity = running lanes (threads × concurrency) + a prefetch that adapts to how long batches take: enough queued
 * work to cover about PREFETCH_TARGET_MS, at most MAX_PREFETCH. Tiny batches get a deep local queue (one pull and one
 * task serve many); batches of the target or longer get none, so a daemon never sits on a batch another daemon's idle
 * thread could be running. Durations and prefetch are per job (its Claimant): a job of long batches gets a slot only
 * while a lane is free, whatever a job of tiny batches beside it queues. `capacity` (lanes + the largest prefetch of
 * the jobs here now) is what the pool takes at most. A job's own limit on top of this is batches/share.ts.
 */
import { Waiters } from '../../util/waiters.js';

const PREFETCH_TARGET_MS = 50;
const MAX_PREFETCH = 512;
/** Weight of the newest duration in the moving average. */
const EWMA_ALPHA = 0.1;

/** One job's place in the pool's scheduling, held by its runner. */
export interface Claimant {
  /** Higher is served first. */
  priority: number;
  /**
   * Its last pull brought nothing (its queue is empty, or its `workers` are all busy elsewhere in the fleet): it is
   * served after every job that is not, so a job that cannot use a lane does not keep it from one that can.
   */
  starved: boolean;
  /** Serial number of its last grant: among equals, the least recently served goes first. */
  lastServed: number;
  /** Batches of it worth queueing here, from its own batch durations (0 until one is known). */
  prefetch: number;
  /** Moving average of its batch durations, in ms. */
  avgMs: number | undefined;
}

interface Waiter {
  claimant: Claimant;
  max: number;
  signal: AbortSignal;
  resolve(n: number): void;
  onAbort(): void;
}

export class Slots {
  readonly lanes: number;
  /** The largest prefetch of the claimants on the pool now. */
  #prefetch = 0;
  readonly #claimants = new Set<Claimant>();
  #used = 0;
  /** Standby pulls outstanding (see standby()). */
  #standby = 0;
  readonly #released = new Waiters();
  #grants = 0;
  /** Reservations waiting; each is handed its slots by #serve, never left to race for them. */
  readonly #waiters: Waiter[] = [];

  constructor(lanes: number) {
    this.lanes = lanes;
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

  /** A job's place in the scheduling (one per job runner, until it leaves). */
  claimant(priority: number): Claimant {
    const c: Claimant = { priority, starved: false, lastServed: 0, prefetch: 0, avgMs: undefined };
    this.#claimants.add(c);
    return c;
  }

  /** The job no longer runs here: its prefetch no longer counts. */
  leave(claimant: Claimant): void {
    claimant.prefetch = 0;
    if (this.#claimants.delete(claimant)) this.#resize();
  }

  /** Feeds the duration of one of the claimant's finished batch attempts into its prefetch sizing. */
  observe(claimant: Claimant, durationMs: number): void {
    if (!Number.isFinite(durationMs) || durationMs < 0) return;
    const avg = claimant.avgMs === undefined ? durationMs : claimant.avgMs + EWMA_ALPHA * (durationMs - claimant.avgMs);
    claimant.avgMs = avg;
    // Batches of the target or longer: a pull's round trip is small beside them, and a held batch is one another
    // daemon's idle thread could run.
    claimant.prefetch = avg >= PREFETCH_TARGET_MS ? 0 : Math.min(MAX_PREFETCH, Math.round((PREFETCH_TARGET_MS * this.lanes) / Math.max(avg, 0.01)));
    this.#resize();
  }

  #resize(): void {
    let prefetch = 0;
    for (const c of this.#claimants) prefetch = Math.max(prefetch, c.prefetch);
    this.#prefetch = prefetch;
    this.#serve();
  }

  /**
   * Waits for slots on behalf of `claimant` and takes up to `max` of its room (#room); resolves 0 if `signal` aborts
   * first. A waiter needs min(`max`, half its prefetch) of room: the prefetch is refilled in halves (not slot by slot),
   * which keeps pulls large (one round trip serves many), and while a lane is idle there is room for more than the
   * whole prefetch, so it never waits then.
   */
  reserve(claimant: Claimant, max: number, signal: AbortSignal): Promise<number> {
    if (signal.aborted || max <= 0) return Promise.resolve(0);
    if (this.#waiters.length === 0 && this.#room(claimant) >= this.#need(claimant, max)) return Promise.resolve(this.#grant(claimant, max));
    return new Promise((resolve) => {
      const waiter: Waiter = {
        claimant,
        max,
        signal,
        resolve,
        onAbort: () => {
          const i = this.#waiters.indexOf(waiter);
          if (i >= 0) this.#waiters.splice(i, 1);
          resolve(0);
          // It may have been the one holding the others back.
          this.#serve();
        },
      };
      this.#waiters.push(waiter);
      signal.addEventListener('abort', waiter.onAbort, { once: true });
      this.#serve();
    });
  }

  /**
   * A standby pull: a job with no known backlog may wait for one batch on a lane that is free (and not on another
   * standby), without reserving it; a job that comes to want the lane gets it as usual. Returns
   * whether the standby is taken; a batch it brings takes its slot with occupy(), and endStandby() ends it. So an idle
   * daemon starts a newly published batch at once, and the only batch that can ever wait for a lane here is one that
   * arrives on standby just as another job took the last free lane.
   */
  standby(): boolean {
    if (!this.canStandby()) return false;
    this.#standby++;
    return true;
  }

  /** A job waiting for slots means no lane is free (its room would be more than it needs), so only lanes count. */
  canStandby(): boolean {
    return this.#used + this.#standby < this.lanes;
  }

  endStandby(): void {
    this.#standby = Math.max(0, this.#standby - 1);
    this.#released.wake();
  }

  /** Resolves at the next release of a slot or end of a standby. */
  released(): Promise<void> {
    return this.#released.wait();
  }

  /**
   * Takes one slot at once, even beyond the capacity (onJobComplete running on a lane, or a batch that came on
   * standby): until it is released, that much less is granted to batches.
   */
  occupy(): void {
    this.#used++;
  }

  /** Marks whether the claimant's last pull brought nothing (see Claimant.starved); its waiter is re-ranked now. */
  setStarved(claimant: Claimant, starved: boolean): void {
    if (claimant.starved === starved) return;
    claimant.starved = starved;
    this.#serve();
  }

  release(n: number): void {
    if (n <= 0) return;
    // Over-release would be a bookkeeping bug; clamping keeps the pool usable instead of crashing the daemon.
    this.#used = Math.max(0, this.#used - n);
    this.#serve();
    this.#released.wake();
  }

  /**
   * What the claimant may still take: the lanes plus its own prefetch, less every slot in use. A job of long batches
   * (no prefetch) gets a slot only when a lane is free, whatever a job of tiny batches beside it queues.
   */
  #room(claimant: Claimant): number {
    return this.lanes + claimant.prefetch - this.#used;
  }

  #need(claimant: Claimant, max: number): number {
    return Math.max(1, Math.min(max, Math.ceil(claimant.prefetch / 2)));
  }

  #grant(claimant: Claimant, max: number): number {
    const n = Math.max(0, Math.min(max, this.#room(claimant)));
    this.#used += n;
    claimant.lastServed = ++this.#grants;
    return n;
  }

  /** Hands free slots to the best waiter, again and again, as long as its need is met. */
  #serve(): void {
    while (this.#waiters.length > 0) {
      let best = 0;
      for (let i = 1; i < this.#waiters.length; i++) if (before(this.#waiters[i]!.claimant, this.#waiters[best]!.claimant)) best = i;
      const w = this.#waiters[best]!;
      if (this.#room(w.claimant) < this.#need(w.claimant, w.max)) return;
      this.#waiters.splice(best, 1);
      w.signal.removeEventListener('abort', w.onAbort);
      w.resolve(this.#grant(w.claimant, w.max));
    }
  }
}

/** Whether `a` is served before `b`: a job that can use a lane first, then higher priority, then in turn. */
function before(a: Claimant, b: Claimant): boolean {
  if (a.starved !== b.starved) return !a.starved;
  if (a.priority !== b.priority) return a.priority > b.priority;
  return a.lastServed < b.lastServed;
}
