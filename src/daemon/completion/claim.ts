/**
 * A daemon's claim on completing a job (`JobRecord.completion`), and the keeper that holds it: renews its lease
 * while the claimer works, and makes every later write (hook started, final status) a compare-and-set that lands
 * only while the claim is still this one. Writes that fail for a while (NATS electing a leader) are retried, not
 * given up: a live claimer keeps its claim; only another daemon finding it gone takes it over (see completion.ts).
 */
import type { KV } from '@nats-io/kv';
import type { Logger } from 'pino';
import { transitionJob, type Transition } from '../../fleet/registry.js';
import type { CompletionClaim, JobRecord } from '../../types.js';

/** The claim is no longer this claimer's: taken over, or the job ended (stopped, timed out) or vanished. */
export class ClaimLost extends Error {
  override name = 'ClaimLost';
}

/** The daemon is shutting down: the claim is left for another daemon to take over. */
export class ClaimAbandoned extends Error {
  override name = 'ClaimAbandoned';
}

export interface ClaimId {
  daemonId: string;
  attempt: number;
}

const iso = (ms: number): string => new Date(ms).toISOString();

export function isClaimedBy(r: JobRecord, id: ClaimId): boolean {
  return r.status === 'completing' && r.completion !== null && r.completion.claimed_by === id.daemonId && r.completion.attempt === id.attempt;
}

/** `r` claimed by `daemonId` for `attempt`; `previous` is the claim on record before, if any. */
export function claimFor(r: JobRecord, daemonId: string, leaseMs: number, previous: CompletionClaim | null, attempt: number): JobRecord {
  const now = Date.now();
  const completion: CompletionClaim = {
    claimed_by: daemonId,
    attempt,
    claimed_at: iso(now),
    lease_until: iso(now + leaseMs),
    hook_started_at: null,
    rerun: previous !== null && (previous.rerun === true || (previous.hook_started_at ?? null) !== null),
  };
  if (previous !== null) {
    completion.took_over = {
      claimed_by: previous.claimed_by,
      // Claims written by a daemon before attempts were recorded count as attempt 1.
      attempt: previous.attempt ?? 1,
      hook_started_at: previous.hook_started_at ?? null,
      lease_until: previous.lease_until,
    };
  }
  return { ...r, status: 'completing', completion };
}

export interface KeeperDeps {
  kv: KV;
  jobId: string;
  claim: ClaimId;
  leaseMs: number;
  log: Logger;
  /** True once the daemon is shutting down: retries stop. */
  closing(): boolean;
}

export class ClaimKeeper {
  readonly #d: KeeperDeps;
  #lost: string | null = null;
  #stopped = false;
  #timer: NodeJS.Timeout | undefined;
  #failures = 0;

  constructor(deps: KeeperDeps) {
    this.#d = deps;
  }

  /** Why the claim is no longer ours, or null while it is. */
  get lost(): string | null {
    return this.#lost;
  }

  /** Renews the lease every lease/3 until stop(); one renewal at a time, however slow. */
  start(): void {
    const every = Math.max(200, Math.floor(this.#d.leaseMs / 3));
    const tick = (): void => {
      this.#timer = setTimeout(() => {
        void this.#renew().finally(() => {
          if (!this.#stopped && this.#lost === null) tick();
        });
      }, every);
      this.#timer.unref();
    };
    tick();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
  }

  async #renew(): Promise<void> {
    try {
      await this.#write((r) => ({ ...r, completion: { ...r.completion!, lease_until: iso(Date.now() + this.#d.leaseMs) } }));
      if (this.#failures > 0) this.#d.log.info({ failures: this.#failures }, 'completion lease renewed again');
      this.#failures = 0;
    } catch (err) {
      if (err instanceof ClaimLost) return;
      this.#failures++;
      // A lapsed lease alone does not lose the claim (takeover also needs this daemon gone), so keep trying.
      if (this.#failures === 1 || this.#failures % 10 === 0) {
        this.#d.log.warn({ err: (err as Error).message, failures: this.#failures }, 'renewing the completion lease failed; retrying');
      }
    }
  }

  /**
   * Applies `change` to the record while the claim is ours, retrying failed writes with back-off until one lands.
   * Throws ClaimLost if the claim is not ours (any more), ClaimAbandoned if the daemon shuts down first.
   */
  async write(change: (r: JobRecord) => JobRecord): Promise<Transition> {
    for (let delay = 100, failures = 0; ; delay = Math.min(delay * 2, 2000)) {
      try {
        return await this.#write(change);
      } catch (err) {
        if (err instanceof ClaimLost) throw err;
        if (this.#d.closing()) throw new ClaimAbandoned(`shutting down: ${(err as Error).message}`);
        failures++;
        if (failures === 1 || failures % 10 === 0) this.#d.log.warn({ err: (err as Error).message, failures }, 'writing the job record failed; retrying');
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  async #write(change: (r: JobRecord) => JobRecord): Promise<Transition> {
    if (this.#lost !== null) throw new ClaimLost(this.#lost);
    const result = await transitionJob(this.#d.kv, this.#d.jobId, (r) => (isClaimedBy(r, this.#d.claim) ? change(r) : null));
    if (result === null) this.#lost = 'the job record is gone';
    else if (!result.changed) {
      const c = result.record.completion;
      this.#lost = result.record.status === 'completing' && c !== null
        ? `claimed by ${c.claimed_by} (attempt ${c.attempt ?? 1}) at revision ${result.revision}`
        : `the job is ${result.record.status} at revision ${result.revision}`;
    }
    if (this.#lost !== null) throw new ClaimLost(this.#lost);
    return result!;
  }
}
