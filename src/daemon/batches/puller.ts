/**
 * The pull side of a job runner: asks the job's durable consumer for batches while the API's pool grants it slots
 * (Slots: by priority, then in turn), the job's share on this daemon allows (share.ts) and the job is not paused, and
 * hands every batch received to the runner.
 */
import type { Consumer, JsMsg } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { FleetContext } from '../../fleet/context.js';
import type { JobRecord } from '../../types.js';
import { bindJobConsumer } from './consumer.js';
import { handBack } from './settle.js';
import type { Claimant, Slots } from '../pools/slots.js';
import { sleep } from '../../util/sleep.js';

export interface PullerDeps {
  ctx: FleetContext;
  record: JobRecord;
  /** JetStream ack wait of job consumers, in ms. */
  leaseMs: number;
  slots: Slots;
  /** The job's place in the pool's scheduling. */
  claimant: Claimant;
  /** Most batches of the job this daemon may hold now (share.ts). */
  cap(): number;
  /** Whether the job is paused; while it is, nothing is pulled. */
  paused(): boolean;
  /** Resolves when the job is no longer paused (or `signal` aborts). */
  whenResumed(signal: AbortSignal): Promise<void>;
  log: Logger;
  /** Batches of the job received and not yet settled on this daemon. */
  inFlight(): number;
  /** Resolves when one of them settles (or `signal` aborts). */
  whenOneSettles(signal: AbortSignal): Promise<void>;
  /** Takes a received batch of `bytes` (its body); one slot was reserved for it. */
  dispatch(msg: JsMsg, bytes: number): void;
  /**
   * Aborts when the job has ended or was stopped (its consumer is gone or going): outstanding pulls end at once and
   * give their slots back, instead of waiting at the server for their expiry while other jobs wait for the slots.
   * (Not on a shutdown: a pull ended early there could lose what the server sends it until the lease runs out.)
   */
  cancelled: AbortSignal;
}

/** Most bytes of batches asked for by the outstanding pulls together. */
export const PULL_BYTES = 16 * 1024 * 1024;
const FETCH_EXPIRES_MS = 1000;
/** Pulls outstanding at once while the job has a backlog. */
export const MAX_PULLS = 2;
/** While a job is starved, its consumer is asked whether it has a batch for us after this long, doubling up to… */
const RECHECK_MIN_MS = 50;
/** …this long. */
const RECHECK_MAX_MS = 1000;

/** Most batches one pull may ask for when batches average `avgBytes`: all MAX_PULLS pulls stay under PULL_BYTES. */
export function pullLimit(avgBytes: number): number {
  return Math.max(1, Math.floor(PULL_BYTES / MAX_PULLS / Math.max(1, avgBytes)));
}

export class Puller {
  readonly #deps: PullerDeps;
  /** Moving average of batch message sizes, to size pulls in bytes. */
  #avgBytes = 1024;
  /** Batches asked for by outstanding pulls and not received yet. */
  #requested = 0;
  #consumer: Consumer | undefined;
  /** The last pull left batches in the queue: the next one will bring some. Otherwise the consumer is asked first. */
  #backlog = false;

  constructor(deps: PullerDeps) {
    this.#deps = deps;
  }

  /**
   * The pull loop. While the job has a backlog, up to MAX_PULLS pulls are outstanding, so the next one is already
   * asked for while the last is still arriving (the server's send never waits for a round trip). A pull waits at the
   * server (up to its expiry) when there is nothing to deliver, and the lanes reserved for it wait with it; so a pull
   * is asked for only when the job is known to have batches for us: after a pull that left a backlog, or once the
   * consumer says so (#untilWork). A pull that brings nothing also marks the job starved, which ranks it last for
   * lanes. So a job with an empty queue, or all its `workers` busy elsewhere, never keeps a lane from one that could
   * use it. While a lane is free and nobody waits for it, such a job keeps a standby pull of one batch that reserves
   * nothing (Slots.standby), so a batch published to an idle daemon starts at once.
   */
  async run(signal: AbortSignal): Promise<void> {
    const d = this.#deps;
    const pulls = new Set<Promise<void>>();
    while (!signal.aborted) {
      let consumer: Consumer;
      try {
        const bound = this.#consumer ?? (await bindJobConsumer(d.ctx, d.record, d.leaseMs));
        if (bound === null) {
          // The job is completing or ended: this runner is about to be retired.
          await sleep(RECHECK_MAX_MS, signal);
          continue;
        }
        consumer = this.#consumer = bound;
      } catch (err) {
        d.log.warn({ err, job_id: d.record.job_id }, 'cannot bind to job consumer; retrying');
        await sleep(1000, signal);
        continue;
      }
      if (d.paused()) {
        // Pulls already asked for may still deliver (their batches run); no new one is asked for.
        await d.whenResumed(signal);
        continue;
      }
      if (!this.#backlog) {
        if (pulls.size > 0) await Promise.race(pulls);
        else if (d.slots.standby()) this.#track(pulls, consumer, 1, true, signal);
        else if (await this.#untilWork(consumer, signal)) {
          this.#backlog = true;
          d.slots.setStarved(d.claimant, false);
        }
        continue;
      }
      if (pulls.size >= MAX_PULLS) {
        await Promise.race(pulls);
        continue;
      }
      const room = d.cap() - d.inFlight() - this.#requested;
      if (room <= 0) {
        await Promise.race([...pulls, d.whenOneSettles(signal)]);
        continue;
      }
      const want = Math.min(room, this.#pullLimit());
      let n = await d.slots.reserve(d.claimant, want, signal);
      if (n === 0) continue;
      if (signal.aborted || d.paused() || !this.#backlog) {
        // Served just as the job stopped, paused or ran dry: give the slots back.
        d.slots.release(n);
        continue;
      }
      // Batch sizes may have become known while waiting for slots (the first pull of a job was still arriving).
      const limit = this.#pullLimit();
      if (n > limit) {
        d.slots.release(n - limit);
        n = limit;
      }
      this.#track(pulls, consumer, n, false, signal);
    }
    await Promise.allSettled([...pulls]);
  }

  /** Starts a pull of `n` (on `n` reserved slots, or on standby) and keeps it in `pulls` until it ends. */
  #track(pulls: Set<Promise<void>>, consumer: Consumer, n: number, standby: boolean, signal: AbortSignal): void {
    const pull: Promise<void> = this.#pull(consumer, n, standby, signal)
      .then(async (failed) => {
        // NATS away or the consumer gone: the pull stays outstanding a while, so the loop does not spin on it.
        if (failed) await sleep(RECHECK_MAX_MS, signal);
      })
      .finally(() => pulls.delete(pull));
    pulls.add(pull);
  }

  /**
   * Asks the job's consumer, backing off from RECHECK_MIN_MS to RECHECK_MAX_MS, until it has a batch waiting and room
   * under its max_ack_pending: true (the job competes for lanes again). False when a standby pull became possible
   * (a lane was freed), the job paused, or it stopped.
   */
  async #untilWork(consumer: Consumer, signal: AbortSignal): Promise<boolean> {
    const d = this.#deps;
    let waitMs = RECHECK_MIN_MS;
    while (!signal.aborted && !d.paused()) {
      // Asked for before the consumer is: a lane freed while its answer travels still ends the wait below at once
      // (asked for after, that release was missed and a 1,000/s job waited the whole RECHECK_MIN_MS: p99 50 ms).
      const freed = d.slots.released();
      try {
        const info = await consumer.info();
        const cap = info.config.max_ack_pending ?? -1;
        if (info.num_pending > 0 && (cap < 0 || info.num_ack_pending < cap)) return true;
      } catch {
        // The consumer is gone (the job ended) or NATS is away: a pull finds out which, after a pause.
        await sleep(RECHECK_MAX_MS, signal);
        return true;
      }
      await Promise.race([sleep(waitMs, signal), freed]);
      if (d.slots.canStandby()) return false;
      waitMs = Math.min(RECHECK_MAX_MS, waitMs * 2);
    }
    return false;
  }

  /**
   * Most batches one pull may ask for: what all pulls ask for together stays under PULL_BYTES at the batches'
   * average size. More stalls (DESIGN.md §6 saw 100 MiB pulls crawl), and a pull of hundreds of MiB, asked for before
   * the batch size was known, got the daemon cut off as a slow consumer (the server's 64 MiB max_pending).
   */
  #pullLimit(): number {
    return pullLimit(this.#avgBytes);
  }

  /**
   * One pull of up to `n` batches, for which `n` slots are reserved, or on standby (a batch received then takes its
   * slot as it comes); every batch received is dispatched.
   */
  async #pull(consumer: Consumer, n: number, standby: boolean, signal: AbortSignal): Promise<boolean> {
    let got = 0;
    let lastPending = -1;
    let failed = false;
    let watchdog: NodeJS.Timeout | undefined;
    let cancel: (() => void) | undefined;
    const { cancelled } = this.#deps;
    this.#requested += n;
    try {
      if (cancelled.aborted) return false;
      const batch = await consumer.fetch({ max_messages: n, expires: FETCH_EXPIRES_MS });
      cancel = () => batch.stop();
      cancelled.addEventListener('abort', cancel, { once: true });
      // A pull must end by its expiry; if the client never ends it (seen under load when the server answers
      // "max ack pending"), stop it, or this job would wait forever with its slots reserved.
      watchdog = setTimeout(() => batch.stop(), FETCH_EXPIRES_MS + 2000);
      watchdog.unref();
      for await (const msg of batch) {
        if (got >= n) {
          // More than asked for (a pull re-issued across a reconnect): hand it back rather than overfill.
          handBack(msg);
          continue;
        }
        got++;
        this.#requested--;
        if (standby) this.#deps.slots.occupy();
        lastPending = msg.info.pending;
        // Known before the batch is dispatched (its settling frees a slot, and a reservation that wakes then acts on
        // it): a backlog is more batches waiting than the outstanding pulls still ask for. Batches already on their
        // way to those pulls are no reason for another, which would wait at the server on reserved slots.
        this.#backlog = lastPending > this.#requested;
        const bytes = msg.data.byteLength;
        this.#avgBytes += (bytes - this.#avgBytes) * 0.2;
        this.#deps.dispatch(msg, bytes);
      }
    } catch (err) {
      if (!signal.aborted) {
        this.#deps.log.debug({ err, job_id: this.#deps.record.job_id }, 'fetch failed');
        failed = true;
      }
    } finally {
      clearTimeout(watchdog);
      if (cancel !== undefined) cancelled.removeEventListener('abort', cancel);
      // Likewise before its unused slots go back: at a job's end, a reservation woken by that release asked for a full
      // pull on an earlier pull's word, and it waited at the server for its whole expiry on the slots the next job was
      // waiting for (the latency bench's ~1 s stalls).
      this.#requested -= n - got;
      this.#deps.slots.setStarved(this.#deps.claimant, got === 0 && !failed);
      this.#backlog = got > 0 && lastPending > this.#requested;
      if (failed && this.#consumer === consumer) this.#consumer = undefined;
      if (standby) this.#deps.slots.endStandby();
      else this.#deps.slots.release(n - got);
    }
    return failed;
  }
}
