/**
 * The fleet's capacity as this daemon sees it: the lanes (threads × concurrency) each live daemon offers per API,
 * read from the heartbeats in JETBATCH_DAEMONS (a KV watch, so a daemon that joins counts from its first heartbeat).
 * An entry that is deleted, or has not changed for its writer's presence timeout (measured here, on a monotonic
 * clock), no longer counts. The scheduling rule (batches/share.ts) uses it to decide what a job may prefetch here.
 */
import type { KV, KvWatchEntry } from '@nats-io/kv';
import type { Logger } from 'pino';
import { decodeJson } from '../fleet/protocol.js';
import type { DaemonRecord } from '../types.js';
import { KvFollower } from '../util/kv-follow.js';

interface Peer {
  lanes: Record<string, number>;
  /** When (monotonic ms) the entry last changed. */
  seen: number;
  timeoutMs: number;
}

export class FleetView {
  readonly #selfId: string;
  readonly #ownLanes: (api: string) => number;
  readonly #now: () => number;
  readonly #peers = new Map<string, Peer>();
  readonly #follower: KvFollower;

  /** `ownLanes` is this daemon's own figure, which counts whether or not its heartbeat has been seen yet. */
  constructor(kv: KV, log: Logger, selfId: string, ownLanes: (api: string) => number, now: () => number = () => performance.now()) {
    this.#selfId = selfId;
    this.#ownLanes = ownLanes;
    this.#now = now;
    this.#follower = new KvFollower(kv, log, 'daemon presence', (entry) => this.#onEntry(entry));
  }

  start(): void {
    this.#follower.start();
  }

  stop(): Promise<void> {
    return this.#follower.stop();
  }

  /** Lanes the live fleet offers for `api`, this daemon's included. */
  lanes(api: string): number {
    const now = this.#now();
    let total = this.#ownLanes(api);
    for (const [id, peer] of this.#peers) {
      if (now - peer.seen > peer.timeoutMs) this.#peers.delete(id);
      else total += peer.lanes[api] ?? 0;
    }
    return total;
  }

  #onEntry(entry: KvWatchEntry): void {
    if (entry.key === this.#selfId) return;
    if (entry.operation !== 'PUT' || entry.value.length === 0) {
      this.#peers.delete(entry.key);
      return;
    }
    let decoded: unknown;
    try {
      decoded = decodeJson(entry.value);
    } catch {
      return;
    }
    // Anything but a JSON object (null, a number, an array) is no heartbeat; it must not break the watch.
    if (decoded === null || typeof decoded !== 'object' || Array.isArray(decoded)) return;
    const record = decoded as Partial<DaemonRecord>;
    const lanes: Record<string, number> = {};
    for (const [api, n] of Object.entries(record.lanes ?? {})) if (typeof n === 'number' && n > 0) lanes[api] = n;
    const timeoutMs = typeof record.presence_timeout_ms === 'number' && record.presence_timeout_ms > 0 ? record.presence_timeout_ms : 30_000;
    this.#peers.set(entry.key, { lanes, seen: this.#now(), timeoutMs });
  }
}
