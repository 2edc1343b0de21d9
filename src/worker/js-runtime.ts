/**
 * The JavaScript/TypeScript runtime: the handler module is imported into the worker thread and its class is
 * constructed there, once per job. The module is imported once per thread (module scope is per-thread state).
 */
import { decodeValue, encodeValue } from '../fleet/protocol.js';
import type { Handler, HandlerClass, HandlerContext } from '../handler.js';
import type { JobSpec, JobSummary } from '../types.js';
import { StageError, type JobHandler, type Runtime } from './runtime.js';

type AnyHandler = Handler & {
  handle_batch?: Handler['handleBatch'];
  on_job_complete?: Handler['onJobComplete'];
};

export class JsRuntime implements Runtime<unknown[]> {
  readonly atOnce = false;
  readonly #load: () => Promise<HandlerClass>;
  #handlerClass: Promise<HandlerClass> | undefined;

  /** `load` imports the handler module and returns its class (load-handler.ts). */
  constructor(load: () => Promise<HandlerClass>) {
    this.#load = load;
  }

  preload(): void {
    this.#loadClass().catch(() => undefined);
  }

  #loadClass(): Promise<HandlerClass> {
    if (this.#handlerClass === undefined) {
      const loading = this.#load();
      // A failed import is tried again by the next job's first batch (it may have been a missing file, since fixed).
      loading.catch(() => {
        if (this.#handlerClass === loading) this.#handlerClass = undefined;
      });
      this.#handlerClass = loading;
    }
    return this.#handlerClass;
  }

  decode(raw: Uint8Array): unknown[] {
    const payload = decodeValue(raw);
    if (!Array.isArray(payload)) throw new TypeError(`batch payload is a ${typeof payload}, not an array`);
    return payload;
  }

  async create(job: JobSpec, ctx: HandlerContext): Promise<{ handler: JobHandler<unknown[]>; initMs: number }> {
    const Cls = await this.#loadClass().catch((err: unknown) => {
      throw new StageError('load', err);
    });
    let h: AnyHandler;
    const t0 = performance.now();
    try {
      h = new Cls(job.config, job, ctx) as AnyHandler;
    } catch (err) {
      throw new StageError('init', err);
    }
    const initMs = performance.now() - t0;
    // Looked up once per job, not per batch; snake-case names of ported handlers are accepted.
    const handle = typeof h.handleBatch === 'function' ? h.handleBatch : h.handle_batch!;
    const hook = h.onJobComplete ?? h.on_job_complete;
    const handler: JobHandler<unknown[]> = {
      handleBatch: (payload, batchId, c) => handle.call(h, payload, batchId, c),
      onJobComplete: typeof hook === 'function' ? (summary: JobSummary, c: HandlerContext) => hook.call(h, summary, c) : undefined,
    };
    return { handler, initMs };
  }

  encodeResult(value: unknown): Uint8Array | null {
    return value === undefined ? null : encodeValue(value);
  }

  dropped(): void {}

  close(): void {}
}
