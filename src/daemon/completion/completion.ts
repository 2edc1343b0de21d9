/**
 * The end of a job that ran to completion, once across the fleet. A daemon that finds the job's queue empty
 * contends for the completion: the first claim stored in the claims log wins the attempt (claim-log.ts), and the
 * winner writes its claim into the job record with a CAS (status `completing` + a claim with a lease, claim.ts).
 * It confirms the claim is still its own right before it starts `onJobComplete` (no later attempt in the log, and a
 * CAS on the record), then removes the job's queue, writes the final status (CAS again) and publishes the completion
 * event. The claimer keeps its claim however long this takes: it renews the lease and retries failed writes. Another
 * daemon takes a claim over (the next attempt, through the log again) only when its lease has lapsed *and* its
 * claimer is gone (peers.ts: heartbeat deleted or unchanged for the claimer's presence timeout).
 *
 * The contract: onJobComplete runs exactly once per completion, unless its claimer dies, or is frozen or cut off
 * from NATS past its presence timeout, after starting the hook; then the next claimer runs it again with
 * `summary.rerun` true. A claimer that lost its claim before starting the hook never starts it, and only the
 * current claimer's final write lands, so the final status and the completion event are written once.
 */
import type { Logger } from 'pino';
import type { FleetContext } from '../../fleet/context.js';
import { discardQueue, endJob, pausedMs, publishEvent } from '../../fleet/lifecycle.js';
import { liveCounts, metricsOf, queuedBatches } from '../../fleet/progress.js';
import { getJob, transitionJob, type Transition } from '../../fleet/registry.js';
import type { ErrorInfo, JobRecord, JobSummary } from '../../types.js';
import { ErrorCodes, toErrorInfo } from '../../errors.js';
import { ClaimAbandoned, ClaimKeeper, ClaimLost, claimFor } from './claim.js';
import { contend, firstClaimant } from './claim-log.js';
import type { Peers } from './peers.js';
import type { ApiPool } from '../pools/pool.js';
import { jobSpecOf } from '../job-spec.js';
import { settleStoredResults } from '../../fleet/stored-results.js';
import type { StoreDeps } from '../../stores/index.js';

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
  /** True while this daemon's heartbeat is recent enough that nobody can take it for gone. */
  present(): boolean;
  /** What the store of a job's `output` needs (the NATS connection, the config's `s3` section). */
  storeDeps: StoreDeps;
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
    // Time spent paused does not count (a paused job is never timed out).
    if (record.paused_at == null && now > Date.parse(record.start_time) + record.timeout * 1000 + pausedMs(record, now)) {
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
  const won = await claimCompletion(deps, jobId);
  if (won !== null) await runCompletion(deps, pool, won.claimed, won.why);
}

export type ClaimDeps = Pick<CompletionDeps, 'ctx' | 'daemonId' | 'leaseMs' | 'presenceTimeoutMs' | 'peers' | 'present'>;

/**
 * Contends for completing the job (its queue is known to be empty): returns the claim this daemon wrote into the
 * record, or null if the job is not to be claimed now or another daemon has it.
 */
export async function claimCompletion(deps: ClaimDeps, jobId: string): Promise<{ claimed: Transition; why: string } | null> {
  // A daemon whose own heartbeat is failing could be taken for gone as soon as it claimed: it waits.
  if (!deps.present()) return null;
  const current = await getJob(deps.ctx.jobs, jobId);
  if (current === null) return null;
  const r = current.record;
  const round = r.round ?? 0;
  if (r.status !== 'pending' && r.status !== 'running' && r.status !== 'completing') return null;
  const recorded = r.status === 'completing' ? r.completion : null;
  // The claims log decides; the record mirrors it. Start from the newest attempt anyone has claimed: the record can
  // lag behind the log (a winner that has not written its claim yet, or whose write was overwritten by a late
  // renewal of the claimer it took over from, which a clustered nats-server before 2.9.21 can let through).
  let attempt = recorded?.attempt ?? 1;
  while ((await firstClaimant(deps.ctx, jobId, round, attempt + 1)) !== null) attempt++;
  let why = 'queue empty';
  for (;;) {
    const winner = await contend(deps.ctx, jobId, round, attempt, deps.daemonId);
    const onRecord = recorded !== null && recorded.claimed_by === winner && (recorded.attempt ?? 1) === attempt;
    if (winner === deps.daemonId) {
      // Won and not on record yet (or overwritten): write it. On record already: a claim this daemon no longer
      // works on (checks of one job never overlap), so it takes the next attempt like any other daemon would.
      if (!onRecord) break;
      why = 'this daemon gave up its own claim';
    } else {
      if (onRecord && Date.now() < Date.parse(recorded.lease_until)) return null;
      const peer = await deps.peers.judge(winner, deps.presenceTimeoutMs);
      if (!peer.gone) return null;
      why = `${winner} (attempt ${attempt}) is gone: ${peer.reason}`;
    }
    attempt++;
  }
  const claimed = await transitionJob(deps.ctx.jobs, jobId, (cur) => {
    if ((cur.round ?? 0) !== round) return null;
    if (cur.status === 'pending' || cur.status === 'running') return claimFor(cur, deps.daemonId, deps.leaseMs, null, attempt);
    const c = cur.status === 'completing' ? cur.completion : null;
    if (c !== null && (c.attempt ?? 1) <= attempt && !(c.claimed_by === deps.daemonId && c.attempt === attempt)) return claimFor(cur, deps.daemonId, deps.leaseMs, c, attempt);
    return null;
  });
  // Not written: the job moved on meanwhile (stopped, timed out) or a later attempt is on record.
  return claimed !== null && claimed.changed ? { claimed, why } : null;
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
    // Every batch has settled, so every result is stored: count them, and write the output's manifest, before the hook
    // (which may read it) and before the final status (a reader who sees the status finds the manifest). A store that
    // keeps failing does not hold the job forever: the job completes with the store's error and no count.
    let storeError: ErrorInfo | null = null;
    const resultsStored = await persist(deps, keeper, log, record.output == null ? 'counting the stored results' : 'writing the output manifest', () => settleStoredResults(deps.ctx, record, status, metrics, deps.storeDeps), { maxFailures: 8 }).catch((err: unknown) => {
      if (err instanceof ClaimLost || err instanceof ClaimAbandoned) throw err;
      storeError = toErrorInfo(err);
      log.error({ error: storeError }, 'the stored results could not be counted (or the manifest written)');
      return null;
    });
    // The hook never starts on a claim that is not confirmed current: nobody has contended for the next attempt,
    // this daemon's heartbeat is recent, and a write of the claim lands now.
    await persist(deps, keeper, log, 'confirming the claim', async () => {
      const next = await firstClaimant(deps.ctx, record.job_id, record.round ?? 0, claim.attempt + 1);
      if (next !== null) throw new ClaimLost(`${next} contends for attempt ${claim.attempt + 1}`);
      if (!deps.present()) throw new Error('this daemon\'s heartbeat is not current');
    });
    const confirmed = await keeper.write((r) => ({ ...r, completion: { ...r.completion!, hook_started_at: new Date().toISOString(), lease_until: new Date(Date.now() + deps.leaseMs).toISOString() } }));
    log.info({ revision: confirmed.revision, rerun: claim.rerun }, 'onJobComplete starting');
    const summary: JobSummary = { job_id: record.job_id, api_name: record.api_name, status, total_batch_count: record.total_batch_count, batch_metrics: metrics, attempt: claim.attempt, rerun: claim.rerun, output: record.output ?? null, results_stored: resultsStored };
    const started = performance.now();
    const outcome = await pool.runComplete({ kind: 'complete', job: jobSpecOf(record, pool.api), summary }, new AbortController().signal, () => 'shutdown');
    // A hook cut short by this daemon's shutdown did not fail: it is left to the next claimer, as if this one died.
    if (!outcome.ok && deps.closing()) throw new ClaimAbandoned(`onJobComplete was interrupted by the shutdown: ${outcome.error.message}`);
    let hookError: ErrorInfo | null = null;
    if (outcome.ok) log.info({ ms: Math.round(performance.now() - started) }, 'onJobComplete finished');
    else {
      hookError = toErrorInfo(outcome.error);
      log.error({ error: hookError, ms: Math.round(performance.now() - started) }, 'onJobComplete failed');
    }
    // The queue goes before the job ends, while the claim holds it `completing`: a replay can reopen the job the moment
    // it has ended, and a queue removed after that would take the replayed batches with it.
    await persist(deps, keeper, log, 'removing the job queue', () => discardQueue(deps.ctx, record), { maxFailures: 5 }).catch((err: unknown) => {
      if (err instanceof ClaimLost || err instanceof ClaimAbandoned) throw err;
      log.warn({ err }, 'removing the job queue failed; the job ends with it');
    });
    const final = await keeper.write((r) => ({
      ...r,
      status,
      end_time: new Date().toISOString(),
      batch_metrics: metrics,
      batches_in_queue: 0,
      results_stored: resultsStored,
      // The claim that completed the job stays on the record, for the record.
      completion: { ...r.completion!, lease_until: new Date().toISOString() },
      error: hookError ?? storeError ?? r.error,
    }));
    keeper.stop();
    log.info({ status, succeeded: metrics.succeeded, failed: metrics.failed, revision: final.revision }, 'job completed');
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
      if (err instanceof ClaimLost) throw err;
      if (deps.closing()) throw new ClaimAbandoned(`shutting down while ${what}: ${(err as Error).message}`);
      failures++;
      if (failures >= (opts.maxFailures ?? Infinity)) throw err;
      if (failures === 1 || failures % 10 === 0) log.warn({ err: (err as Error).message, failures }, `${what} failed; retrying`);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
