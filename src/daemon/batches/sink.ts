/**
 * Where a job runner's measurements go: one narrow interface, bound to one job, so the runner knows nothing of
 * Prometheus or of the fleet-wide timing stats (the daemon's sink is in runners.ts).
 */
import type { Outcome } from '../../worker/thread-protocol.js';

export interface BatchSink {
  /** `n` batches were received, `redelivered` of them with a delivery count above 1; each later counts in `finished`. */
  dispatched(n: number, redelivered: number): void;
  finished(n: number): void;
  /** Attempts that succeeded and were acked (reported once per task on the hot path). */
  acked(outcomes: readonly Outcome[]): void;
  /** Any other settlement: retried, dead-lettered, or released (handed back without being charged). */
  settled(outcome: Outcome, how: 'retried' | 'dead-lettered' | 'released'): void;
}
