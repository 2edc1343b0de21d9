/**
 * The TypeScript client: submit jobs, read status, results and dead letters, pause, resume and stop jobs. Usable
 * from any program and from inside handlers (ctx.client) to chain jobs. It speaks the same protocol as
 * docs/PROTOCOL.md.
 */
import { readSubject } from './read-subject.js';
import { outputResults, perItem, streamResultsByBatch, type ItemResult } from './results.js';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectNats, type NatsOptions } from '../fleet/connect.js';
import { openContext, type FleetContext } from '../fleet/context.js';
import { ErrorCodes, JetbatchError } from '../errors.js';
import { endJob, pauseJob, resumeJob } from '../fleet/lifecycle.js';
import { readActivity, readCapacity } from '../fleet/activity.js';
import { jobStatus } from '../fleet/progress.js';
import { API_NAME_PATTERN, Buckets, Streams, Subjects, decodeValue, maxBodyBytes } from '../fleet/protocol.js';
import { kvKeys } from '../fleet/kv-keys.js';
import { getJob, listJobs } from '../fleet/registry.js';
import { deployProject, listDeployments, type Deployment } from '../fleet/deployments.js';
import { readDeadLetters, replayDeadLetters, type StoredDeadLetter } from './dead-letters.js';
import { submitPrepared, type SubmitProgress } from '../fleet/submit.js';
import { checkStreamSettings, type StreamSettingsInput } from '../fleet/stream-settings.js';
import { inBatches } from '../util/batching.js';
import { EncodedBatch, submitStream, type StreamProgress } from '../fleet/stream-submit.js';
import { namesStoredData, prepareSourceJob, submitSource } from '../fleet/source-submit.js';
import { checkJobId, checkSubmission, prepareSubmission, type SubmissionInput } from '../fleet/submission.js';
import type { ApiRecord, ApiStatus, BatchResult, JobRecord, JobStatus } from '../types.js';
import { isTerminal } from '../types.js';

export interface SubmitOptions {
  /** Called after every published batch (for progress bars). */
  onEnqueued?: (progress: SubmitProgress) => void;
  /** Most batches in one job. @defaultValue 1,000,000 */
  maxBatches?: number;
  /**
   * Refuse (JB_UNKNOWN_API) when no live daemon serves the API now, instead of leaving the job `pending` until one
   * starts. @defaultValue false
   */
  requireDaemon?: boolean;
}

export interface StreamSubmitClientOptions {
  /** Called after every acknowledged batch (for progress bars). */
  onProgress?: (progress: StreamProgress) => void;
  /** Malformed input lines the caller skipped so far: stored with each checkpoint (see EnqueueCheckpoint). */
  badLines?: () => number;
  /** As in SubmitOptions. @defaultValue false */
  requireDaemon?: boolean;
  /**
   * With `batch_size` in the settings: `source` yields the batches already cut rather than items, each of exactly
   * `batch_size` items but the last (which may hold fewer), so batch N starts at item N × batch_size as the record's
   * `batch_size` says (`results --per-item` relies on it). @defaultValue false
   */
  grouped?: boolean;
}

export interface WaitOptions {
  /** Called with each status read while waiting. */
  onStatus?: (status: JobStatus) => void;
  /** Poll interval in milliseconds. @defaultValue 500 */
  intervalMs?: number;
  /** Give up after this many milliseconds (JB_TIMEOUT). @defaultValue no limit */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface ResultsOptions {
  /**
   * `completion`: the order the batches finished. `batch`: by numeric batch id. Both stream with bounded memory. A job
   * with an `output` is always read in batch order (its parts, opened by batch id 0 … total − 1, not listed).
   * @defaultValue 'completion'
   */
  order?: 'completion' | 'batch';
}

/** The record a lifecycle operation returned, or JB_JOB_NOT_FOUND when it found no such job (it returned null). */
function found(jobId: string, record: JobRecord | null): JobRecord {
  if (record === null) throw new JetbatchError(ErrorCodes.JOB_NOT_FOUND, `job ${jobId} not found`);
  return record;
}

export class JetbatchClient {
  readonly #ctx: FleetContext;
  readonly #ownsConnection: boolean;
  #closing: Promise<void> | undefined;

  private constructor(ctx: FleetContext, ownsConnection: boolean) {
    this.#ctx = ctx;
    this.#ownsConnection = ownsConnection;
  }

  /** Connects to NATS (failing fast rather than retrying forever) and opens the jetbatch buckets. */
  static async connect(options: NatsOptions): Promise<JetbatchClient> {
    const nc = await connectNats(options, { reconnectForever: false });
    try {
      return new JetbatchClient(await openContext(nc), true);
    } catch (err) {
      await nc.close();
      throw err;
    }
  }

  /** Wraps an existing connection; close() then leaves the connection open. */
  static async fromConnection(nc: NatsConnection): Promise<JetbatchClient> {
    return new JetbatchClient(await openContext(nc), false);
  }

  /**
   * Submits a job and returns its record once every batch is enqueued. Resubmitting with the same `job_id` and
   * the same content enqueues nothing twice (a half-finished enqueue is completed); different content under the
   * same id fails with JB_JOB_CONFLICT.
   */
  async submit(input: SubmissionInput, options: SubmitOptions = {}): Promise<JobRecord> {
    if (namesStoredData(input)) {
      // A job over stored data: registered here, enqueued by a daemon serving the API (status `enqueuing` until then).
      const job = prepareSourceJob(checkSubmission(input));
      if (options.requireDaemon === true && ((await readCapacity(this.#ctx)).get(job.api_name)?.daemons ?? 0) === 0) {
        throw new JetbatchError(ErrorCodes.UNKNOWN_API, `no live daemon serves the API "${job.api_name}" now (see \`jetbatch apis\`); nothing was submitted`);
      }
      return submitSource(this.#ctx, job);
    }
    const prepared = prepareSubmission(input, {
      maxBatchBytes: maxBodyBytes(this.#ctx.nc),
      maxBatches: options.maxBatches ?? 1_000_000,
    });
    if (options.requireDaemon === true && ((await readCapacity(this.#ctx)).get(prepared.api_name)?.daemons ?? 0) === 0) {
      throw new JetbatchError(ErrorCodes.UNKNOWN_API, `no live daemon serves the API "${prepared.api_name}" now (see \`jetbatch apis\`); nothing was submitted`);
    }
    return submitPrepared(this.#ctx, prepared, options.onEnqueued);
  }

  /**
   * Submits a job whose input is a stream of any length, published as it is read with bounded memory (see
   * fleet/stream-submit.ts). With `batch_size` in `settings`, `source` yields items, grouped into batches here;
   * without it, `source` yields batches (arrays of items). The same job id and settings submitted again after an
   * interruption continue where the first submission's last checkpoint left off.
   */
  async submitStream(settings: StreamSettingsInput, source: AsyncIterable<unknown>, options: StreamSubmitClientOptions = {}): Promise<JobRecord> {
    const checked = checkStreamSettings(settings);
    if (options.requireDaemon === true && ((await readCapacity(this.#ctx)).get(checked.api_name)?.daemons ?? 0) === 0) {
      throw new JetbatchError(ErrorCodes.UNKNOWN_API, `no live daemon serves the API "${checked.api_name}" now (see \`jetbatch apis\`); nothing was submitted`);
    }
    const batches = checked.batch_size === null || options.grouped === true ? asBatches(source, checked.batch_size) : inBatches(source, checked.batch_size);
    return submitStream(this.#ctx, checked, batches, { maxBatchBytes: maxBodyBytes(this.#ctx.nc), onProgress: options.onProgress, badLines: options.badLines });
  }

  async record(jobId: string): Promise<JobRecord> {
    checkJobId(jobId);
    const v = await getJob(this.#ctx.jobs, jobId);
    if (v === null) throw new JetbatchError(ErrorCodes.JOB_NOT_FOUND, `job ${jobId} not found`);
    return v.record;
  }

  async status(jobId: string): Promise<JobStatus> {
    return jobStatus(this.#ctx, await this.record(jobId));
  }

  /** Jobs in the registry, newest first, optionally of one API. */
  async jobs(filter: { api?: string; limit?: number } = {}): Promise<JobStatus[]> {
    if (filter.api !== undefined && (typeof filter.api !== 'string' || !API_NAME_PATTERN.test(filter.api))) {
      throw new JetbatchError(ErrorCodes.INVALID_REQUEST, `api: must match ${API_NAME_PATTERN.source}, got ${JSON.stringify(filter.api)}`);
    }
    if (filter.limit !== undefined && !(Number.isInteger(filter.limit) && filter.limit >= 1)) {
      throw new JetbatchError(ErrorCodes.INVALID_REQUEST, `limit: must be an integer ≥ 1, got ${JSON.stringify(filter.limit)}`);
    }
    const records = await listJobs(this.#ctx, filter);
    const activity = await readActivity(this.#ctx);
    return Promise.all(records.map((r) => jobStatus(this.#ctx, r, activity)));
  }

  /**
   * Polls until the job reaches a terminal status and returns that status. A poll that fails for a reason other
   * than jetbatch's own (a request timing out while NATS elects a leader, a reconnect) is retried until the timeout.
   */
  async wait(jobId: string, options: WaitOptions = {}): Promise<JobStatus> {
    const interval = options.intervalMs ?? 500;
    const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
    for (;;) {
      let status: JobStatus;
      try {
        status = await this.status(jobId);
      } catch (err) {
        if (err instanceof JetbatchError || Date.now() > deadline || options.signal?.aborted === true) throw err;
        await new Promise((r) => setTimeout(r, interval));
        continue;
      }
      options.onStatus?.(status);
      if (isTerminal(status.status)) return status;
      if (Date.now() > deadline) throw new JetbatchError(ErrorCodes.TIMEOUT, `job ${jobId} still ${status.status} after ${options.timeoutMs} ms`);
      if (options.signal?.aborted) throw options.signal.reason;
      await new Promise((r) => setTimeout(r, interval));
    }
  }

  /**
   * Every stored batch result of a job, each once (a batch redelivered after its result was stored appears once).
   * From the job's `output` when it has one (its parts in batch order), else from the results stream: `completion`
   * order (default) as the stream holds them, `batch` order by ascending batch id (numerically: "2" before "10").
   * Memory stays bounded either way (one result at a time, plus 8 bytes per batch for the stream in batch order).
   * Each result carries its `batch_id`: batch N of an `items` submission holds items N·batch_size … N·batch_size +
   * batch_size − 1 (`itemResults` does that join). A result read from an output is JSON (64-bit integers beyond
   * 2^53 as strings, binary as `{"$binary": base64}`); from the stream, decoded MessagePack.
   */
  async *results(jobId: string, options: ResultsOptions = {}): AsyncGenerator<BatchResult> {
    const record = await this.record(jobId);
    if (record.output != null) {
      yield* outputResults(this.#ctx, record);
      return;
    }
    if (options.order === 'batch') {
      yield* streamResultsByBatch(this.#ctx, record);
      return;
    }
    const subject = Subjects.result(record.api_name, record.job_id);
    const seen = new Set<string>();
    for await (const m of readSubject(this.#ctx, Streams.results, subject)) {
      const value = decodeValue(m.data) as BatchResult;
      if (seen.has(value.batch_id)) continue;
      seen.add(value.batch_id);
      yield value;
    }
  }

  /**
   * One result per input item, in input order, with its `item_index` (batch id × batch_size + position): for a job
   * submitted as `items` whose handler returns one value per item. JB_PER_ITEM_UNAVAILABLE for a job of ready-made
   * batches, or at the first batch whose result is not an array of one value per item.
   */
  async *itemResults(jobId: string): AsyncGenerator<ItemResult> {
    const record = await this.record(jobId);
    yield* perItem(record, record.output != null ? outputResults(this.#ctx, record) : streamResultsByBatch(this.#ctx, record));
  }

  /** The job's dead letters: each failed batch with its payload, attempts and last error. */
  async deadLetters(jobId: string): Promise<StoredDeadLetter[]> {
    return readDeadLetters(this.#ctx, await this.record(jobId));
  }

  /**
   * Re-enqueues every dead-lettered batch of the job as a new attempt of the same job (same batch ids); a job that
   * completed with failures reopens and completes again.
   */
  async replayDeadLetters(jobId: string): Promise<{ record: JobRecord; replayed: number }> {
    checkJobId(jobId);
    return replayDeadLetters(this.#ctx, jobId);
  }

  /** Stops a job (paused or not): aborts its in-flight batches on every daemon, discards its queue, marks it `stopped`. */
  async stop(jobId: string): Promise<JobRecord> {
    checkJobId(jobId);
    return found(jobId, (await endJob(this.#ctx, jobId, 'stopped'))?.record ?? null);
  }

  /**
   * Pauses an active job: no daemon starts a new batch of it (batches already running finish); its queue, counts and
   * consumer stay, the pause survives daemon restarts, and its job timeout does not run while it is paused. Resolves
   * with the stored record once no batch of the job can start anywhere (about 1.5 s after the pause is recorded).
   * Pausing a paused job changes nothing (it too resolves no earlier than 1.5 s after the pause was recorded).
   * JB_JOB_ENDED for a job that has ended or is completing, JB_JOB_NOT_FOUND for an unknown job.
   */
  async pause(jobId: string): Promise<JobRecord> {
    checkJobId(jobId);
    return found(jobId, await pauseJob(this.#ctx, jobId));
  }

  /**
   * Resumes a paused job where it stopped (daemons start its batches again; its timeout deadline has moved by the
   * time it spent paused). Resuming an active job that is not paused changes nothing and resolves with its record.
   * JB_JOB_ENDED for a job that has ended or is completing, JB_JOB_NOT_FOUND for an unknown job.
   */
  async resume(jobId: string): Promise<JobRecord> {
    checkJobId(jobId);
    return found(jobId, await resumeJob(this.#ctx, jobId));
  }

  /**
   * Packs a handler project folder (the project file rules apply) and deploys it to the fleet as the next version
   * of `api`; daemons serving the API as `deployed: true` run new jobs on it without a restart.
   */
  async deploy(dir: string, api: string): Promise<Deployment & { skipped: string[] }> {
    return deployProject(this.#ctx, dir, api);
  }

  /** Every deployed version of every API, newest first per API. */
  async deployments(): Promise<Deployment[]> {
    return listDeployments(this.#ctx);
  }

  /** APIs registered by the fleet. */
  async apis(): Promise<ApiStatus[]> {
    const capacity = await readCapacity(this.#ctx);
    const out: ApiStatus[] = [];
    for (const k of await kvKeys(this.#ctx, Buckets.apis)) {
      const e = await this.#ctx.apis.get(k);
      if (e === null || e.operation !== 'PUT' || e.value.length === 0) continue;
      const record = e.json<ApiRecord>();
      const live = capacity.get(record.api_name);
      out.push({ ...record, live_daemons: live?.daemons ?? 0, lanes: live?.lanes ?? 0, unhealthy_daemons: live?.unhealthy ?? 0, error: live?.error ?? null });
    }
    return out.sort((a, b) => a.api_name.localeCompare(b.api_name));
  }

  /** Closes the connection if this client opened it. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#ownsConnection ? this.#ctx.nc.drain().catch(() => this.#ctx.nc.close()) : Promise.resolve();
    return this.#closing;
  }
}

/**
 * A stream of batches as given; anything but a non-empty array (or a batch the CLI's input thread encoded) is refused
 * with its position. With `size` (items cut by the caller), every batch but the last holds exactly `size` items, so
 * item indices follow from batch ids.
 */
async function* asBatches(source: AsyncIterable<unknown>, size: number | null): AsyncGenerator<unknown[] | EncodedBatch> {
  let i = 0;
  let short: number | null = null;
  for await (const item of source) {
    const b = item instanceof EncodedBatch || (Array.isArray(item) && item.length > 0) ? (item as unknown[] | EncodedBatch) : null;
    if (b === null) throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `batch ${i}: must be a non-empty array of items`);
    if (size !== null && b.length > size) throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `batch ${i}: holds ${b.length} items, more than batch_size ${size}`);
    if (short !== null) throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `batch ${short}: holds fewer than batch_size ${size} items but is not the last batch`);
    if (size !== null && b.length < size) short = i;
    i++;
    yield b;
  }
}
