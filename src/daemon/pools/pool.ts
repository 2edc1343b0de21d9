/**
 * One Piscina pool per API: a thin facade that turns every way a task can end (outcome, abort, thread death,
 * memory cap) into an Outcome, so callers handle a single shape.
 */
import { BroadcastChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { NatsOptions } from '../../fleet/connect.js';
import { ErrorCodes, toErrorInfo } from '../../errors.js';
import { channelNames, type BatchesTask, type CompleteTask, type ControlMessage, type Outcome, type Task, type WorkerData, type WorkerEvent } from '../../worker/thread-protocol.js';
import type { ApiOptions } from '../config.js';
import type { S3Settings } from '../../stores/index.js';
import { Slots } from './slots.js';
import { TaskGate } from './task-gate.js';
import { threadEntry } from '../../worker/thread-entry.js';
import { unpackOutcomes, type WireOutcome } from '../../worker/wire-outcomes.js';

/** onJobComplete's place in the task order: before any batch waiting here (its lane is taken already: Slots.occupy). */
const HOOK_PRIORITY = Number.MAX_SAFE_INTEGER;

/** Why the main thread aborted a running task. */
export type AbortReason = 'timeout' | 'stopped' | 'shutdown';

const worker = threadEntry('worker');

export type MetricEvent = Extract<WorkerEvent, { type: 'metric' }>;

/** Told that a batch's timeout restarts: `started` when its handleBatch starts, not when ctx.extendLease() was called. */
export type LeaseFollower = (batchId: string, started: boolean) => void;

export interface PoolOptions {
  api: ApiOptions;
  host: string;
  daemonId: string;
  pretty: boolean;
  maxLineBytes: number;
  nats: NatsOptions;
  /** The daemon config's `s3` section, for handlers' ctx.open (absent: AWS environment variables only). */
  s3?: S3Settings;
  env: Record<string, string>;
  /** Handler metrics sent by the threads (lease extensions go to the runner that follows the job). */
  onMetric: (event: MetricEvent) => void;
}

export class ApiPool {
  readonly api: ApiOptions;
  readonly slots: Slots;
  readonly #piscina: Piscina;
  readonly #gate: TaskGate;
  readonly #control: BroadcastChannel;
  readonly #events: BroadcastChannel;
  /** Per job, who is told when a batch's timeout restarts (handleBatch started, or ctx.extendLease()). */
  readonly #followers = new Map<string, LeaseFollower>();
  #closing: Promise<void> | undefined;
  /** Thread ids of the threads that said they are ready (worker.ts). */
  readonly #loaded = new Set<number>();

  constructor(opts: PoolOptions) {
    this.api = opts.api;
    const data: WorkerData = {
      apiName: opts.api.name,
      projectDir: opts.api.project,
      handlerPath: opts.api.handler,
      python: opts.api.python,
      memoryLimitMb: opts.api.memoryLimitMb,
      gpus: [...opts.api.gpus],
      logLevel: opts.api.logLevel,
      host: opts.host,
      daemonId: opts.daemonId,
      pretty: opts.pretty,
      maxLineBytes: opts.maxLineBytes,
      nats: opts.nats,
      s3: opts.s3 ?? {},
      workerSlots: new SharedArrayBuffer(4 * opts.api.threads),
    };
    this.#piscina = new Piscina({
      filename: worker.url.href,
      minThreads: opts.api.threads,
      maxThreads: opts.api.threads,
      concurrentTasksPerWorker: opts.api.concurrency,
      idleTimeout: Infinity,
      workerData: data,
      execArgv: worker.execArgv,
      env: opts.env,
      ...(opts.api.memoryLimitMb === undefined ? {} : { resourceLimits: { maxOldGenerationSizeMb: opts.api.memoryLimitMb } }),
    });
    // One place per thread: Piscina gives a thread one task at a time while that task has an abort signal, and every
    // task here has one, so `concurrency` > 1 does not put more on a thread (Slots still count its lanes).
    this.#gate = new TaskGate(opts.api.threads);
    const slots = new Int32Array(data.workerSlots);
    this.#piscina.on('workerDestroy', (worker: { id: number }) => {
      for (let i = 0; i < slots.length; i++) Atomics.compareExchange(slots, i, worker.id, 0);
      this.#loaded.delete(worker.id);
    });
    this.slots = new Slots(opts.api.threads * opts.api.concurrency);
    this.#control = new BroadcastChannel(channelNames.control(opts.api.name));
    this.#events = new BroadcastChannel(channelNames.events(opts.api.name));
    this.#events.onmessage = (message: unknown) => {
      const event = (message as { data: WorkerEvent }).data;
      if (event.type === 'metric') opts.onMetric(event);
      else if (event.type === 'ready') {
        // Only a live thread of this pool (a message can outlive its thread: workerDestroy came first).
        if (event.daemon === opts.daemonId && this.#piscina.threads.some((t) => t.threadId === event.thread)) this.#loaded.add(event.thread);
      } else this.#followers.get(event.jobId)?.(event.batchId, event.type === 'started');
    };
  }

  /** Delivers the lease events of `jobId`'s batches to `onLease` until the returned function is called. */
  follow(jobId: string, onLease: LeaseFollower): () => void {
    this.#followers.set(jobId, onLease);
    return () => {
      if (this.#followers.get(jobId) === onLease) this.#followers.delete(jobId);
    };
  }

  /** Whether a thread is free for a task now (no task waits for one). */
  get threadFree(): boolean {
    return this.#gate.free;
  }

  get utilization(): number {
    return this.#piscina.utilization;
  }

  /** Threads that have started and loaded the task loop (a thread still booting, or replacing a dead one, is not counted). */
  get threads(): number {
    return this.#loaded.size;
  }

  /**
   * Runs onJobComplete; `signal` aborts it by terminating its thread (Piscina replaces the thread). The hook occupies
   * a lane of the pool's Slots while it runs (at once, even if none is free: it never waits for a pull), so no batch
   * is pulled here to wait behind a long hook.
   */
  async runComplete(task: CompleteTask, signal: AbortSignal, reasonOf: () => AbortReason): Promise<Outcome> {
    this.slots.occupy();
    try {
      return await this.#run<Outcome>(task, HOOK_PRIORITY, signal, reasonOf, []);
    } finally {
      this.slots.release(1);
    }
  }

  /**
   * Runs batches on one thread: one outcome per batch, or a single failure outcome if the thread died or was
   * terminated (which batch is to blame is then unknown). `task.data` is transferred. Tasks wait for a thread in the
   * order of TaskGate: their job's `priority`, then first come, first served.
   */
  async runBatches(task: BatchesTask, priority: number, signal: AbortSignal, reasonOf: () => AbortReason): Promise<Outcome[] | Outcome> {
    const result = await this.#run<WireOutcome[]>(task, priority, signal, reasonOf, [task.data.buffer as ArrayBuffer]);
    return Array.isArray(result) ? unpackOutcomes(result) : result;
  }

  async #run<T>(task: Task, priority: number, signal: AbortSignal, reasonOf: () => AbortReason, transferList: ArrayBuffer[]): Promise<T | Outcome> {
    const started = performance.now();
    const entered = this.#gate.enter(priority, signal);
    const admitted = entered === true || (entered !== false && (await entered));
    try {
      // Aborted while waiting: it never ran (the catch below makes the same outcome as an abort while running).
      if (!admitted) throw new Error('aborted before it reached a thread');
      return (await this.#piscina.run(task, { signal, transferList })) as T;
    } catch (err) {
      const durationMs = performance.now() - started;
      const e = err as Error & { code?: string };
      if (signal.aborted) {
        const reason = reasonOf();
        const code = reason === 'timeout' ? ErrorCodes.BATCH_TIMEOUT : ErrorCodes.ABORTED;
        const message = reason === 'timeout' ? 'batch timed out; its worker thread was terminated' : `batch aborted (${reason})`;
        return { ok: false, durationMs, stage: 'batch', terminated: reason === 'timeout' ? 'timeout' : 'aborted', error: { name: reason === 'timeout' ? 'TimeoutError' : 'AbortError', code, message, permanent: false } };
      }
      if (e.code === 'ERR_WORKER_OUT_OF_MEMORY') {
        return { ok: false, durationMs, stage: 'batch', terminated: 'oom', error: { name: e.name, code: ErrorCodes.WORKER_OOM, message: `worker thread ran out of memory (memory_limit_mb=${this.api.memoryLimitMb ?? 'none'}): ${e.message}`, permanent: false } };
      }
      const info = toErrorInfo(err);
      return { ok: false, durationMs, stage: 'batch', terminated: 'crash', error: { ...info, code: ErrorCodes.WORKER_DIED, message: `worker thread died: ${info.message}`, permanent: false } };
    } finally {
      if (admitted) this.#gate.leave();
    }
  }

  /** Tells every thread of this pool about a job (abort its batches' signals, drop its handler instance). */
  broadcast(msg: ControlMessage): void {
    if (this.#closing === undefined) this.#control.postMessage(msg);
  }

  /** Idempotent: terminates the threads (the daemon has already drained or aborted their tasks). */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#events.close();
      this.#control.close();
      await this.#piscina.destroy().catch(() => undefined);
    })();
    return this.#closing;
  }
}
