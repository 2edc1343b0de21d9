/**
 * Worker-thread entry of an API's Piscina pool: the task loop. Handler instances are created through the thread's
 * runtime (runtime.ts: JavaScript in this thread, or Python in a child process of this thread), one per job per
 * thread, on the first batch of the job that reaches the thread. This file owns timeouts, abort, lease events and
 * outcomes for both runtimes. Every task resolves with an Outcome; nothing is rethrown.
 */
import { hostname } from 'node:os';
import { BroadcastChannel, threadId, workerData as rawWorkerData } from 'node:worker_threads';
import type { Logger } from 'pino';
import { createLogger, withMeta } from '../util/log.js';
import type { JetbatchClient } from '../client/client.js';
import { ErrorCodes } from '../errors.js';
import type { HandlerContext, HandlerMetrics } from '../handler.js';
import { importHandler, resolveHandlerPath } from './load-handler.js';
import { decodeValue } from '../fleet/protocol.js';
import { JsRuntime } from './js-runtime.js';
import type { StoredObjects } from './stored.js';
import { lazyImport } from '../util/lazy-import.js';
import { PythonRuntime } from './python/python-runtime.js';
import { StageError, type BatchEnd, type JobHandler, type Runtime } from './runtime.js';
import { BatchAbort } from './batch-abort.js';
import { BatchContext, type ThreadServices } from './context.js';
import { Deadlines } from './deadlines.js';
import { batchFailure, failure, initFailure, succeeded, withInit } from './outcomes.js';
import { packOutcomes, type WireOutcome } from './wire-outcomes.js';
import {
  channelNames,
  type BatchesTask,
  type CompleteTask,
  type ControlMessage,
  type Outcome,
  type MetricKind,
  type Task,
  type WorkerData,
  type WorkerEvent,
} from './thread-protocol.js';
import type { JobSpec } from '../types.js';

const data = rawWorkerData as WorkerData;
const workerIndex = claimSlot(new Int32Array(data.workerSlots));

function claimSlot(slots: Int32Array): number {
  for (let i = 0; i < slots.length; i++) if (Atomics.compareExchange(slots, i, 0, threadId) === 0) return i;
  return slots.length + threadId; // more threads than slots: never expected, but stay unique
}
const gpu = data.gpus.length > 0 ? (data.gpus[workerIndex % data.gpus.length] ?? null) : null;
const baseLog: Logger = createLogger({
  level: data.logLevel,
  meta: { host: data.host || hostname(), daemon: data.daemonId, pid: process.pid, api_name: data.apiName, worker: workerIndex },
  maxLineBytes: data.maxLineBytes,
  pretty: data.pretty,
  sync: true,
  protectReserved: true,
});

const control = new BroadcastChannel(channelNames.control(data.apiName));
const events = new BroadcastChannel(channelNames.events(data.apiName));
control.unref();
events.unref();

/** The timeouts of the batches running on this thread. */
const deadlines = new Deadlines();
/** Aborters of running batches, by job id, so a stop or shutdown reaches the handler's ctx.signal. */
const running = new Map<string, Set<BatchAbort>>();
/** A job's handler on this thread, and how long its constructor took (ms). */
interface Instance {
  handler: JobHandler<unknown>;
  initMs: number;
}
const instances = new Map<string, Promise<Instance>>();
/** Job specs decoded from their bytes, by job id (a task carries the spec encoded; see BatchesTask.job). */
const specs = new Map<string, { bytes: Uint8Array; spec: JobSpec }>();
// The client and the stores are loaded on first use: most handlers never use them, and loading them in every
// thread cost ~10 MB of heap (and their compiled code) per thread.
let client: Promise<JetbatchClient> | undefined;
let stored: Promise<StoredObjects> | undefined;

control.onmessage = (event: unknown) => {
  const msg = (event as { data: ControlMessage }).data;
  if (msg.type === 'ended') {
    instances.delete(msg.jobId);
    specs.delete(msg.jobId);
    jobLogs.delete(msg.jobId);
    runtime.dropped(msg.jobId);
    return;
  }
  const targets = msg.type === 'shutdown' ? [...running.values()] : [running.get(msg.jobId) ?? new Set<BatchAbort>()];
  const reason = new Error(msg.type === 'shutdown' ? 'the daemon is shutting down' : 'the job was stopped or ended');
  reason.name = 'AbortError';
  (reason as Error & { code: string }).code = ErrorCodes.ABORTED;
  for (const set of targets) for (const ac of set) ac.abort(reason);
};

/**
 * The runtime is chosen from the handler's path: `handler.py` (or a `handler` ending in .py) is Python. A path that
 * cannot be resolved leaves the JavaScript runtime, whose load reports the error with the first task.
 */
function pickRuntime(): Runtime {
  let path: string | undefined;
  try {
    path = resolveHandlerPath(data.projectDir, data.handlerPath);
  } catch {
    path = undefined;
  }
  if (path !== undefined && path.endsWith('.py')) {
    return new PythonRuntime({
      handlerPath: path,
      projectDir: data.projectDir,
      python: data.python,
      gpu,
      memoryLimitMb: data.memoryLimitMb,
      maxLineBytes: data.maxLineBytes,
      log: baseLog,
      // The child process was replaced: every job's handler must be constructed again in the new one.
      onReset: () => instances.clear(),
    });
  }
  // async: a project with no handler module rejects (reported with the first task) instead of throwing at load.
  return new JsRuntime(async () => importHandler(resolveHandlerPath(data.projectDir, data.handlerPath)));
}

const runtime: Runtime = pickRuntime();
const encodeResult = (value: unknown): Uint8Array | null => runtime.encodeResult(value);
// Load the handler as soon as the thread starts, so the first batch does not wait for the import. A failure is not
// reported here: the first task's create() tries again and reports it as the task's outcome.
runtime.preload();
process.once('exit', () => runtime.close());

const post = (kind: MetricKind) => (name: string, value = 1, labels: Record<string, string> = {}) =>
  events.postMessage({ type: 'metric', kind, name, value, labels } satisfies WorkerEvent);
const metrics: HandlerMetrics = { increment: post('counter'), gauge: post('gauge'), observe: post('histogram') };

/** What the contexts of this thread share (context.ts). */
const services: ThreadServices = {
  gpu,
  worker: workerIndex,
  projectDir: data.projectDir,
  metrics,
  lease: (jobId, batchId) => events.postMessage({ type: 'lease', jobId, batchId } satisfies WorkerEvent),
  client: () => {
    client ??= lazyImport<typeof import('../client/client.js')>(new URL('../client/client.js', import.meta.url)).then((m) =>
      m.JetbatchClient.connect({ ...data.nats, name: `jetbatch-handler-${data.apiName}` }),
    );
    client.catch(() => (client = undefined));
    return client;
  },
  open: async (url) => {
    stored ??= lazyImport<typeof import('./stored.js')>(new URL('./stored.js', import.meta.url)).then((m) => new m.StoredObjects(data.nats, data.s3, `jetbatch-handler-${data.apiName}-stores`));
    stored.catch(() => (stored = undefined));
    return (await stored).open(url);
  },
};

/** See BatchContext: `log` and `signal` are made only if the handler reads them. */
function makeContext(job: JobSpec, attempt: number, log: Logger | (() => Logger), signal: AbortSignal | BatchAbort, batchId: string | null, onExtend?: () => void): HandlerContext {
  return new BatchContext(services, job.job_id, attempt, log, signal, batchId, onExtend);
}

/**
 * The job's handler, constructed on the first call for the job on this thread. Only the call that constructed it
 * gets `initMs`, so the constructor's time is reported once, with the outcome of the task that ran it (another task
 * of the thread may run or finish in between: concurrency > 1, or another job's batches).
 */
async function instanceFor(job: JobSpec, log: Logger): Promise<{ handler: JobHandler<unknown>; initMs?: number }> {
  const existing = instances.get(job.job_id);
  if (existing !== undefined) return { handler: (await existing).handler };
  const created = runtime.create(job, makeContext(job, 0, log, new AbortController().signal, null));
  instances.set(job.job_id, created);
  created.catch(() => {
    if (instances.get(job.job_id) === created) instances.delete(job.job_id);
  });
  return created;
}

/** One batch of a task. */
interface Batch {
  job: JobSpec;
  batchId: string;
  attempt: number;
  payload: Uint8Array;
  timeoutMs: number;
}

/** The job's logger (job_id bound), one per job per thread. */
const jobLogs = new Map<string, Logger>();
function jobLog(jobId: string): Logger {
  let log = jobLogs.get(jobId);
  if (log === undefined) jobLogs.set(jobId, (log = withMeta(baseLog, { job_id: jobId })));
  return log;
}

async function runBatch(task: Batch, announce: boolean): Promise<Outcome> {
  let started = performance.now();
  const log = jobLog(task.job.job_id);
  let payload: unknown;
  try {
    payload = runtime.decode(task.payload);
  } catch (err) {
    return failure('decode', err, performance.now() - started);
  }
  let instance: { handler: JobHandler<unknown>; initMs?: number };
  const loading = performance.now();
  try {
    instance = await instanceFor(task.job, log);
  } catch (err) {
    return initFailure(err, performance.now() - started);
  }
  // A batch's duration is its own work: loading and constructing the handler (reported as initMs) do not count.
  started += performance.now() - loading;
  return withInit(await callHandleBatch(instance.handler, task, payload, log, announce, started), instance.initMs);
}

/** Runs handleBatch with the batch's timeout, abort and lease; `started` is when the batch's own work began. */
async function callHandleBatch(handler: JobHandler<unknown>, task: Batch, payload: unknown, log: Logger, announce: boolean, started: number): Promise<Outcome> {
  const ac = new BatchAbort();
  const deadline = deadlines.start(task.timeoutMs, () => ac.abort(timeoutError(task)));
  if (announce) events.postMessage({ type: 'started', jobId: task.job.job_id, batchId: task.batchId } satisfies WorkerEvent);
  track(task.job.job_id, ac);
  const ctx = makeContext(task.job, task.attempt, () => withMeta(log, { batch_id: task.batchId }), ac, task.batchId, () => deadlines.extend(deadline, task.timeoutMs));
  let value: unknown;
  try {
    value = await handler.handleBatch(payload, task.batchId, ctx);
  } catch (err) {
    return batchFailure(err, ac.aborted ? ac : undefined, performance.now() - started);
  } finally {
    deadlines.clear(deadline);
    untrack(task.job.job_id, ac);
  }
  return succeeded(value, performance.now() - started, encodeResult);
}

/** Registers a running batch's (or task's) abort, so a stop or shutdown reaches it. */
function track(jobId: string, ac: BatchAbort): void {
  let set = running.get(jobId);
  if (set === undefined) running.set(jobId, (set = new Set()));
  set.add(ac);
}

function untrack(jobId: string, ac: BatchAbort): void {
  const set = running.get(jobId);
  set?.delete(ac);
  if (set?.size === 0) running.delete(jobId);
}

function timeoutError(task: Batch): Error {
  const err = new Error(`batch ${task.batchId} exceeded its batch timeout of ${task.job.batch_timeout} s`);
  err.name = 'TimeoutError';
  (err as Error & { code: string }).code = ErrorCodes.BATCH_TIMEOUT;
  return err;
}

async function runComplete(task: CompleteTask): Promise<Outcome> {
  const started = performance.now();
  const log = jobLog(task.job.job_id);
  let initMs: number | undefined;
  try {
    const instance = await instanceFor(task.job, log);
    initMs = instance.initMs;
    const hook = instance.handler.onJobComplete;
    if (hook !== undefined) await hook(task.summary, makeContext(task.job, 0, log, new AbortController().signal, null));
    return withInit({ ok: true, durationMs: performance.now() - started, result: null }, initMs);
  } catch (err) {
    if (err instanceof StageError) return failure(err.stage, err.original, performance.now() - started);
    return withInit(failure('complete', err, performance.now() - started), initMs);
  } finally {
    instances.delete(task.job.job_id);
    specs.delete(task.job.job_id);
    jobLogs.delete(task.job.job_id);
    runtime.dropped(task.job.job_id);
  }
}

function specOf(task: BatchesTask): JobSpec {
  const cached = specs.get(task.jobId);
  if (cached !== undefined && sameBytes(cached.bytes, task.job)) return cached.spec;
  const spec = decodeValue(task.job) as JobSpec;
  specs.set(task.jobId, { bytes: task.job, spec });
  return spec;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The batches of a task, one after the other. The main thread's limit for the task covers them all; only the
 * first batch announces its start (after the handler is loaded), which starts that limit.
 */
async function runBatches(task: BatchesTask): Promise<Outcome[]> {
  const job = specOf(task);
  const batches: Batch[] = [];
  let start = 0;
  for (let i = 0; i < task.batchIds.length; i++) {
    const end = task.ends[i]!;
    batches.push({ job, batchId: task.batchIds[i]!, attempt: task.attempts[i]!, payload: task.data.subarray(start, end), timeoutMs: task.timeoutMs });
    start = end;
  }
  const { outcomes, initMs } = batches.length > 1 ? await runAtOnce(job, batches) : { outcomes: [], initMs: undefined };
  const rest = batches.slice(outcomes.length);
  const done = rest.length > 1 ? runtime.pipeline?.(job.job_id, rest) : undefined;
  try {
    for (const batch of rest) outcomes.push(await runBatch(batch, outcomes.length === 0));
  } finally {
    done?.();
  }
  if (outcomes.length > 0) withInit(outcomes[0]!, initMs);
  return outcomes;
}

/**
 * The task's batches through the handler's handleBatches, when the runtime has it (Python): the outcomes of the
 * first k of them, and the constructor's time if this call constructed the handler. None when a batch cannot be
 * decoded (runBatch then reports each); only the first when the handler cannot be constructed.
 */
async function runAtOnce(job: JobSpec, batches: readonly Batch[]): Promise<{ outcomes: Outcome[]; initMs?: number }> {
  if (!runtime.atOnce) return { outcomes: [] };
  const log = jobLog(job.job_id);
  let instance: { handler: JobHandler<unknown>; initMs?: number };
  try {
    for (const b of batches) runtime.decode(b.payload);
  } catch {
    return { outcomes: [] };
  }
  const started = performance.now();
  try {
    instance = await instanceFor(job, log);
  } catch (err) {
    // The first batch fails as runBatch would fail it; the next ones try again, one by one.
    return { outcomes: [initFailure(err, performance.now() - started)] };
  }
  const many = instance.handler.handleBatches;
  if (many === undefined) return { outcomes: [], initMs: instance.initMs };
  const ac = new BatchAbort();
  const first = batches[0]!;
  events.postMessage({ type: 'started', jobId: job.job_id, batchId: first.batchId } satisfies WorkerEvent);
  track(job.job_id, ac);
  let ends: BatchEnd[];
  try {
    ends = await many.call(instance.handler, batches, {
      timeoutMs: first.timeoutMs,
      abort: ac,
      context: (i, onExtend) => {
        const b = batches[i]!;
        return makeContext(job, b.attempt, () => withMeta(log, { batch_id: b.batchId }), ac, b.batchId, onExtend);
      },
      timeoutError: (i) => timeoutError(batches[i]!),
    });
  } catch {
    ends = [];
  } finally {
    untrack(job.job_id, ac);
  }
  // An abort (stop, shutdown) ends the batch it stopped with its reason (ProcessReplaced); earlier ones ended on their own.
  return { outcomes: ends.map((e) => (e.ok ? succeeded(e.value, e.ms, encodeResult) : batchFailure(e.error, undefined, e.ms))), initMs: instance.initMs };
}

// Loaded: the pool counts this thread among those that can run tasks (readiness, jetbatch_pool_threads).
events.postMessage({ type: 'ready', daemon: data.daemonId, thread: threadId } satisfies WorkerEvent);

export default async function run(task: Task): Promise<Outcome | WireOutcome[]> {
  if (task.kind === 'batches') return packOutcomes(await runBatches(task));
  return runComplete(task);
}

