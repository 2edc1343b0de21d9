/**
 * The Python runtime: the thread's handler instances live in one long-lived Python process (child.ts), kept across
 * batches and jobs; the thread keeps its task loop, timeouts and outcomes (task-runner.ts). The task loop hands each
 * batch over in turn, one at a time; the next batches of the task (`pipeline`) are written to the process ahead
 * (ahead.ts), so the process goes from one batch to the next without waiting for the thread (one
 * wake-up serves many small batches). What a batch's code logs, meters or asks (client calls) while the thread has not
 * reached it yet is held and delivered to its context when it does.
 *
 * A batch that times out or is aborted kills the process (SIGKILL stops a C extension's loop too); so does a
 * MemoryError; the next request starts a new one, where every job's handler is constructed again, and the batches
 * written ahead to the old one are written again when their turn comes.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { ErrorCodes, JetbatchError, type ErrorCode } from '../../errors.js';
import type { HandlerContext } from '../../handler.js';
import type { JobSpec, JobSummary } from '../../types.js';
import { ProcessReplaced, StageError, type BatchEnd, type JobHandler, type Runtime, type TaskHooks } from '../runtime.js';
import type { FailureStage } from '../thread-protocol.js';
import { ChildGone, PythonChild } from './child.js';
import type { Frame } from './frames.js';
import { OpenReads } from './reads.js';
import { onSideFrame } from './side-frames.js';
import { RequestSink, type FrameOwner } from './request-sink.js';
import { WrittenAhead } from './ahead.js';
import { backToBack, TaskBatchOwner } from './task-batches.js';
import { errorOf, toError, type ChildErrorInfo } from './child-errors.js';
import type { AheadBatch } from '../runtime.js';

export interface PythonRuntimeOptions {
  handlerPath: string;
  projectDir: string;
  /** Interpreter: a command on PATH or an absolute path. */
  python: string;
  gpu: number | null;
  memoryLimitMb: number | undefined;
  maxLineBytes: number;
  /** The thread's logger: the child's output outside any request goes here. */
  log: Logger;
  /** The process was replaced: the thread must construct its jobs' handlers again. */
  onReset(): void;
}

/** src/python, shipped in the package: from src/worker/python or dist/worker/python. */
export function modulePath(): string {
  for (const rel of ['../../python', '../../../src/python']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(`${p}/jetbatch/_runner.py`)) return p;
  }
  return fileURLToPath(new URL('../../python', import.meta.url));
}

/** An ndarray or a MessagePack array header (fixarray, array 16, array 32). */
const isArrayHeader = (b: number | undefined): boolean => b !== undefined && ((b & 0xf0) === 0x90 || b === 0xdc || b === 0xdd);

export class PythonRuntime implements Runtime<Uint8Array> {
  // A task's batches go to the process in one request (handleBatches).
  readonly atOnce = true;
  readonly #opts: PythonRuntimeOptions;
  readonly #modulePath = modulePath();
  #child: PythonChild<FrameOwner> | undefined;
  /** Each process gets a new generation; a handler belongs to the generation that constructed it. */
  #generation = 0;
  #lock: Promise<unknown> = Promise.resolve();
  /** Jobs whose handler the current process has constructed. */
  readonly #constructed = new Set<string>();
  /** The running tasks' next batches: planned, and written to the process ahead of their turn. */
  readonly #ahead: WrittenAhead;
  readonly #reads = new OpenReads();
  #closed = false;

  constructor(opts: PythonRuntimeOptions) {
    this.#opts = opts;
    this.#ahead = new WrittenAhead(opts.log);
  }

  preload(): void {
    // The process imports handler.py as it starts: a failure is reported to the first job's init.
    this.#ensureChild();
  }

  decode(raw: Uint8Array): Uint8Array {
    // Python decodes the batch; only its outer type is checked here, without decoding it.
    if (!isArrayHeader(raw[0])) throw new TypeError('batch payload is not a MessagePack array');
    return raw;
  }

  create(job: JobSpec, ctx: HandlerContext): Promise<{ handler: JobHandler<Uint8Array>; initMs: number }> {
    return this.#exclusive(async () => {
      const child = this.#ensureChild();
      const generation = this.#generation;
      const t0 = performance.now();
      let reply: Frame;
      try {
        [reply] = (await this.#request(child, ctx, [[['init', job.job_id, job]]])) as [Frame];
      } catch (err) {
        // The process could not start or died while constructing: before its runner was ready it is a load failure.
        const early = !(err instanceof ChildGone) || err.beforeReady;
        throw new StageError(early ? 'load' : 'init', this.#goneError(err, early ? ErrorCodes.HANDLER_LOAD_FAILED : ErrorCodes.HANDLER_INIT_FAILED));
      }
      if (reply.header[0] === 'error') {
        const stage = reply.header[1] === 'load' ? 'load' : 'init';
        throw new StageError(stage, toError(reply.header[2] as ChildErrorInfo));
      }
      const initMs = typeof reply.header[1] === 'number' ? reply.header[1] : performance.now() - t0;
      const hasHook = reply.header[2] === true;
      this.#constructed.add(job.job_id);
      const handler: JobHandler<Uint8Array> = {
        handleBatch: (payload, batchId, c) => this.#batch(generation, job, payload, batchId, c),
        handleBatches: (batches, hooks) => this.#batches(generation, job, batches, hooks),
        onJobComplete: hasHook ? (summary, c) => this.#complete(generation, job, summary, c) : undefined,
      };
      return { handler, initMs };
    });
  }

  encodeResult(value: unknown): Uint8Array | null {
    return value as Uint8Array | null;
  }

  dropped(jobId: string): void {
    this.#constructed.delete(jobId);
    this.#child?.send(['drop', jobId]);
  }

  pipeline(jobId: string, batches: readonly AheadBatch[]): () => void {
    // A batch the loop will not hand over (not an array: it fails at decode) is never written ahead.
    return this.#ahead.plan(jobId, batches.filter((b) => isArrayHeader(b.payload[0])));
  }

  close(): void {
    this.#closed = true;
    this.#reads.closeAll();
    this.#child?.kill();
    this.#child = undefined;
    this.#ahead.clear();
  }

  #batch(generation: number, job: JobSpec, payload: Uint8Array, batchId: string, ctx: HandlerContext): Promise<Uint8Array | null> {
    return this.#exclusive(async () => {
      const child = this.#sameChild(generation);
      const signal = ctx.signal;
      if (signal.aborted) throw signal.reason;
      // A timeout, stop or shutdown kills the process: the only way to stop Python code that does not return.
      const onAbort = (): void => this.#replace(child);
      signal.addEventListener('abort', onAbort, { once: true });
      const header = ['batch', job.job_id, batchId, ctx.attempt];
      let reply: Frame;
      try {
        const sent = this.#ahead.take(child, job.job_id, batchId, ctx);
        const first = sent ?? this.#request(child, ctx, [[header, payload]]).then(([r]) => r!);
        this.#ahead.write(child, this.#constructed);
        try {
          reply = await first;
        } finally {
          if (!child.alive) this.#replace(child);
        }
        if (reply.header[0] === 'error' && reply.header[1] === 'missing') {
          // Every batch of the job written ahead of this one will answer the same: write them again after the init.
          this.#constructed.delete(job.job_id);
          this.#ahead.requeue(job.job_id);
          reply = await this.#constructAgain(child, ctx, job, header, payload);
        }
      } catch (err) {
        if (err instanceof StageError) throw err;
        const why = !signal.aborted ? 'crash' : (signal.reason as { code?: unknown } | undefined)?.code === ErrorCodes.BATCH_TIMEOUT ? 'timeout' : 'aborted';
        throw new ProcessReplaced(why, this.#goneError(err, ErrorCodes.WORKER_DIED));
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
      return this.#valueOf(child, reply);
    });
  }

  /**
   * What a batch's reply means: the result to store (or null), or thrown, its failure as handleBatch throws it. A
   * MemoryError replaces the process: whatever it left behind, the next batch gets a fresh one.
   */
  #valueOf(child: PythonChild<FrameOwner>, reply: Frame): Uint8Array | null {
    if (reply.header[0] === 'ok') return reply.header[1] === true ? reply.tail : null;
    const info = errorOf(reply);
    if (info.oom === true) {
      this.#replace(child);
      throw new ProcessReplaced('oom', toError({ ...info, code: ErrorCodes.WORKER_OOM, message: `the Python process ran out of memory (memory_limit_mb=${this.#opts.memoryLimitMb ?? 'none'}): ${info.message}` }));
    }
    const stage = reply.header[1] as FailureStage;
    if (stage === 'decode' || stage === 'result') throw new StageError(stage, toError(info));
    throw toError(info);
  }

  /**
   * A task's batches in one request, answered one reply per batch: no promise, context or frame per batch on this
   * thread. One timer serves every batch (re-armed by each reply and lease extension). Stops early, leaving the rest
   * to handleBatch, when the process is replaced (the batch it ran ends with why; the batches after it run again in
   * the new process) or when the job's handler is missing there.
   */
  #batches(generation: number, job: JobSpec, batches: readonly AheadBatch[], hooks: TaskHooks): Promise<BatchEnd[]> {
    return this.#exclusive(() => {
      const child = this.#sameChild(generation);
      const ends: BatchEnd[] = [];
      if (hooks.abort.aborted || !this.#constructed.has(job.job_id)) return Promise.resolve(ends);
      return new Promise<BatchEnd[]>((resolve) => {
        /** The batch that was running when the thread killed the process (timeout or abort), and why. */
        let killed: { at: number; why: 'timeout' | 'aborted' } | undefined;
        let done = false;
        let since = performance.now();
        const kill = (why: 'timeout' | 'aborted'): void => {
          killed ??= { at: ends.length, why };
          this.#replace(child);
        };
        const timer = setTimeout(() => kill('timeout'), hooks.timeoutMs);
        const unlisten = hooks.abort.listen(() => kill('aborted'));
        const finish = (): void => {
          done = true;
          clearTimeout(timer);
          unlisten();
          resolve(ends);
        };
        const owners = batches.map((_, i) => new TaskBatchOwner(() => hooks.context(i, () => timer.refresh())));
        const { tail, ends: offsets } = backToBack(batches);
        const header = ['batches', job.job_id, batches.map((b) => b.batchId), offsets];
        child.requestEach(header, tail, owners, (i, reply) => {
          if (done) return; // a reply to a batch left to handleBatch (the task stopped early)
          const now = performance.now();
          if (reply instanceof ChildGone) {
            this.#replace(child); // the thread constructs its handlers again in the next process
            // Only the batch that was running ends here; the ones after it run again in the new process.
            if (killed === undefined || killed.at === i) {
              const why = killed?.why ?? 'crash';
              const original = why === 'timeout' ? hooks.timeoutError(i) : why === 'aborted' ? hooks.abort.reason : this.#goneError(reply, ErrorCodes.WORKER_DIED);
              ends.push({ ok: false, error: new ProcessReplaced(why, original), ms: now - since });
            }
            finish();
            return;
          }
          this.#reads.closeAll(); // what the batch opened with jetbatch.open() and did not close ends with it
          const h = reply.header;
          const reported = h[h[0] === 'ok' ? 2 : 3]; // the batch's own time in Python
          const ms = typeof reported === 'number' ? reported : now - since;
          since = now;
          if (h[0] === 'error' && h[1] === 'missing') {
            this.#constructed.delete(job.job_id);
            finish();
            return;
          }
          try {
            ends.push({ ok: true, value: this.#valueOf(child, reply), ms });
          } catch (error) {
            ends.push({ ok: false, error, ms });
            if (error instanceof ProcessReplaced) {
              finish(); // a MemoryError: the rest runs in the next process
              return;
            }
          }
          if (ends.length === batches.length) finish();
          else timer.refresh();
        });
      });
    });
  }

  #complete(generation: number, job: JobSpec, summary: JobSummary, ctx: HandlerContext): Promise<void> {
    return this.#exclusive(async () => {
      const child = this.#sameChild(generation);
      let reply: Frame;
      try {
        reply = await this.#onInstance(child, ctx, job, ['complete', job.job_id, summary]);
      } catch (err) {
        if (err instanceof StageError) throw err;
        throw this.#goneError(err, ErrorCodes.WORKER_DIED);
      }
      if (reply.header[0] === 'error') throw toError(errorOf(reply));
    });
  }

  /**
   * Sends a request about the job's handler. A process that no longer has it (a drop of the job's previous run — it
   * ended, then ran again — reached the process after this handler was constructed) gets it constructed again first,
   * as the thread would after an 'ended' message.
   */
  async #onInstance(child: PythonChild<FrameOwner>, ctx: HandlerContext, job: JobSpec, header: unknown[], tail?: Uint8Array): Promise<Frame> {
    const [reply] = await this.#request(child, ctx, [[header, tail]]);
    if (reply!.header[0] !== 'error' || reply!.header[1] !== 'missing') return reply!;
    return this.#constructAgain(child, ctx, job, header, tail);
  }

  /** Constructs the job's handler in `child` again, then sends the request that found it missing. */
  async #constructAgain(child: PythonChild<FrameOwner>, ctx: HandlerContext, job: JobSpec, header: unknown[], tail?: Uint8Array): Promise<Frame> {
    // Both frames are written at once, so no other drop can come between the construction and the request.
    const [init, again] = await this.#request(child, ctx, [[['init', job.job_id, job]], [header, tail]]);
    if (init!.header[0] === 'error') throw new StageError(init!.header[1] === 'load' ? 'load' : 'init', toError(init!.header[2] as ChildErrorInfo));
    this.#constructed.add(job.job_id);
    return again!;
  }

  /** The process a handler was constructed in, or an error if it has been replaced since (retried elsewhere). */
  #sameChild(generation: number): PythonChild<FrameOwner> {
    const child = this.#child;
    if (child === undefined || generation !== this.#generation || !child.alive) {
      throw new JetbatchError(ErrorCodes.WORKER_DIED, 'the Python process of this handler was replaced before the batch ran');
    }
    return child;
  }

  /** Sends requests (written at once, answered in order) and waits for their replies; `ctx` gets their logs. */
  async #request(child: PythonChild<FrameOwner>, ctx: HandlerContext, requests: Array<[unknown[], Uint8Array?]>): Promise<Frame[]> {
    try {
      const replies = requests.map(([header, tail]) => child.request(header, tail, new RequestSink(ctx)));
      // Every reply is awaited, so none is left rejected and unhandled when an earlier one fails.
      const settled = await Promise.allSettled(replies);
      return settled.map((r) => {
        if (r.status === 'rejected') throw r.reason;
        return r.value;
      });
    } finally {
      if (!child.alive) this.#replace(child);
    }
  }

  /** Runs `fn` after every earlier request has finished: the process handles one request at a time. */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    // What the request opened with jetbatch.open() and did not close ends with it.
    const run = this.#lock.then(fn, fn).finally(() => this.#reads.closeAll());
    this.#lock = run.catch(() => undefined);
    return run;
  }

  #ensureChild(): PythonChild<FrameOwner> {
    if (this.#closed) throw new StageError('load', new JetbatchError(ErrorCodes.ABORTED, 'the worker thread is closing'));
    if (this.#child !== undefined && this.#child.alive) return this.#child;
    this.#generation++;
    const o = this.#opts;
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
    if (o.gpu !== null) env.CUDA_VISIBLE_DEVICES = String(o.gpu);
    this.#constructed.clear();
    this.#child = new PythonChild<FrameOwner>({
      python: o.python,
      projectDir: o.projectDir,
      modulePath: this.#modulePath,
      env,
      settings: { handler: o.handlerPath, log_level: o.log.level, max_line_bytes: o.maxLineBytes, memory_limit_mb: o.memoryLimitMb ?? null },
      onOutput: (stream, line) => {
        const log = this.#child?.current?.log ?? o.log;
        if (stream === 'stdout') log.info({ stream }, line);
        else log.warn({ stream }, line);
      },
      onFrame: (frame) => {
        const sink = this.#child?.current;
        if (sink === undefined) this.#onFrame(frame, undefined);
        else sink.deliver(frame, (f, ctx) => this.#onFrame(f, ctx));
      },
    });
    return this.#child;
  }

  /** Kills `child` if it is still the current process; the next request starts a new one. */
  #replace(child: PythonChild<FrameOwner>): void {
    child.kill();
    if (this.#child !== child) return;
    this.#child = undefined;
    this.#constructed.clear();
    this.#ahead.requeue();
    this.#opts.onReset();
  }

  /** A frame that is not a reply, for the request `ctx` (undefined: no request, or one the thread gave up). */
  #onFrame(frame: Frame, ctx: HandlerContext | undefined): void {
    // A call is answered to the process that asked, even if it has been replaced by the time the answer is ready.
    const child = this.#child;
    onSideFrame(frame, ctx, { log: this.#opts.log, reads: this.#reads, reply: (f) => child?.send(f) });
  }

  /** A dead process as the error of the request it was running (anything else thrown passes through). */
  #goneError(gone: unknown, code: ErrorCode): Error {
    if (!(gone instanceof ChildGone)) return gone as Error;
    return new JetbatchError(code, gone.message, { cause: gone });
  }
}
