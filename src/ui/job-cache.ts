/**
 * Every job record, kept in memory by following JETBATCH_JOBS with a KV watch (one replay of the bucket, then each
 * change as it lands), so a page of 10,000 jobs is a sort and a slice, not 10,000 KV reads per request. Records
 * that age out of the bucket (its TTL) send no event: a cheap key listing every minute drops them.
 */
import type { KvWatchEntry } from '@nats-io/kv';
import type { FleetContext } from '../fleet/context.js';
import { kvKeys } from '../fleet/kv-keys.js';
import { Buckets, decodeJson } from '../fleet/protocol.js';
import { ACTIVE_STATUSES, TERMINAL_STATUSES, isTerminal, type JobRecord, type JobStatusName } from '../types.js';
import { sleep } from '../util/sleep.js';

/** A status filter: one status, `active`, `ended`, `paused`, or `` for all. */
export type StatusFilter = JobStatusName | 'active' | 'ended' | 'paused' | '';

export const STATUS_FILTERS: readonly StatusFilter[] = ['', 'active', 'paused', 'ended', ...ACTIVE_STATUSES, ...TERMINAL_STATUSES];

export function isStatusFilter(s: string): s is StatusFilter {
  return (STATUS_FILTERS as readonly string[]).includes(s);
}

export function matchesStatus(record: JobRecord, filter: StatusFilter): boolean {
  switch (filter) {
    case '':
      return true;
    case 'active':
      return !isTerminal(record.status);
    case 'ended':
      return isTerminal(record.status);
    case 'paused':
      return !isTerminal(record.status) && record.paused_at != null;
    default:
      return record.status === filter;
  }
}

export interface JobQuery {
  api: string;
  status: StatusFilter;
  /** 1-based. */
  page: number;
  perPage: number;
}

export interface JobPage {
  records: JobRecord[];
  /** Jobs matching the filters. */
  total: number;
  page: number;
  pages: number;
  /** Per status filter, how many jobs of the chosen API (all APIs for '') match it. */
  counts: Record<string, number>;
}

/** Newest first: by start time, then job id (generated ids sort by submission time), as `jetbatch jobs`. */
function newestFirst(a: JobRecord, b: JobRecord): number {
  if (a.start_time !== b.start_time) return a.start_time < b.start_time ? 1 : -1;
  return a.job_id < b.job_id ? 1 : a.job_id > b.job_id ? -1 : 0;
}

export class JobCache {
  readonly #ctx: FleetContext;
  readonly #onError: (err: unknown) => void;
  readonly #records = new Map<string, JobRecord>();
  #sorted: JobRecord[] | null = null;
  #version = 0;
  readonly #stop = new AbortController();
  #watch: { stop(): void } | undefined;
  #loop: Promise<void> | undefined;
  #sweep: NodeJS.Timeout | undefined;
  #resolveReady!: () => void;
  /** Resolves once the first replay of the bucket has been read. */
  readonly ready: Promise<void> = new Promise((resolve) => (this.#resolveReady = resolve));
  readonly #listeners = new Set<(jobId: string) => void>();

  constructor(ctx: FleetContext, onError: (err: unknown) => void) {
    this.#ctx = ctx;
    this.#onError = onError;
  }

  start(): void {
    this.#loop ??= this.#follow();
    this.#sweep = setInterval(() => void this.#dropExpired().catch(this.#onError), 60_000);
    this.#sweep.unref();
  }

  /** Idempotent; stops the watch (bounded: a watch still being set up is waited for at most 5 s). */
  async stop(): Promise<void> {
    this.#stop.abort();
    clearInterval(this.#sweep);
    this.#watch?.stop();
    this.#resolveReady();
    if (this.#loop !== undefined) await Promise.race([this.#loop, sleep(5000)]);
  }

  /** Grows whenever a record changes: lets a stream skip sending a page nothing changed on. */
  get version(): number {
    return this.#version;
  }

  get size(): number {
    return this.#records.size;
  }

  get(jobId: string): JobRecord | undefined {
    return this.#records.get(jobId);
  }

  /** Called with the job id of every change. Returns the unsubscribe function. */
  onChange(listener: (jobId: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  apis(): string[] {
    return [...new Set([...this.#records.values()].map((r) => r.api_name))].sort();
  }

  query(q: JobQuery): JobPage {
    const sorted = (this.#sorted ??= [...this.#records.values()].sort(newestFirst));
    const ofApi = q.api === '' ? sorted : sorted.filter((r) => r.api_name === q.api);
    const counts: Record<string, number> = {};
    for (const f of STATUS_FILTERS) counts[f] = 0;
    for (const r of ofApi) {
      counts['']! += 1;
      counts[r.status] = (counts[r.status] ?? 0) + 1;
      if (isTerminal(r.status)) counts.ended! += 1;
      else {
        counts.active! += 1;
        if (r.paused_at != null) counts.paused! += 1;
      }
    }
    const matching = q.status === '' ? ofApi : ofApi.filter((r) => matchesStatus(r, q.status));
    const pages = Math.max(1, Math.ceil(matching.length / q.perPage));
    const page = Math.min(Math.max(1, q.page), pages);
    return { records: matching.slice((page - 1) * q.perPage, page * q.perPage), total: matching.length, page, pages, counts };
  }

  #apply(entry: KvWatchEntry): void {
    if (entry.operation !== 'PUT' || entry.value.length === 0) {
      if (!this.#records.delete(entry.key)) return;
    } else {
      let record: JobRecord;
      try {
        record = decodeJson(entry.value) as JobRecord;
      } catch {
        return; // Not a record jetbatch wrote: nothing to show.
      }
      if (record === null || typeof record !== 'object' || typeof record.job_id !== 'string' || typeof record.start_time !== 'string') return;
      const before = this.#records.get(entry.key);
      this.#records.set(entry.key, record);
      // The order changes only with a new job or a new start time; a status change keeps the sorted array.
      if (before !== undefined && before.start_time === record.start_time && this.#sorted !== null) {
        const i = this.#sorted.indexOf(before);
        if (i >= 0) this.#sorted[i] = record;
        else this.#sorted = null;
        this.#changed(entry.key);
        return;
      }
    }
    this.#sorted = null;
    this.#changed(entry.key);
  }

  #changed(jobId: string): void {
    this.#version++;
    for (const l of this.#listeners) l(jobId);
  }

  /**
   * The watch replays the last value of every key (deleted ones as tombstones), then follows. Caught up = seen the
   * stream's last sequence as of the start. Restarted after a second when it fails; a restart replays everything
   * again, and records missing from that replay are dropped.
   */
  async #follow(): Promise<void> {
    while (!this.#stop.signal.aborted) {
      try {
        const info = await this.#ctx.jsm.streams.info(`KV_${Buckets.jobs}`);
        const lastSeq = info.state.last_seq;
        let caughtUp = info.state.messages === 0;
        const seen = new Set<string>();
        const watch = await this.#ctx.jobs.watch();
        this.#watch = watch;
        if (this.#stop.signal.aborted) {
          watch.stop();
          return;
        }
        if (caughtUp) this.#resolveReady();
        for await (const entry of watch) {
          if (this.#stop.signal.aborted) break;
          this.#apply(entry);
          if (!caughtUp) {
            seen.add(entry.key);
            if (entry.revision >= lastSeq) {
              caughtUp = true;
              for (const k of [...this.#records.keys()]) if (!seen.has(k)) this.#records.delete(k);
              this.#sorted = null;
              this.#resolveReady();
            }
          }
        }
      } catch (err) {
        if (this.#stop.signal.aborted) return;
        this.#onError(err);
      }
      if (!this.#stop.signal.aborted) await sleep(1000, this.#stop.signal).catch(() => undefined);
    }
  }

  /** Keys missing from the previous listing: dropped when missing twice (a job created mid-listing is not). */
  #missing = new Set<string>();

  async #dropExpired(): Promise<void> {
    const keys = new Set(await kvKeys(this.#ctx, Buckets.jobs));
    const missing = new Set([...this.#records.keys()].filter((k) => !keys.has(k)));
    const twice = [...missing].filter((k) => this.#missing.has(k));
    this.#missing = missing;
    for (const k of twice) {
      {
        this.#records.delete(k);
        this.#sorted = null;
        this.#changed(k);
      }
    }
  }
}
