/** jetbatch fixed-CPU handler: `config.iterations` xorshift rounds per batch (see ../work.ts), nothing returned. */
import type { JobSpec } from '../../../../src/handler.js';
import { burn, nowMs, postMark } from '../work.js';

export default class CpuHandler {
  readonly #job: string;
  readonly #iterations: number;
  #first = true;

  constructor(config: Record<string, unknown>, jobSpec: JobSpec) {
    this.#job = jobSpec.job_id;
    this.#iterations = typeof config.iterations === 'number' ? config.iterations : 0;
  }

  handleBatch(): void {
    if (this.#first) {
      this.#first = false;
      postMark({ type: 'first', job: this.#job, t: nowMs() });
    }
    burn(this.#iterations);
  }
}
