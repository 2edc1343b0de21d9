/**
 * Worker-thread entry of an API's Piscina pool: sets the thread up (its slot and GPU, logger, channels to the main
 * thread, the handler runtime chosen from the handler's path, the services a handler's ctx reaches) and hands each
 * task to the thread's TaskRunner (task-runner.ts), which runs it through the runtime (runtime.ts: JavaScript in this
 * thread, or Python in a child process of this thread) and resolves with its outcomes.
 */
import { hostname } from 'node:os';
import { BroadcastChannel, threadId, workerData as rawWorkerData } from 'node:worker_threads';
import type { Logger } from 'pino';
import { createLogger } from '../util/log.js';
import type { JetbatchClient } from '../client/client.js';
import { ErrorCodes } from '../errors.js';
import type { HandlerMetrics } from '../handler.js';
import { importHandler, resolveHandlerPath } from './load-handler.js';
import { JsRuntime } from './js-runtime.js';
import type { StoredObjects } from './stored.js';
import { lazyImport } from '../util/lazy-import.js';
import { PythonRuntime } from './python/python-runtime.js';
import type { Runtime } from './runtime.js';
import type { ThreadServices } from './context.js';
import { TaskRunner } from './task-runner.js';
import { packOutcomes, type WireOutcome } from './wire-outcomes.js';
import { channelNames, type ControlMessage, type Outcome, type MetricKind, type Task, type WorkerData, type WorkerEvent } from './thread-protocol.js';

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

// The client and the stores are loaded on first use: most handlers never use them, and loading them in every
// thread cost ~10 MB of heap (and their compiled code) per thread.
let client: Promise<JetbatchClient> | undefined;
let stored: Promise<StoredObjects> | undefined;

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
      onReset: () => runner.reset(),
    });
  }
  // async: a project with no handler module rejects (reported with the first task) instead of throwing at load.
  return new JsRuntime(async () => importHandler(resolveHandlerPath(data.projectDir, data.handlerPath)));
}

const runtime: Runtime = pickRuntime();
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

const runner = new TaskRunner({ runtime, services, log: baseLog, emit: (event) => events.postMessage(event) });

control.onmessage = (event: unknown) => {
  const msg = (event as { data: ControlMessage }).data;
  if (msg.type === 'ended') {
    runner.ended(msg.jobId);
    return;
  }
  const reason = new Error(msg.type === 'shutdown' ? 'the daemon is shutting down' : 'the job was stopped or ended');
  reason.name = 'AbortError';
  (reason as Error & { code: string }).code = ErrorCodes.ABORTED;
  runner.abort(msg.type === 'shutdown' ? undefined : msg.jobId, reason);
};

// Loaded: the pool counts this thread among those that can run tasks (readiness, jetbatch_pool_threads).
events.postMessage({ type: 'ready', daemon: data.daemonId, thread: threadId } satisfies WorkerEvent);

export default async function run(task: Task): Promise<Outcome | WireOutcome[]> {
  if (task.kind === 'batches') return packOutcomes(await runner.runBatches(task));
  return runner.runComplete(task);
}

