/**
 * jetbatch no-op handler. Marks the first batch it handles (the start of the measured interval); with
 * `report_latency: true` the batch's first item is its publish time (epoch ms) and the handler reports how long
 * the batch took to reach it.
 */
import type { JobSpec } from '../../../../src/handler.js';
import { nowMs, postMark } from '../work.js';

export default class NoopHandler {
  readonly #job: string;
  readonly #latency: boolean;
  #first = true;

  constructor(config: Record<string, unknown>, jobSpec: JobSpec) {
    this.#job = jobSpec.job_id;
    this.#latency = config.report_latency === true;
  }

  handleBatch(payload: unknown[]): void {
    const t = nowMs();
    if (this.#first) {
      this.#first = false;
      postMark({ type: 'first', job: this.#job, t });
    }
    const t0 = payload[0];
    if (this.#latency && typeof t0 === 'number') postMark({ type: 'latency', job: this.#job, ms: t - t0 });
  }
}
