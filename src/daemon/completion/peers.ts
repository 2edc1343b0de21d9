/**
 * Whether another daemon is gone, judged from its heartbeats in JETBATCH_DAEMONS. A daemon is gone when its entry
 * is deleted (clean shutdown) or missing, or when this daemon has watched the entry's revision stay the same for
 * the other's own presence timeout. Time is measured here, on a monotonic clock, from the first sighting of a
 * revision: no two hosts' clocks are ever compared, and a daemon that has just started waits a full timeout before
 * it calls anyone gone. Nor does a pause in this daemon's own view count: if it could not read the entry for more
 * than half a timeout (NATS electing a leader cuts off the writer and the reader alike), the clock starts again.
 */
import type { KV } from '@nats-io/kv';
import { decodeJson } from '../../fleet/protocol.js';
import type { DaemonRecord } from '../../types.js';

export interface PeerVerdict {
  gone: boolean;
  /** Why, for the log: `deleted`, `missing`, or how long the entry has been seen unchanged. */
  reason: string;
}

export class Peers {
  readonly #kv: KV;
  readonly #now: () => number;
  /** Last revision seen per daemon, when (monotonic ms) it was first seen, and when last read. */
  readonly #seen = new Map<string, { revision: number; since: number; read: number }>();

  constructor(kv: KV, now: () => number = () => performance.now()) {
    this.#kv = kv;
    this.#now = now;
  }

  async judge(daemonId: string, fallbackTimeoutMs: number): Promise<PeerVerdict> {
    const entry = await this.#kv.get(daemonId);
    if (entry === null) return { gone: true, reason: 'missing' };
    if (entry.operation !== 'PUT' || entry.value.length === 0) return { gone: true, reason: 'deleted' };
    let timeoutMs = fallbackTimeoutMs;
    try {
      const t = (decodeJson(entry.value) as Partial<DaemonRecord>).presence_timeout_ms;
      if (typeof t === 'number' && t > 0) timeoutMs = t;
    } catch {
      // An unreadable entry still proves a heartbeat was written; its own timeout is unknown.
    }
    const now = this.#now();
    const seen = this.#seen.get(daemonId);
    if (seen === undefined || seen.revision !== entry.revision || now - seen.read > timeoutMs / 2) {
      this.#seen.set(daemonId, { revision: entry.revision, since: now, read: now });
      return { gone: false, reason: `heartbeat at revision ${entry.revision}` };
    }
    seen.read = now;
    const unchangedMs = Math.round(now - seen.since);
    return unchangedMs >= timeoutMs
      ? { gone: true, reason: `heartbeat unchanged at revision ${entry.revision} for ${unchangedMs} ms (timeout ${timeoutMs} ms)` }
      : { gone: false, reason: `heartbeat unchanged for ${unchangedMs} ms of ${timeoutMs} ms` };
  }

  forget(daemonId: string): void {
    this.#seen.delete(daemonId);
  }
}
