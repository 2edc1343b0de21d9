/**
 * The job table: follows the job registry (a KV watch, restarted if it fails) and keeps the latest record of every
 * active job, of every API (so a reload that adds an API finds its jobs) and of ours. It emits what the rest of the
 * daemon acts on: a job of ours is `active` (new or changed), `ended` (terminal), or `deleted`.
 */
import { EventEmitter } from 'node:events';
import type { KV, KvWatchEntry } from '@nats-io/kv';
import type { Logger } from 'pino';
import { decodeJson } from '../fleet/protocol.js';
import { isTerminal, type JobRecord } from '../types.js';
import { sleep } from '../util/sleep.js';

export interface JobTableEvents {
  active: [record: JobRecord];
  ended: [record: JobRecord];
  deleted: [jobId: string];
}

export class JobTable extends EventEmitter<JobTableEvents> {
  readonly #kv: KV;
  readonly #log: Logger;
  readonly #serves: (api: string) => boolean;
  /** Every active job of any API. */
  readonly #allActive = new Map<string, JobRecord>();
  /** Latest record of every active job of our APIs. */
  readonly #active = new Map<string, JobRecord>();
  /** Status of every job of our APIs seen in the registry (for jetbatch_jobs). */
  readonly #statuses = new Map<string, { api: string; status: string }>();
  readonly #stop = new AbortController();
  /** The registry watch, from the moment it is asked for until it ends. */
  #watch: Promise<{ stop(): void }> | undefined;

  constructor(kv: KV, log: Logger, serves: (api: string) => boolean) {
    super();
    this.#kv = kv;
    this.#log = log;
    this.#serves = serves;
  }

  /** The latest record of an active job of ours. */
  get(jobId: string): JobRecord | undefined {
    return this.#active.get(jobId);
  }

  activeIds(): string[] {
    return [...this.#active.keys()];
  }

  statuses(): Array<{ api: string; status: string }> {
    return [...this.#statuses.values()];
  }

  /** Starts following the registry; every entry already there is replayed first. */
  follow(): void {
    void this.#loop();
  }

  /** The served APIs changed: returns the active jobs of the APIs now served (each one is `active` again). */
  reapply(): JobRecord[] {
    for (const [jobId, record] of [...this.#active]) if (!this.#serves(record.api_name)) this.#active.delete(jobId);
    const ours = [...this.#allActive.values()].filter((r) => this.#serves(r.api_name));
    for (const record of ours) this.#active.set(record.job_id, record);
    return ours;
  }

  /** Idempotent; waits (at most 5 s) for a watch still being set up, whose timers would keep the process alive. */
  async stop(): Promise<void> {
    this.#stop.abort();
    const watch = this.#watch;
    if (watch === undefined) return;
    const timeout = new AbortController();
    await Promise.race([watch.then((w) => w.stop()).catch(() => undefined), sleep(5000, timeout.signal)]);
    timeout.abort();
  }

  async #loop(): Promise<void> {
    while (!this.#stop.signal.aborted) {
      try {
        const starting = this.#kv.watch();
        this.#watch = starting;
        const watch = await starting;
        if (this.#stop.signal.aborted) return;
        try {
          for await (const entry of watch) {
            if (this.#stop.signal.aborted) break;
            this.#onEntry(entry);
          }
        } finally {
          if (this.#watch === starting) this.#watch = undefined;
        }
      } catch (err) {
        if (this.#stop.signal.aborted) return;
        this.#log.warn({ err }, 'job registry watch failed; restarting it');
        await sleep(1000, this.#stop.signal);
      }
    }
  }

  #onEntry(entry: KvWatchEntry): void {
    if (entry.operation !== 'PUT' || entry.value.length === 0) {
      this.#statuses.delete(entry.key);
      this.#allActive.delete(entry.key);
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
    if (ended) this.#allActive.delete(record.job_id);
    else this.#allActive.set(record.job_id, record);
    if (!this.#serves(record.api_name)) return;
    this.#statuses.set(record.job_id, { api: record.api_name, status: record.status });
    if (ended) {
      this.#active.delete(record.job_id);
      this.emit('ended', record);
    } else {
      this.#active.set(record.job_id, record);
      this.emit('active', record);
    }
  }
}
