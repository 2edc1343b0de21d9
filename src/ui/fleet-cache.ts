/**
 * The daemons, from a watch on JETBATCH_DAEMONS, including the ones that went away. A daemon is gone when its entry
 * is deleted (it shut down) or when its revision has not changed for its presence_timeout_ms on our own clock since
 * we first saw that revision (docs/PROTOCOL.md §2); like the status readers (fleet/activity.ts), an entry whose
 * last_seen is older than that by our wall clock is not counted live either, so a daemon that died before the UI
 * started does not look alive for the first seconds.
 */
import type { KvWatchEntry } from '@nats-io/kv';
import { activityOf, type FleetActivity } from '../fleet/activity.js';
import type { FleetContext } from '../fleet/context.js';
import { decodeJson } from '../fleet/protocol.js';
import type { DaemonRecord } from '../types.js';
import { sleep } from '../util/sleep.js';

export interface DaemonView {
  id: string;
  /** The last entry written, or null when all we saw is its deletion. */
  record: Partial<DaemonRecord> | null;
  state: 'live' | 'gone';
  /** Why it is gone: it deleted its entry (shut down) or stopped beating. */
  reason: 'shut down' | 'no heartbeat' | null;
  /** ms since its entry last changed, on our clock (null when unknown). */
  silentMs: number | null;
}

interface Tracked {
  record: Partial<DaemonRecord> | null;
  revision: number;
  /** performance.now() when this revision was first seen. */
  seenAt: number;
  deleted: boolean;
}

/** Used when an entry names no presence timeout (older daemons). */
const DEFAULT_PRESENCE_MS = 10_000;

export class FleetCache {
  readonly #ctx: FleetContext;
  readonly #onError: (err: unknown) => void;
  readonly #daemons = new Map<string, Tracked>();
  readonly #stop = new AbortController();
  #watch: { stop(): void } | undefined;
  #loop: Promise<void> | undefined;

  constructor(ctx: FleetContext, onError: (err: unknown) => void) {
    this.#ctx = ctx;
    this.#onError = onError;
  }

  start(): void {
    this.#loop ??= this.#follow();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    this.#watch?.stop();
    if (this.#loop !== undefined) await Promise.race([this.#loop, sleep(5000)]);
  }

  daemons(now = performance.now(), wallNow = Date.now()): DaemonView[] {
    const out: DaemonView[] = [];
    for (const [id, t] of this.#daemons) {
      const timeout = Math.max(t.record?.presence_timeout_ms ?? DEFAULT_PRESENCE_MS, 5000);
      const silent = now - t.seenAt;
      const wallAge = wallNow - Date.parse(t.record?.last_seen ?? '');
      const live = !t.deleted && t.record !== null && silent < timeout && !(wallAge >= timeout);
      out.push({ id, record: t.record, state: live ? 'live' : 'gone', reason: live ? null : t.deleted ? 'shut down' : 'no heartbeat', silentMs: t.deleted ? null : silent });
    }
    return out.sort((a, b) => (a.state === b.state ? a.id.localeCompare(b.id) : a.state === 'live' ? -1 : 1));
  }

  live(): Array<Partial<DaemonRecord>> {
    return this.daemons().filter((d) => d.state === 'live' && d.record !== null).map((d) => d.record!);
  }

  /** Per job, batches inside handleBatch now and on how many daemons (as fleet/activity.ts readActivity). */
  activity(): FleetActivity {
    return activityOf(this.live());
  }

  #apply(entry: KvWatchEntry): void {
    const before = this.#daemons.get(entry.key);
    if (entry.operation !== 'PUT' || entry.value.length === 0) {
      this.#daemons.set(entry.key, { record: before?.record ?? null, revision: entry.revision, seenAt: performance.now(), deleted: true });
      return;
    }
    let record: unknown;
    try {
      record = decodeJson(entry.value);
    } catch {
      return;
    }
    if (record === null || typeof record !== 'object' || Array.isArray(record)) return;
    this.#daemons.set(entry.key, { record: record as Partial<DaemonRecord>, revision: entry.revision, seenAt: performance.now(), deleted: false });
  }

  async #follow(): Promise<void> {
    while (!this.#stop.signal.aborted) {
      try {
        const watch = await this.#ctx.daemons.watch();
        this.#watch = watch;
        if (this.#stop.signal.aborted) {
          watch.stop();
          return;
        }
        for await (const entry of watch) {
          if (this.#stop.signal.aborted) break;
          this.#apply(entry);
        }
      } catch (err) {
        if (this.#stop.signal.aborted) return;
        this.#onError(err);
      }
      if (!this.#stop.signal.aborted) await sleep(1000, this.#stop.signal);
    }
  }
}
