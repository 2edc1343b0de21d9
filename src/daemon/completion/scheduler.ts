/**
 * When this daemon checks its active jobs (completion.ts decides what a check does): 50 ms after a runner goes
 * idle, and in a periodic sweep (job timeouts, enqueue deadlines, claims whose claimer is gone). At most one check
 * of a job runs at a time; a completion runs inside its check.
 */
import type { Logger } from 'pino';
import type { JobRecord } from '../../types.js';
import { sleep } from '../../util/sleep.js';
import { checkJob, type CompletionDeps } from './completion.js';

export interface SchedulerDeps {
  completion: CompletionDeps;
  log: Logger;
  /** The latest record of an active job of ours. */
  record(jobId: string): JobRecord | undefined;
  activeIds(): string[];
  /** Batches of the job in flight on this daemon. */
  inFlight(jobId: string): number;
}

export class CompletionScheduler {
  readonly #deps: SchedulerDeps;
  /** The check of each job under way. */
  readonly #checking = new Map<string, Promise<void>>();
  readonly #pending = new Set<string>();
  #closed = false;

  constructor(deps: SchedulerDeps) {
    this.#deps = deps;
  }

  /**
   * A check of the job 50 ms from now (one pending at a time per job), unless by then a batch of the job is in flight
   * here again: the runner going idle between two batches is no sign of the end (its next idle asks again). A job
   * whose batches each take the whole pool (a lane per batch, no prefetch) went idle between every pair of them, and
   * every check asked the server for the consumer's state: ~10 requests a second at 20 batches a second.
   */
  soon(jobId: string): void {
    if (this.#pending.has(jobId)) return;
    this.#pending.add(jobId);
    void sleep(50).then(() => {
      this.#pending.delete(jobId);
      if (this.#deps.inFlight(jobId) > 0) return;
      return this.#check(jobId);
    });
  }

  /** Checks every active job, except one with batches in flight here and no job timeout to watch. */
  async sweep(): Promise<void> {
    for (const jobId of this.#deps.activeIds()) {
      if (this.#deps.inFlight(jobId) > 0 && this.#deps.record(jobId)?.timeout === null) continue;
      await this.#check(jobId);
    }
  }

  /**
   * Shutdown: no new check starts; checks and completions under way get `graceMs` to finish. One still running after
   * it is left to another daemon, which takes it over once this daemon's heartbeat entry is gone.
   */
  async close(graceMs: number): Promise<void> {
    this.#closed = true;
    const timeout = new AbortController();
    const finished = Promise.all(this.#checking.values()).then(() => true);
    const inTime = await Promise.race([finished, sleep(graceMs, timeout.signal).then(() => false)]);
    timeout.abort();
    if (!inTime) this.#deps.log.warn({ jobs: [...this.#checking.keys()] }, 'job checks or completions still running after the shutdown grace; other daemons take them over');
  }

  async #check(jobId: string): Promise<void> {
    const record = this.#deps.record(jobId);
    if (record === undefined || this.#checking.has(jobId) || this.#closed || this.#deps.completion.closing()) return;
    const check = checkJob(this.#deps.completion, record)
      .catch((err: unknown) => this.#deps.log.warn({ err, job_id: jobId }, 'job check failed'))
      .finally(() => this.#checking.delete(jobId));
    this.#checking.set(jobId, check);
    await check;
  }
}
