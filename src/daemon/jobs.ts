/**
 * The job table: follows the job registry (util/kv-follow.ts) and keeps the latest record of every
 * active job of every API (so a reload that adds an API finds its jobs); "ours" are those of the APIs served now. It
 * emits what the rest of the daemon acts on: a job of ours is `active` (new or changed), `ended` (terminal), or
 * `deleted` (any job).
 */
import { EventEmitter } from 'node:events';
import type { KV, KvWatchEntry } from '@nats-io/kv';
import type { Logger } from 'pino';
import { decodeJson } from '../fleet/protocol.js';
import { isTerminal, type JobRecord } from '../types.js';
import { KvFollower } from '../util/kv-follow.js';

export interface JobTableEvents {
  active: [record: JobRecord];
  ended: [record: JobRecord];
  deleted: [jobId: string];
}

export class JobTable extends EventEmitter<JobTableEvents> {
  readonly #log: Logger;
  readonly #serves: (api: string) => boolean;
  /** Latest record of every active job of any API (so a reload that adds an API finds its jobs). */
  readonly #active = new Map<string, JobRecord>();
  /** Status of every job of our APIs seen in the registry (for jetbatch_jobs). */
  readonly #statuses = new Map<string, { api: string; status: string }>();
  readonly #follower: KvFollower;

  constructor(kv: KV, log: Logger, serves: (api: string) => boolean) {
    super();
    this.#log = log;
    this.#serves = serves;
    this.#follower = new KvFollower(kv, log, 'job registry', (entry) => this.#onEntry(entry));
  }

  /** The latest record of an active job of ours. */
  get(jobId: string): JobRecord | undefined {
    const record = this.#active.get(jobId);
    return record !== undefined && this.#serves(record.api_name) ? record : undefined;
  }

  /** The active jobs of the APIs served now. */
  ours(): JobRecord[] {
    return [...this.#active.values()].filter((r) => this.#serves(r.api_name));
  }

  activeIds(): string[] {
    return this.ours().map((r) => r.job_id);
  }

  statuses(): Array<{ api: string; status: string }> {
    return [...this.#statuses.values()];
  }

  /** Starts following the registry; every entry already there is replayed first. */
  follow(): void {
    this.#follower.start();
  }

  /** Idempotent; see KvFollower.stop. */
  stop(): Promise<void> {
    return this.#follower.stop();
  }

  #onEntry(entry: KvWatchEntry): void {
    if (entry.operation !== 'PUT' || entry.value.length === 0) {
      this.#statuses.delete(entry.key);
      this.#active.delete(entry.key);
      this.emit('deleted', entry.key);
      return;
    }
    let record: JobRecord;
    try {
      record = decodeJson(entry.value) as JobRecord;
    } catch (err) {
      this.#log.warn({ err, key: entry.key }, 'ignoring an undecodable job record');
      return;
    }
    const ended = isTerminal(record.status);
    if (ended) this.#active.delete(record.job_id);
    else this.#active.set(record.job_id, record);
    if (!this.#serves(record.api_name)) return;
    this.#statuses.set(record.job_id, { api: record.api_name, status: record.status });
    this.emit(ended ? 'ended' : 'active', record);
  }
}
