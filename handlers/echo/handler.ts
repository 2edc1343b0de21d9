/**
 * The smallest useful handler: returns each batch as it got it, so a job's results mirror its input.
 * Config: `{ "delay_ms": N }` makes every batch take N ms (handy to watch progress).
 */
import type { HandlerContext, JobSpec } from '../../src/handler.js';

export default class EchoHandler {
  readonly #delayMs: number;

  constructor(config: Record<string, unknown>, jobSpec: JobSpec, ctx: HandlerContext) {
    this.#delayMs = typeof config.delay_ms === 'number' ? config.delay_ms : 0;
    ctx.log.debug({ job_id: jobSpec.job_id, batches: jobSpec.total_batch_count }, 'echo handler ready');
  }

  async handleBatch(payload: unknown[], _batchId: string, ctx: HandlerContext): Promise<unknown[]> {
    if (this.#delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.#delayMs));
    if (ctx.signal.aborted) throw ctx.signal.reason;
    return payload;
  }
}
