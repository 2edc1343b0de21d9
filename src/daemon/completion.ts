/**
 * The end of a job that ran to completion, once across the fleet. A daemon that finds the job's queue empty claims
 * completion with a CAS (status `completing` + a claim with a lease, see claim.ts), confirms the claim is still its
 * own with another CAS right before it starts `onJobComplete`, then writes the final status (CAS again) and
 * publishes the completion event. The claimer keeps its claim however long this takes: it renews the lease and
 * retries failed writes. Another daemon takes a claim over only when its lease has lapsed *and* its claimer is gone
 * (peers.ts: heartbeat deleted or unchanged for the claimer's presence timeout).
 *
 * The contract: onJobComplete runs exactly once per completion, unless its claimer dies, or is frozen or cut off
 * from NATS past its presence timeout, after starting the hook; then the next claimer runs it again with
 * `summary.rerun` true. A claimer that lost its claim before starting the hook never starts it, and only the
 * current claimer's final write lands, so the final status and the completion event are written once.
 */
import type { Logger } from 'pino';
import type { FleetContext } from '../context.js';
import { discardQueue, endJob, publishEvent } from '../lifecycle.js';
import { liveCounts, metricsOf, queuedBatches } from '../progress.js';
import { transitionJob, type Transition } from '../registry.js';
import type { ErrorInfo, JobRecord, JobSummary } from '../types.js';
import { ErrorCodes } from '../errors.js';
import { ClaimAbandoned, ClaimKeeper, ClaimLost, claimFor } from './claim.js';
import type { Peers } from './peers.js';
import type { ApiPool } from './pool.js';
import { jobSpecOf } from './job-spec.js';
import { toErrorInfo } from './settle.js';

export interface CompletionDeps {
  ctx: FleetContext;
  daemonId: string;
  log: Logger;
  /** How long a claim stays certainly current without renewal, in ms. */
  leaseMs: number;
  /** This daemon's presence timeout (used for a claimer whose heartbeat does not state its own). */
  presenceTimeoutMs: number;
  peers: Peers;
  poolFor(record: JobRecord): Promise<ApiPool>;
  /** Called before onJobComplete runs, to let in-flight stats land. */
  flushStats(jobId: string): Promise<void>;
  /** True once the daemon shuts down. */
  closing(): boolean;
}

/**
 * Checks one active job and moves it on if it is due: completion, job timeout, enqueue deadline, a claim whose
 * claimer is gone. The daemon never runs two checks of one job at once, so a claim of this daemon's that it finds
 * here is one it no longer works on (it gave up on a write): it takes it over like any other.
 */
export async function checkJob(deps: CompletionDeps, record: JobRecord): Promise<void> {
  const jobId = record.job_id;
  const now = Date.now();
  if (record.status === 'enqueuing') {
    if (now > Date.parse(record.enqueue_deadline)) {
      await endJob(deps.ctx, jobId, 'enqueue_failed', { name: 'EnqueueTimeout', code: ErrorCodes.TIMEOUT, message: `the publisher did not finish enqueuing by ${record.enqueue_deadline}` });
    }
    return;
  }
  if (record.timeout !== null && (record.status === 'pending' || record.status === 'running')) {
    if (now > Date.parse(record.start_time) + record.timeout * 1000) {
      await endJob(deps.ctx, jobId, 'timed_out', { name: 'JobTimeout', code: ErrorCodes.TIMEOUT, message: `job exceeded its timeout of ${record.timeout} s` });
      return;
    }
  }
  if (record.status === 'completing') {
    const c = record.completion;
    if (c !== null && c.claimed_by !== deps.daemonId && now < Date.parse(c.lease_until)) return;
  } else if (record.status !== 'pending' && record.status !== 'running') {
    return;
  }
  if ((await queuedBatches(deps.ctx, record)) > 0) return;
  const pool = await deps.poolFor(record);
  let verdict = 'queue empty';
  const claimed = await transitionJob(deps.ctx.jobs, jobId, async (r) => {
    if (r.status === 'pending' || r.status === 'running') return claimFor(r, deps.daemonId, deps.leaseMs, null);
    if (r.status !== 'completing') return null;
    const c = r.completion;
    if (c === null) return claimFor(r, deps.daemonId, deps.leaseMs, null);
    if (c.claimed_by === deps.daemonId) {
      verdict = 'this daemon gave up its own claim';
      return claimFor(r, deps.daemonId, deps.leaseMs, c);
    }
    if (Date.now() < Date.parse(c.lease_until)) return null;
    const peer = await deps.peers.judge(c.claimed_by, deps.presenceTimeoutMs);
    if (!peer.gone) return null;
    verdict = `claimer ${c.claimed_by} is gone: ${peer.reason}`;
    return claimFor(r, deps.daemonId, deps.leaseMs, c);
  });
  if (claimed === null || !claimed.changed) return;
  await runCompletion(deps, pool, claimed, verdict);
}

async function runCompletion(deps: CompletionDeps, pool: ApiPool, claimed: Transition, why: string): Promise<void> {
  const record = claimed.record;
  const claim = record.completion!;
  const log = deps.log.child({ job_id: record.job_id, api_name: record.api_name, claim_attempt: claim.attempt });
  log.info({ revision: claimed.revision, lease_until: claim.lease_until, why, took_over: claim.took_over ?? null, rerun: claim.rerun }, 'completion claimed');
  const keeper = new ClaimKeeper({ kv: deps.ctx.jobs, jobId: record.job_id, claim: { daemonId: deps.daemonId, attempt: claim.attempt }, leaseMs: deps.leaseMs, log, closing: deps.closing });
  keeper.start();
  try {
    const { status, metrics } = await persist(deps, keeper, log, 'counting the job', async () => {
      await deps.flushStats(record.job_id);
      const counts = await liveCounts(deps.ctx, { ...record, status: 'running' });
      const status = counts.failed === 0 ? 'succeeded' : record.error?.code === ErrorCodes.WORKER_OOM ? 'worker_oom' : 'completed_with_failures';
      return { status, metrics: metricsOf(counts) } as const;
    });
    // The hook never starts on a claim that is not confirmed current, by a write that lands now.
    const confirmed = await keeper.write((r) => ({ ...r, completion: { ...r.completion!, hook_started_at: new Date().toISOString(), lease_until: new Date(Date.now() + deps.leaseMs).toISOString() } }));
    log.info({ revision: confirmed.revision, rerun: claim.rerun }, 'onJobComplete starting');
    const summary: JobSummary = { job_id: record.job_id, api_name: record.api_name, status, total_batch_count: record.total_batch_count, batch_metrics: metrics, attempt: claim.attempt, rerun: claim.rerun };
    const started = performance.now();
    const outcome = await pool.runComplete({ kind: 'complete', job: jobSpecOf(record, pool.api), summary }, new AbortController().signal, () => 'shutdown');
    let hookError: ErrorInfo | null = null;
    if (outcome.ok) log.info({ ms: Math.round(performance.now() - started) }, 'onJobComplete finished');
    else {
      hookError = toErrorInfo(outcome.error);
      log.error({ error: hookError, ms: Math.round(performance.now() - started) }, 'onJobComplete failed');
    }
    const final = await keeper.write((r) => ({
      ...r,
      status,
      end_time: new Date().toISOString(),
      batch_metrics: metrics,
      batches_in_queue: 0,
      // The claim that completed the job stays on the record, for the record.
      completion: { ...r.completion!, lease_until: new Date().toISOString() },
      error: hookError ?? r.error,
    }));
    keeper.stop();
    log.info({ status, succeeded: metrics.succeeded, failed: metrics.failed, revision: final.revision }, 'job completed');
    await discardQueue(deps.ctx, final.record).catch((err: unknown) => log.warn({ err }, 'removing the job consumer failed'));
    await persist(deps, keeper, log, 'publishing the completion event', () => publishEvent(deps.ctx, final.record, 'completed'), { whileClaimed: false, maxFailures: 20 }).catch((err: unknown) =>
      log.error({ err }, 'the completion event could not be published'),
    );
  } catch (err) {
    if (err instanceof ClaimLost) log.warn({ reason: err.message }, 'completion claim lost; the job is left to its new claimer');
    else if (err instanceof ClaimAbandoned) log.warn({ reason: err.message }, 'completion left unfinished; another daemon takes it over once this one is gone');
    else throw err;
  } finally {
    keeper.stop();
  }
}

/**
 * Runs `fn` until it succeeds, backing off between tries; gives up when the claim is lost (unless `whileClaimed`
 * is false), the daemon shuts down, or after `maxFailures`.
 */
async function persist<T>(
  deps: CompletionDeps,
  keeper: ClaimKeeper,
  log: Logger,
  what: string,
  fn: () => Promise<T>,
  opts: { whileClaimed?: boolean; maxFailures?: number } = {},
): Promise<T> {
  for (let delay = 100, failures = 0; ; delay = Math.min(delay * 2, 2000)) {
    if (opts.whileClaimed !== false && keeper.lost !== null) throw new ClaimLost(keeper.lost);
    try {
      return await fn();
    } catch (err) {
      if (deps.closing()) throw new ClaimAbandoned(`shutting down while ${what}: ${(err as Error).message}`);
      failures++;
      if (failures >= (opts.maxFailures ?? Infinity)) throw err;
      if (failures === 1 || failures % 10 === 0) log.warn({ err: (err as Error).message, failures }, `${what} failed; retrying`);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
