/**
 * Submission of a job whose batches arrive as a stream (a JSON Lines file of any size, stdin): each batch is encoded
 * and published as it comes, with a bounded window of unacknowledged publishes, so memory does not grow with the
 * input. The record stays `enqueuing` until the stream ends, and carries a checkpoint, renewed about every second:
 * how many batches are acknowledged by the stream (a prefix) and a digest of their bytes, with the enqueue deadline
 * pushed forward.
 *
 * Resuming: the same job id and settings submitted again after an interruption re-reads the input, checks that
 * its first `checkpoint.batches` batches hash to the checkpoint's digest (else JB_JOB_CONFLICT, nothing published),
 * skips them, and publishes the rest. Batches published after the last checkpoint and before the interruption are
 * published again with the same Nats-Msg-Id, which the batches stream drops as duplicates within its duplicate
 * window (10 minutes); the enqueue deadline (RESUME_WITHIN_MS after the last checkpoint) ends a job not resumed
 * in that time, so no batch runs twice.
 */
import { createHash, type Hash } from 'node:crypto';
import type { PubAck } from '@nats-io/jetstream';
import type { FleetContext } from './context.js';
import { ErrorCodes, JetbatchError, toErrorInfo } from '../errors.js';
import { discardQueue, endJob } from './lifecycle.js';
import { transitionJob } from './registry.js';
import { checkApiServed, publishBatch, registerJob, type SubmitProgress } from './submit.js';
import type { StreamSettings } from './stream-settings.js';
import { encodeBatch } from './items.js';
import type { EnqueueCheckpoint, JobRecord } from '../types.js';

/** PubAcks awaited at once, and the most bytes they may hold: memory stays bounded whatever the batch size. */
const PUBLISH_WINDOW = 256;
const PUBLISH_WINDOW_BYTES = 8 * 1024 * 1024;
/** How often (ms) the checkpoint is written while publishing. */
const CHECKPOINT_MS = 1000;
/**
 * How long after its last checkpoint an interrupted submission may be resumed (the enqueue deadline then ends the
 * job): inside the batches stream's 10-minute duplicate window, so what was published after that checkpoint is
 * still recognised as duplicates when published again.
 */
export const RESUME_WITHIN_MS = 9 * 60_000;

const streamDeadline = (now: number): string => new Date(now + RESUME_WITHIN_MS).toISOString();

export interface StreamProgress extends SubmitProgress {
  /** Batches of an interrupted submission skipped because its checkpoint covers them. */
  skipped: number;
}

export interface StreamSubmitOptions {
  /** Largest encoded batch accepted, in bytes. */
  maxBatchBytes: number;
  onProgress?: (progress: StreamProgress) => void;
  /** Read by the caller after each checkpoint, stored with it (e.g. malformed input lines skipped so far). */
  badLines?: () => number;
  /**
   * A fleet-side enqueue's claim (daemon/source-enqueuer.ts): each checkpoint and the final write land only while
   * the record's `enqueue.owner` is still `owner`, and renew its `lease_until`; once they do not, the publisher stops
   * with EnqueueClaimLost (what it published meanwhile has the msg ids the new owner publishes again).
   */
  claim?: { owner: string; leaseMs: number };
}

/**
 * A batch already encoded and checked elsewhere (the CLI's input thread, cli/input-thread.ts): its MessagePack bytes
 * and its item count. A source may yield these instead of arrays of items; not part of the package's public API (its
 * items are trusted to have passed checkShape).
 */
export class EncodedBatch {
  constructor(
    readonly bytes: Uint8Array,
    readonly length: number,
  ) {}
}

/** The job's enqueue was taken over by another daemon (its claim was found gone): this publisher stops. */
export class EnqueueClaimLost extends Error {
  override name = 'EnqueueClaimLost';
}

/**
 * Publishes the batches of `source` as job `settings.job_id`. Returns the record once the job is `pending` (or as
 * found when it had already finished enqueuing). A batch that cannot be encoded or is too large ends the job as
 * `enqueue_failed` and throws; so does a stop while enqueuing (JB_JOB_ENDED).
 */
export async function submitStream(ctx: FleetContext, settings: StreamSettings, source: AsyncIterable<unknown[] | EncodedBatch>, options: StreamSubmitOptions): Promise<JobRecord> {
  await checkApiServed(ctx, settings.api_name);
  // An empty source creates no job: read the first batch before anything is written.
  const it = source[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done === true) throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, 'the input holds no items');
  const batches: AsyncIterable<unknown[] | EncodedBatch> = {
    async *[Symbol.asyncIterator]() {
      yield first.value;
      for (let r = await it.next(); r.done !== true; r = await it.next()) yield r.value;
    },
  };
  const now = Date.now();
  const start: EnqueueCheckpoint = { batches: 0, digest: createHash('sha256').digest('hex'), bad_lines: 0 };
  const existing = await registerJob(ctx, settings, now, { total_batch_count: 0, enqueue_deadline: streamDeadline(now), enqueue: start });
  // Enqueued already (`enqueuing` again only for a dead-letter replay, which must not be mixed with a resume).
  if (existing !== null && (existing.status !== 'enqueuing' || existing.enqueue?.done === true)) return existing;
  const resumeFrom = existing?.enqueue ?? start;
  return publishStream(ctx, settings, batches, options, resumeFrom);
}

/**
 * Publishes `source` as the batches of an `enqueuing` job, from the checkpoint `resumeFrom` (its first batches are
 * read again, checked against its digest and skipped). The caller registered the job; used by submitStream and by
 * the daemon enqueuing a job over stored data.
 */
export function publishStream(
  ctx: FleetContext,
  settings: Pick<StreamSettings, 'job_id' | 'api_name'>,
  source: AsyncIterable<unknown[] | EncodedBatch>,
  options: StreamSubmitOptions,
  resumeFrom: EnqueueCheckpoint,
): Promise<JobRecord> {
  return new StreamPublisher(ctx, settings, options, resumeFrom).run(source);
}

class StreamPublisher {
  readonly #ctx: FleetContext;
  readonly #settings: Pick<StreamSettings, 'job_id' | 'api_name'>;
  readonly #options: StreamSubmitOptions;
  readonly #resume: EnqueueCheckpoint;
  readonly #hash: Hash = createHash('sha256');
  readonly #window: Array<{ ack: Promise<PubAck>; bytes: number }> = [];
  #windowBytes = 0;
  /** Batches read from the source (the next batch id). */
  #read = 0;
  /** Batches acknowledged by the stream, or skipped by the checkpoint: always a prefix. */
  #acked = 0;
  #lastCheckpoint = performance.now();

  constructor(ctx: FleetContext, settings: Pick<StreamSettings, 'job_id' | 'api_name'>, options: StreamSubmitOptions, resume: EnqueueCheckpoint) {
    this.#ctx = ctx;
    this.#settings = settings;
    this.#options = options;
    this.#resume = resume;
  }

  async run(source: AsyncIterable<unknown[] | EncodedBatch>): Promise<JobRecord> {
    try {
      for await (const items of source) await this.#add(items);
      if (this.#read < this.#resume.batches) {
        throw new JetbatchError(ErrorCodes.JOB_CONFLICT, `job ${this.#settings.job_id}: the input has ${this.#read} batches, fewer than the ${this.#resume.batches} an earlier submission of this id already enqueued`);
      }
      await this.#drain();
    } catch (err) {
      await Promise.allSettled(this.#window.map((w) => w.ack));
      throw await this.#failed(err);
    }
    return this.#finish();
  }

  async #add(batch: unknown[] | EncodedBatch): Promise<void> {
    const index = this.#read++;
    const bytes = batch instanceof EncodedBatch ? batch.bytes : encodeBatch(batch, index);
    if (bytes.byteLength > this.#options.maxBatchBytes) {
      throw new JetbatchError(ErrorCodes.PAYLOAD_TOO_LARGE, `batch ${index} is ${bytes.byteLength} bytes encoded; the limit is ${this.#options.maxBatchBytes} (use a smaller batch size)`);
    }
    this.#hash.update(bytes);
    if (index < this.#resume.batches) {
      // Enqueued by the interrupted submission: checked against its digest once the whole prefix is read.
      if (index === this.#resume.batches - 1) this.#verifyPrefix();
      this.#acked = index + 1;
      this.#options.onProgress?.({ enqueued: this.#acked, total: this.#read, skipped: this.#acked });
      return;
    }
    const ack = publishBatch(this.#ctx, this.#settings.api_name, this.#settings.job_id, index, bytes);
    this.#window.push({ ack, bytes: bytes.byteLength });
    this.#windowBytes += bytes.byteLength;
    while (this.#window.length >= PUBLISH_WINDOW || this.#windowBytes > PUBLISH_WINDOW_BYTES) await this.#settleOldest();
    if (performance.now() - this.#lastCheckpoint >= CHECKPOINT_MS) await this.#checkpoint();
  }

  #verifyPrefix(): void {
    if (this.#hash.copy().digest('hex') === this.#resume.digest) return;
    throw new JetbatchError(ErrorCodes.JOB_CONFLICT, `job ${this.#settings.job_id}: the input's first ${this.#resume.batches} batches differ from those an earlier submission of this id enqueued; pick another job id`);
  }

  async #settleOldest(): Promise<void> {
    const oldest = this.#window.shift()!;
    await oldest.ack;
    this.#windowBytes -= oldest.bytes;
    this.#acked++;
    this.#options.onProgress?.({ enqueued: this.#acked, total: this.#read, skipped: Math.min(this.#acked, this.#resume.batches) });
  }

  async #drain(): Promise<void> {
    while (this.#window.length > 0) await this.#settleOldest();
  }

  /** Waits for every publish so far, then records the acknowledged prefix; fails if the job ended meanwhile. */
  async #checkpoint(): Promise<void> {
    await this.#drain();
    this.#lastCheckpoint = performance.now();
    const checkpoint = this.#currentCheckpoint();
    const done = await transitionJob(this.#ctx.jobs, this.#settings.job_id, (current) =>
      current.status === 'enqueuing' && this.#holds(current)
        ? { ...current, total_batch_count: checkpoint.batches, enqueue: checkpoint, enqueue_deadline: streamDeadline(Date.now()) }
        : null,
    );
    if (done === null) throw new JetbatchError(ErrorCodes.JOB_NOT_FOUND, `job ${this.#settings.job_id} was removed during submission`);
    if (done.record.status !== 'enqueuing') {
      throw new JetbatchError(ErrorCodes.JOB_ENDED, `job ${this.#settings.job_id} ended as ${done.record.status} while its batches were being enqueued`);
    }
    if (!done.changed) throw this.#claimLost(done.record);
  }

  /** Whether the record still names this publisher's claim (always, for a submitter: it holds none). */
  #holds(current: JobRecord): boolean {
    return this.#options.claim === undefined || current.enqueue?.owner === this.#options.claim.owner;
  }

  #claimLost(current: JobRecord): EnqueueClaimLost {
    return new EnqueueClaimLost(`job ${this.#settings.job_id}: the enqueue is now claimed by ${current.enqueue?.owner ?? 'nobody'}`);
  }

  #currentCheckpoint(): EnqueueCheckpoint {
    const checkpoint: EnqueueCheckpoint = { batches: this.#acked, digest: this.#hash.copy().digest('hex'), bad_lines: this.#options.badLines?.() ?? 0 };
    const claim = this.#options.claim;
    if (claim !== undefined) {
      checkpoint.owner = claim.owner;
      checkpoint.lease_until = new Date(Date.now() + claim.leaseMs).toISOString();
    }
    return checkpoint;
  }

  async #finish(): Promise<JobRecord> {
    const checkpoint: EnqueueCheckpoint = { ...this.#currentCheckpoint(), done: true };
    // A claim ends with the enqueue: the owner stays on record, its lease ends now.
    if (checkpoint.lease_until != null) checkpoint.lease_until = new Date().toISOString();
    const done = await transitionJob(this.#ctx.jobs, this.#settings.job_id, (current) =>
      current.status === 'enqueuing' && this.#holds(current) ? { ...current, status: 'pending', total_batch_count: checkpoint.batches, enqueue: checkpoint } : null,
    );
    if (done === null) throw new JetbatchError(ErrorCodes.JOB_NOT_FOUND, `job ${this.#settings.job_id} was removed during submission`);
    if (!done.changed && done.record.status === 'enqueuing') throw this.#claimLost(done.record);
    if (!done.changed && done.record.status !== 'pending' && done.record.end_time !== null) {
      await discardQueue(this.#ctx, done.record);
      throw new JetbatchError(ErrorCodes.JOB_ENDED, `job ${this.#settings.job_id} ended as ${done.record.status} while its batches were being enqueued`);
    }
    return done.record;
  }

  /**
   * A failure while enqueuing. Bad input (a batch that cannot be encoded, too large, too few batches to resume)
   * ends the job as `enqueue_failed` and discards what was queued: resubmitting cannot fix it. Anything else (a
   * lost connection, the process interrupted) leaves the job `enqueuing` to be resumed with the same job id.
   */
  async #failed(err: unknown): Promise<unknown> {
    if (err instanceof EnqueueClaimLost) return err;
    const code = (err as { code?: unknown }).code;
    if (code !== ErrorCodes.INVALID_SUBMISSION && code !== ErrorCodes.PAYLOAD_TOO_LARGE) {
      if (err instanceof JetbatchError) return err;
      return new JetbatchError(ErrorCodes.INTERNAL, `enqueuing job ${this.#settings.job_id} failed after ${this.#acked} batches: ${(err as Error).message}; submit again with --job-id ${this.#settings.job_id} to continue`, { cause: err });
    }
    const ended = await endJob(this.#ctx, this.#settings.job_id, 'enqueue_failed', toErrorInfo(err)).catch(() => null);
    if (ended !== null) await discardQueue(this.#ctx, ended.record).catch(() => undefined);
    return err;
  }
}
