/**
 * The fleet-side enqueue of jobs over stored data: one daemon serving the job's API claims the enqueue
 * (`enqueue.owner`, `enqueue.lease_until` in the record, by CAS), lists the stores and publishes the batches with
 * the streamed submission's publisher (fleet/stream-submit.ts), whose checkpoints renew the lease. Another daemon
 * takes the enqueue over only when the lease has lapsed *and* the owner is gone (its heartbeat deleted or unchanged
 * for its presence timeout: completion/peers.ts, the rule of completion claims); it resumes from the last
 * checkpoint: reads the stores again, checks the first `enqueue.batches` batches against the checkpoint's digest,
 * skips them and publishes the rest, whose msg ids make what the previous owner published after that checkpoint
 * duplicates. The enqueue deadline (RESUME_WITHIN_MS after the last checkpoint, not pushed by a takeover) keeps a
 * resume inside the batches stream's duplicate window.
 *
 * Failures: bad data (no object listed, no valid item, too many malformed lines, a batch too large, a corrupt .gz,
 * a store URL that does not exist, data that changed under a resume) ends the job `enqueue_failed`. Anything else
 * (a store or NATS unreachable) is retried from the last checkpoint with backoff, and ends the job `enqueue_failed`
 * after RETRY_FOR_MS without progress (retry-budget.ts: every batch acked further than before is progress).
 */
import type { Logger } from 'pino';
import { ErrorCodes, JetbatchError, toErrorInfo } from '../../errors.js';
import type { FleetContext } from '../../fleet/context.js';
import { discardQueue, endJob } from '../../fleet/lifecycle.js';
import { maxBodyBytes } from '../../fleet/protocol.js';
import { getJob, transitionJob } from '../../fleet/registry.js';
import { EnqueueClaimLost, RESUME_WITHIN_MS, publishStream } from '../../fleet/stream-submit.js';
import type { StoreDeps } from '../../stores/index.js';
import type { JobRecord } from '../../types.js';
import { sleep } from '../../util/sleep.js';
import type { Peers } from '../completion/peers.js';
import { RETRY_FOR_MS, RetryBudget } from './retry-budget.js';
import { sourceBatches, type SourceReadStats } from './source-batches.js';


/** Errors no retry can fix: the job ends `enqueue_failed`. */
const FATAL: ReadonlySet<string> = new Set([
  ErrorCodes.INVALID_SUBMISSION,
  ErrorCodes.PAYLOAD_TOO_LARGE,
  ErrorCodes.JOB_CONFLICT,
  ErrorCodes.NO_INPUT,
  ErrorCodes.STORE_NOT_FOUND,
  ErrorCodes.INVALID_STORE_URL,
]);

export interface EnqueuerDeps {
  ctx: FleetContext;
  daemonId: string;
  log: Logger;
  /** How long a claim stays certainly current without renewal (the daemon's lease), ms. */
  leaseMs: number;
  /** This daemon's presence timeout, for an owner whose heartbeat does not state its own. */
  presenceTimeoutMs: number;
  peers: Peers;
  /** True while this daemon's heartbeat is recent enough that nobody can take it for gone. */
  present(): boolean;
  /** What the stores need: the fleet's JetStream (obj://) and the daemon config's s3 section. */
  storeDeps: StoreDeps;
}

export class SourceEnqueuer {
  readonly #d: EnqueuerDeps;
  /** Enqueues this daemon runs, by job id. */
  readonly #running = new Map<string, Promise<void>>();
  /** Jobs whose claim is being decided. */
  readonly #considering = new Set<string>();
  readonly #stop = new AbortController();

  constructor(deps: EnqueuerDeps) {
    this.#d = deps;
  }

  /** A job of ours changed (or the periodic sweep): claim its enqueue if it is a job over stored data to claim. */
  consider(record: JobRecord): void {
    // `enqueuing` with a finished enqueue is a dead-letter replay (client/dead-letters.ts): never the enqueuer's.
    if (record.status !== 'enqueuing' || record.source == null || record.enqueue?.done === true) return;
    const jobId = record.job_id;
    if (this.#running.has(jobId) || this.#considering.has(jobId) || this.#stop.signal.aborted) return;
    this.#considering.add(jobId);
    void this.#maybeClaim(record)
      .catch((err: unknown) => this.#d.log.warn({ err, job_id: jobId }, 'claiming the enqueue failed'))
      .finally(() => this.#considering.delete(jobId));
  }

  /**
   * Shutdown: every enqueue stops between batches, and its lease is ended so that another daemon takes it over as
   * soon as this daemon's heartbeat entry is deleted.
   */
  /**
   * Stops every enqueue this daemon runs and waits for them, at most `graceMs`: an enqueue notices the stop between
   * batches, but a store's listing or read in progress does not (the daemon then closes its NATS connection, which
   * ends it; its claim lapses and another daemon resumes it).
   */
  async close(graceMs: number): Promise<void> {
    const reason = new Error('the daemon is shutting down');
    reason.name = 'AbortError';
    this.#stop.abort(reason);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled(this.#running.values()),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs).unref())),
    ]);
    clearTimeout(timer);
  }

  async #maybeClaim(seen: JobRecord): Promise<void> {
    const d = this.#d;
    if (!d.present()) return;
    const owner = seen.enqueue?.owner ?? null;
    let why = 'unclaimed';
    // A claim of this daemon's that it does not run (checks never overlap a run) is one it gave up: taken again.
    if (owner !== null && owner !== d.daemonId) {
      const lease = seen.enqueue?.lease_until ?? null;
      if (lease !== null && Date.now() < Date.parse(lease)) return;
      const peer = await d.peers.judge(owner, d.presenceTimeoutMs);
      if (!peer.gone) return;
      why = `${owner} is gone: ${peer.reason}`;
    } else if (owner === d.daemonId) {
      why = 'this daemon gave up its own claim';
    }
    if (this.#stop.signal.aborted || this.#running.has(seen.job_id)) return;
    const now = Date.now();
    const claimed = await transitionJob(d.ctx.jobs, seen.job_id, (cur) => {
      const e = cur.enqueue;
      // Only the claim judged above: an owner that renewed meanwhile, or another claimant, wins.
      if (cur.status !== 'enqueuing' || cur.source == null || e == null || e.done === true || (e.owner ?? null) !== owner || (e.lease_until ?? null) !== (seen.enqueue?.lease_until ?? null)) return null;
      return {
        ...cur,
        enqueue: { ...e, owner: d.daemonId, lease_until: new Date(now + d.leaseMs).toISOString() },
        // Nobody published anything yet, so the deadline may move; a takeover keeps the previous owner's, which
        // bounds how late its last publishes can be published again (the duplicate window).
        enqueue_deadline: owner === null ? new Date(now + RESUME_WITHIN_MS).toISOString() : cur.enqueue_deadline,
      };
    });
    if (claimed === null || !claimed.changed) return;
    const log = d.log.child({ job_id: seen.job_id, api_name: seen.api_name });
    log.info({ why, revision: claimed.revision, resume_from: claimed.record.enqueue?.batches ?? 0 }, 'enqueue claimed');
    const run = this.#run(claimed.record, log).finally(() => this.#running.delete(seen.job_id));
    this.#running.set(seen.job_id, run);
  }

  /** Publishes the job's batches, resuming from the record's checkpoint after each transient failure. */
  async #run(claimed: JobRecord, log: Logger): Promise<void> {
    const d = this.#d;
    const jobId = claimed.job_id;
    let record = claimed;
    const budget = new RetryBudget(record.enqueue?.batches ?? 0, performance.now());
    for (;;) {
      const stats: SourceReadStats = { objects: 0, items: 0, badLines: 0 };
      const started = performance.now();
      try {
        const batches = sourceBatches(record.source!, { storeDeps: d.storeDeps, log, signal: this.#stop.signal }, stats);
        const done = await publishStream(d.ctx, { job_id: jobId, api_name: record.api_name }, batches, {
          maxBatchBytes: maxBodyBytes(d.ctx.nc),
          badLines: () => stats.badLines,
          claim: { owner: d.daemonId, leaseMs: d.leaseMs },
          onProgress: (p) => budget.progress(p.enqueued, performance.now()),
        }, record.enqueue!);
        log.info({ batches: done.total_batch_count, objects: stats.objects, items: stats.items, bad_lines: stats.badLines, ms: Math.round(performance.now() - started) }, 'enqueue finished');
        return;
      } catch (err) {
        if (err instanceof EnqueueClaimLost) {
          log.warn({ reason: err.message }, 'enqueue claim lost; the new owner continues');
          return;
        }
        const code = (err as { code?: unknown }).code;
        if (code === ErrorCodes.JOB_ENDED || code === ErrorCodes.JOB_NOT_FOUND) {
          log.info({ reason: (err as Error).message }, 'enqueue stopped: the job ended');
          return;
        }
        if (this.#stop.signal.aborted) {
          await this.#release(jobId, log);
          return;
        }
        if (typeof code === 'string' && FATAL.has(code)) {
          await this.#fail(jobId, code === ErrorCodes.JOB_CONFLICT ? new JetbatchError(ErrorCodes.JOB_CONFLICT, `the stored data changed while the job was being enqueued: ${(err as Error).message}`, { cause: err }) : err, log);
          return;
        }
        if (budget.exhausted(performance.now())) {
          const failed = typeof code === 'string' && code.startsWith('JB_STORE') ? ErrorCodes.STORE_FAILED : ErrorCodes.INTERNAL;
          await this.#fail(jobId, new JetbatchError(failed, `enqueuing gave up after ${Math.round(RETRY_FOR_MS / 1000)} s without progress: ${(err as Error).message}`, { cause: err }), log);
          return;
        }
        const delay = budget.nextDelay();
        log.warn({ err: (err as Error).message, code, retry_in_ms: delay, enqueued: budget.furthest }, 'enqueuing failed; retrying from the last checkpoint');
        await sleep(delay, this.#stop.signal);
        if (this.#stop.signal.aborted) {
          await this.#release(jobId, log);
          return;
        }
        // Unreadable (NATS unreachable): try again with the checkpoint known. Gone, ended or claimed by another: done.
        const fresh = await getJob(d.ctx.jobs, jobId).catch(() => undefined);
        if (fresh === undefined) continue;
        if (fresh === null || fresh.record.status !== 'enqueuing' || fresh.record.enqueue?.owner !== d.daemonId || fresh.record.enqueue.done === true) return;
        record = fresh.record;
      }
    }
  }

  async #fail(jobId: string, err: unknown, log: Logger): Promise<void> {
    const error = toErrorInfo(err);
    log.error({ error }, 'enqueue failed; the job ends enqueue_failed');
    const ended = await endJob(this.#d.ctx, jobId, 'enqueue_failed', error).catch((e: unknown) => {
      log.warn({ err: e }, 'ending the job failed');
      return null;
    });
    if (ended !== null) await discardQueue(this.#d.ctx, ended.record).catch(() => undefined);
  }

  /** Ends this daemon's lease (the owner stays on record): another daemon takes over once this one is gone. */
  async #release(jobId: string, log: Logger): Promise<void> {
    const now = new Date().toISOString();
    await transitionJob(this.#d.ctx.jobs, jobId, (cur) =>
      cur.status === 'enqueuing' && cur.enqueue?.owner === this.#d.daemonId ? { ...cur, enqueue: { ...cur.enqueue, lease_until: now } } : null,
    ).catch(() => undefined);
    log.info('enqueue left to another daemon: shutting down');
  }
}
