/** Public record shapes. Everything on the wire is snake_case (docs/PROTOCOL.md). */

export const TERMINAL_STATUSES = [
  'succeeded',
  'completed_with_failures',
  'worker_error',
  'worker_oom',
  'timed_out',
  'stopped',
  'enqueue_failed',
] as const;

export const ACTIVE_STATUSES = ['enqueuing', 'pending', 'running', 'completing'] as const;

export type TerminalStatus = (typeof TERMINAL_STATUSES)[number];
export type ActiveStatus = (typeof ACTIVE_STATUSES)[number];
export type JobStatusName = TerminalStatus | ActiveStatus;

export function isTerminal(status: JobStatusName): status is TerminalStatus {
  return (TERMINAL_STATUSES as readonly string[]).includes(status);
}

export interface BackoffOptions {
  /** Delay before the 2nd attempt, in milliseconds. */
  initial_ms: number;
  /** Multiplier per further attempt. */
  factor: number;
  /** Upper bound of any delay, in milliseconds. */
  max_ms: number;
  /** Random fraction (0–1) subtracted from each delay, to spread retries. */
  jitter: number;
}

export interface ErrorInfo {
  name: string;
  code?: string;
  message: string;
  stack?: string;
}

export interface BatchMetrics {
  succeeded: number;
  failed: number;
  /** Mean handleBatch wall time of succeeded attempts, in seconds. */
  avg_time_per_batch: number | null;
}

/** The job record stored in the `JETBATCH_JOBS` bucket under the job id. */
export interface JobRecord {
  job_id: string;
  api_name: string;
  status: JobStatusName;
  workers: number;
  total_batch_count: number;
  /** The job's own config (merged over the API's config by each daemon). */
  config: Record<string, unknown>;
  /** Job timeout in seconds, or null for none. */
  timeout: number | null;
  /** Per-batch timeout in seconds, or null for the API's default. */
  batch_timeout: number | null;
  /** Deliveries per batch before dead-lettering, or null for the API's default. */
  max_attempts: number | null;
  backoff: Partial<BackoffOptions> | null;
  /**
   * Deployed project version the job runs on; null (or absent, for publishers that do not deploy) means the API's
   * local folder, or the latest deployed version when the job is picked up.
   */
  project_version?: number | null;
  /** Fingerprint of the submission, so a resubmission with the same id can be told from a conflicting one. */
  spec_hash: string;
  /** ISO time the job was submitted. */
  start_time: string;
  /** ISO time the job reached a terminal status, else null. */
  end_time: string | null;
  /** ISO time after which a job still `enqueuing` is failed as `enqueue_failed`. */
  enqueue_deadline: string;
  /** Set for worker_error, worker_oom, enqueue_failed and similar. */
  error: ErrorInfo | null;
  /** Final figures, written when the job ends. */
  batch_metrics: BatchMetrics | null;
  batches_in_queue: number | null;
  /**
   * Completion round: 0 (or absent) until a dead-letter replay reopens an ended job, +1 each time. Claims and the
   * `completed` event are per round.
   */
  round?: number;
  /** Present while a daemon completes the job (runs onJobComplete, writes the final status); see CompletionClaim. */
  completion: CompletionClaim | null;
  /**
   * Among jobs of the same API with batches waiting, free threads go to the highest priority first, and in turn among
   * jobs of equal priority. Integer −1000…1000; absent (records of older publishers) means 0.
   */
  priority?: number;
  /** ISO time the job was paused (no daemon starts a new batch of it), or null/absent while it is not paused. */
  paused_at?: string | null;
  /** Milliseconds the job spent paused before the current pause: its job timeout does not run while it is paused. */
  paused_ms?: number;
  /** A streamed submission's progress (see fleet/stream-submit.ts); absent for a job submitted whole. */
  enqueue?: EnqueueCheckpoint | null;
  /** A job over stored data: what the fleet lists and enqueues (daemon/source-enqueuer.ts); absent otherwise. */
  source?: SourceSpec | null;
  /**
   * Items per batch of an `items` submission: batch N holds items N × batch_size … (N + 1) × batch_size − 1. Null for
   * ready-made batches (sizes vary); absent from publishers that do not write it. `results --per-item` needs it.
   */
  batch_size?: number | null;
  /**
   * Where the daemons write the job's results (`file:///dir/`, `obj://BUCKET/prefix/`, `s3://bucket/prefix/`, always
   * ending in `/`; see fleet/output.ts), instead of the results stream. Null or absent: the results stream.
   */
  output?: string | null;
  /**
   * Results stored for the job, counted when it completed (succeeded, completed_with_failures, worker_oom) and written
   * with its final status: parts under `output`, or distinct batch ids in the results stream. A reader has every
   * result once it has read this many. Null (or absent) while the job runs and for a job that ended early.
   */
  results_stored?: number | null;
}

export type SourceKind = 'delimited_files' | 'file_path_lister';

/** The stored data a job runs over (see fleet/source-spec.ts), as kept in its record. */
export interface SourceSpec {
  kind: SourceKind;
  /** Listing roots (file://, obj://, s3://), listed in this order. */
  paths: string[];
  /** Globs on the key relative to its root; none = every object. */
  includes: string[];
  excludes: string[];
  /** Items (delimited_files) or object URLs (file_path_lister) per batch. */
  batch_size: number;
  /** Malformed lines tolerated before the job ends `enqueue_failed`; null = no limit. */
  max_bad_lines: number | null;
}

/** How far a streamed submission got: renewed about every second while it publishes, final once it is `pending`. */
export interface EnqueueCheckpoint {
  /** Batches the stream acknowledged: batch ids 0 … batches − 1. */
  batches: number;
  /** SHA-256 (hex) of those batches' MessagePack bytes, in order: a resumed submission must match it. */
  digest: string;
  /** Malformed input lines the submitter skipped (counted and reported, never silently dropped). */
  bad_lines: number;
  /**
   * A job over stored data: the daemon enqueuing it (its claim), absent or null until one claims it. Another daemon
   * takes the enqueue over only when `lease_until` has passed *and* the owner is gone (the completion claim's rule).
   */
  owner?: string | null;
  /** ISO time until which the owner's claim is certainly current; renewed with each checkpoint. */
  lease_until?: string | null;
  /**
   * True once every batch is published (written by the transition to `pending`). The enqueue never starts again: a
   * dead-letter replay turns the job `enqueuing` again, and an enqueuer (or a resubmission) that took that for an
   * unfinished enqueue would re-read the input while the replay runs.
   */
  done?: boolean;
}

/**
 * A daemon's claim on completing a job. The claimer renews `lease_until` while it works. Another daemon takes the
 * claim over only when the lease has lapsed *and* the claimer is gone (its presence entry unchanged for its
 * presence timeout, or deleted); a lapsed lease alone (renewals failing while NATS elects a leader, a busy host)
 * is not enough.
 */
export interface CompletionClaim {
  /** Daemon id of the claimer. */
  claimed_by: string;
  /** 1 for the first claim of this completion, +1 for every takeover. */
  attempt: number;
  /** ISO time of the claim. */
  claimed_at: string;
  /** ISO time until which the claim is certainly current (renewed every lease/3 by a live claimer). */
  lease_until: string;
  /** ISO time the claimer confirmed its claim and started onJobComplete; null before. */
  hook_started_at: string | null;
  /** Whether some claimer of this completion started onJobComplete before this claim (the hook may have run). */
  rerun: boolean;
  /** The claim this one took over, if any. */
  took_over?: { claimed_by: string; attempt: number; hook_started_at: string | null; lease_until: string };
}

/** An entry of the JETBATCH_DAEMONS bucket: one per running daemon, rewritten every heartbeat. */
export interface DaemonRecord {
  daemon: string;
  host: string;
  pid: number;
  apis: string[];
  /** ISO time the daemon started. */
  started: string;
  /** ISO time of the heartbeat (the writer's clock: informative only; liveness is judged by revisions). */
  last_seen: string;
  /** The daemon counts as gone once its entry has not changed for this long (ms) or is deleted. */
  presence_timeout_ms: number;
  /** Batches this daemon can run at once per API (threads × concurrency): the fleet's capacity, for scheduling. */
  lanes?: Record<string, number>;
  /** Batches running (inside handleBatch) on this daemon per job id, at the time of the heartbeat. */
  running?: Record<string, number>;
  /** APIs whose project this daemon cannot load (missing folder, no handler, import error), with the error. */
  unhealthy?: Record<string, ErrorInfo>;
}

/** What `status` returns: the record plus live progress, in the anchor's vocabulary. */
export interface JobStatus {
  job_id: string;
  api_name: string;
  status: JobStatusName;
  workers: number;
  /** The job's scheduling priority (higher first; 0 by default). */
  priority: number;
  /** ISO time the job was paused, or null when it is not paused. */
  paused_at: string | null;
  total_batch_count: number;
  batches_in_queue: number;
  /** Batches running now across the fleet, as the daemons last reported (heartbeats, at most ~2 s old). */
  running_batches: number;
  /** How many daemons those running batches are on. */
  running_daemons: number;
  batch_metrics: BatchMetrics;
  start_time: string;
  end_time: string | null;
  /** Job timeout in seconds, counted from start_time without paused time; null = none (no default applies). */
  timeout: number | null;
  /** Deliveries per batch before dead-lettering, as the job set it; null = the API's (see from_api_config). */
  max_attempts: number | null;
  /** Per-batch timeout in seconds, as the job set it; null = the API's (see from_api_config). */
  batch_timeout: number | null;
  /** Retry delays as the job set them; null, or the keys it leaves out, = the API's (see from_api_config). */
  backoff: Partial<BackoffOptions> | null;
  /**
   * The settings the job leaves, wholly or partly, to the API's config. Each daemon applies its own config of the
   * API (its YAML; `max_attempts` 3, `batch_timeout` 600 s, backoff 1 s × 2 up to 60 s, jitter 0.2 where the YAML
   * sets none) to the batches it runs, so the client cannot know one value in effect for the fleet.
   */
  from_api_config: Array<'max_attempts' | 'batch_timeout' | 'backoff'>;
  config: Record<string, unknown>;
  error?: ErrorInfo;
  /** The completion claim, while a daemon completes the job and on a job that completed: who ran onJobComplete. */
  completion?: CompletionClaim;
  /** Where the results are written (a store URL ending in `/`), or null for the results stream. */
  output: string | null;
  /** Results stored, once the job completed (see JobRecord.results_stored); null before and for early ends. */
  results_stored: number | null;
  /**
   * How a streamed or stored-data submission is enqueuing (or was): batches published so far, malformed input lines
   * skipped, and for stored data the daemon enqueuing it; null for a job submitted whole.
   */
  enqueue: { batches: number; bad_lines: number; owner: string | null; done: boolean } | null;
}

/** Handed to the handler constructor: the anchor's fields plus what is useful. */
export interface JobSpec {
  job_id: string;
  api_name: string;
  /** The API's config deep-merged under the job's config (job wins). */
  config: Record<string, unknown>;
  workers: number;
  /** Scheduling priority among the API's jobs (higher first). */
  priority: number;
  total_batch_count: number;
  start_time: string;
  timeout: number | null;
  batch_timeout: number;
  max_attempts: number;
}

export interface JobSummary {
  job_id: string;
  api_name: string;
  status: 'succeeded' | 'completed_with_failures' | 'worker_oom';
  total_batch_count: number;
  batch_metrics: BatchMetrics;
  /** Which claim of this completion runs the hook: 1 normally; more after a claimer was found gone. */
  attempt: number;
  /**
   * True if an earlier claimer of this completion had started onJobComplete and was then found gone (killed, or
   * frozen or cut off from NATS past its presence timeout): its side effects may have happened, in part or whole.
   */
  rerun: boolean;
  /** Where the results are written (a store URL ending in `/`; the manifest is `<output><job_id>/manifest.json`), or null. */
  output: string | null;
  /** Results stored (parts of the output, or results in the stream); null if they could not be counted. */
  results_stored: number | null;
}

/** An entry of the JETBATCH_APIS bucket, refreshed by every daemon serving the API every 30 s. */
export interface ApiRecord {
  api_name: string;
  /** ISO time a daemon last confirmed it serves the API. */
  last_seen: string;
  /** Id of the daemon that wrote the entry last. */
  daemon: string;
}

/** What `apis` returns: the registration, and what serves the API now (from the live daemons' heartbeats). */
export interface ApiStatus extends ApiRecord {
  /** Daemons serving the API now; 0 means a job submitted to it waits until one starts. */
  live_daemons: number;
  /** Batches those daemons can run at once: their threads × concurrency for this API, summed. */
  lanes: number;
  /** Of the live daemons, those that cannot load the API's project: its jobs fail there as worker_error. */
  unhealthy_daemons: number;
  /** The error one of those daemons reported, or null when none is unhealthy. */
  error: ErrorInfo | null;
}

/** An API counts as served while some daemon confirmed it within this many ms. */
export const API_STALE_MS = 10 * 60_000;

/** A message of the dead-letter stream (MessagePack). */
export interface DeadLetter {
  job_id: string;
  api_name: string;
  batch_id: string;
  attempts: number;
  generation: number;
  error: ErrorInfo;
  /** The original MessagePack bytes of the batch, untouched. */
  payload: Uint8Array;
  failed_at: string;
  host: string;
}

/** A message of the results stream (MessagePack). */
export interface BatchResult {
  job_id: string;
  batch_id: string;
  result: unknown;
  duration_ms: number;
  attempt: number;
}
