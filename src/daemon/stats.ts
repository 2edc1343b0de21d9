/**
 * Per-job timing counters of this daemon (succeeded attempts and their total duration), flushed to the
 * JETBATCH_STATS bucket under `<job>.<daemon>` so any reader can compute avg_time_per_batch fleet-wide.
 */
import type { KV } from '@nats-io/kv';
import { encodeJson } from '../fleet/protocol.js';

export class TimingStats {
  readonly #kv: KV;
  readonly #daemonId: string;
  readonly #jobs = new Map<string, { count: number; totalMs: number; dirty: boolean }>();

  constructor(kv: KV, daemonId: string) {
    this.#kv = kv;
    this.#daemonId = daemonId;
  }

  record(jobId: string, durationMs: number): void {
    let s = this.#jobs.get(jobId);
    if (s === undefined) this.#jobs.set(jobId, (s = { count: 0, totalMs: 0, dirty: true }));
    s.count++;
    s.totalMs += durationMs;
    s.dirty = true;
  }

  /** Writes every changed counter (or only `jobId`'s). */
  async flush(jobId?: string): Promise<void> {
    const entries = jobId === undefined ? [...this.#jobs.entries()] : [[jobId, this.#jobs.get(jobId)] as const];
    await Promise.all(
      entries.map(async ([id, s]) => {
        if (s === undefined || !s.dirty) return;
        s.dirty = false;
        await this.#kv.put(`${id}.${this.#daemonId}`, encodeJson({ count: s.count, total_ms: Math.round(s.totalMs * 1000) / 1000 })).catch(() => {
          s.dirty = true;
        });
      }),
    );
  }

  forget(jobId: string): void {
    this.#jobs.delete(jobId);
  }
}
