/**
 * jetbatch end to end, in process: a Daemon (parseConfig + Daemon.start) and a JetbatchClient. The measured job is
 * submitted while no daemon serves its API, then a fresh daemon is started. Two figures: from the first handler call
 * to every batch acked (the daemon's counter; the one compared with raw consume+ack), and to the job's recorded
 * completion (completion claimed, onJobComplete run, final status written: a fixed cost per job). The submission
 * time is reported on its own.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import type { JetbatchClient } from '../../src/client/client.js';
import { parseConfig, type DaemonOptions } from '../../src/daemon/config.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { isTerminal, type JobStatus } from '../../src/types.js';
import { CpuSampler, perBatch } from './cpu-split.js';
import { throughput, type Throughput } from './figures.js';
import { nowMs } from './handlers/work.js';
import type { Marks } from './marks.js';
import { collectGarbage } from './heap.js';

const here = fileURLToPath(new URL('.', import.meta.url));
export const HANDLERS = { noop: join(here, 'handlers', 'noop'), cpu: join(here, 'handlers', 'cpu'), python: join(here, 'handlers', 'python') } as const;

/** A job's `workers` in the benchmark: no fleet cap, so the daemon's own capacity is what is measured. */
export const WORKERS = 1000;
const WARMUP_BATCHES = 200;
const JOB_TIMEOUT_MS = 180_000;

export interface BenchApi {
  name: string;
  project: string;
  threads: number;
  config?: Record<string, unknown>;
  /** Interpreter of a Python project (handler.py). */
  python?: string;
}

export function daemonOptions(url: string, api: BenchApi): DaemonOptions {
  return parseConfig(
    {
      nats: { servers: [url] },
      apis: [{ name: api.name, project: api.project, threads: api.threads, config: api.config ?? {}, batch_timeout: '60s', ...(api.python !== undefined ? { python: api.python } : {}) }],
      metrics: { enabled: false },
      log_level: 'warn',
      shutdown_grace: '5s',
      lease: '30s',
      check_interval: '500ms',
    },
    join(here, 'bench.yaml'),
  );
}

export function startBenchDaemon(url: string, api: BenchApi): Promise<Daemon> {
  // Daemon logs go to stderr so stdout stays the report (and --json's last line).
  return Daemon.start(daemonOptions(url, api), { logger: pino({ level: 'warn' }, pino.destination({ dest: 2, sync: false })) });
}

/** How often waitSucceeded asks for the job's status; while `quietUntil` is pending, QUIET_POLL_MS. */
const POLL_MS = 200;
const QUIET_POLL_MS = 2000;

/**
 * Polls the job's status until it ends (like `client.wait`), and reports status calls that take over a second:
 * those stall the run, not the measurement (which uses the ack counter and the record's end time). Until
 * `quietUntil` settles (the measured interval), it asks only every QUIET_POLL_MS: a status call is ~8 JetStream API
 * requests, which 5 times a second taxed the measured daemon's main thread and nats-server (raw references poll
 * nothing), yet a job that fails is still found within seconds.
 */
export async function waitSucceeded(client: JetbatchClient, jobId: string, batches: number, log?: (msg: string) => void, quietUntil?: Promise<unknown>): Promise<JobStatus> {
  const deadline = Date.now() + JOB_TIMEOUT_MS;
  let quiet = quietUntil !== undefined;
  void quietUntil?.then(
    () => (quiet = false),
    () => (quiet = false),
  );
  for (;;) {
    const t = nowMs();
    const st = await client.status(jobId);
    const took = nowMs() - t;
    if (took > 1000) log?.(`status(${jobId}) took ${Math.round(took)} ms (job ${st.status})`);
    if (isTerminal(st.status)) {
      if (st.status !== 'succeeded' || st.batch_metrics.succeeded !== batches || st.batch_metrics.failed !== 0) {
        throw new Error(`job ${jobId} ended ${st.status} with ${st.batch_metrics.succeeded}/${batches} succeeded, ${st.batch_metrics.failed} failed`);
      }
      return st;
    }
    if (Date.now() > deadline) throw new Error(`job ${jobId} still ${st.status} after ${JOB_TIMEOUT_MS} ms`);
    if (!quiet) await new Promise((r) => setTimeout(r, POLL_MS));
    else await Promise.race([new Promise((r) => setTimeout(r, QUIET_POLL_MS)), quietUntil]);
  }
}

/** Submits `n` copies of `items` as one job and waits for it to succeed. */
export async function runJob(client: JetbatchClient, api: string, items: unknown[], n: number): Promise<string> {
  const rec = await client.submit({ api_name: api, batches: Array.from({ length: n }, () => items), workers: WORKERS });
  await waitSucceeded(client, rec.job_id, n);
  return rec.job_id;
}

export interface JetbatchEnv {
  url: string;
  client: JetbatchClient;
  marks: Marks;
  /** When a job's first batch reached a handler (epoch ms), if not from `marks` (Python handlers write files). */
  first?: (job: string) => number | undefined;
  /** Progress of the phases (warm-up, submit, drain, shutdown). */
  log?: (msg: string) => void;
  /** nats-server's pid: the run reports where the CPU of its interval went (cpu-split.ts). */
  natsPid?: number;
  /** Called when the measured daemon starts and when every batch is acked (profiling). */
  onMeasure?: { start(): Promise<void>; stop(): Promise<void> };
}

export interface JetbatchRun {
  /** First handler call → every batch acked (the daemon's own counter): comparable with raw consume+ack. */
  run: Throughput;
  /** First handler call → job recorded complete. */
  complete: Throughput;
  submitSeconds: number;
  /** Measured daemon started → its first handler call (binding, thread start, handler load), in ms. */
  startLagMs: number;
}

/**
 * Resolves with the time the daemon has counted `n` succeeded (acked) batches, polling its metrics every 50 ms, and
 * every 5 ms from 90 % on: the end is still known within 5 ms, but the measured daemon's main thread is no longer
 * woken 200 times a second by the benchmark itself (raw references wait on a promise).
 */
function whenAcked(daemon: Daemon, n: number, signal: AbortSignal): Promise<number> {
  return new Promise((resolve) => {
    const poll = (): void => {
      if (signal.aborted) return;
      void daemon.metrics.batches.get().then((m) => {
        const done = m.values.filter((v) => v.labels.outcome === 'succeeded').reduce((s, v) => s + v.value, 0);
        if (done >= n) resolve(nowMs());
        else setTimeout(poll, done >= 0.9 * n ? 5 : 50).unref();
      });
    };
    poll();
  });
}

function firstMark(env: JetbatchEnv, job: string): number | undefined {
  return env.first !== undefined ? env.first(job) : env.marks.first(job);
}

export async function jetbatchThroughput(env: JetbatchEnv, api: BenchApi, items: unknown[], bytesPerBatch: number, n: number): Promise<JetbatchRun> {
  // Registers the API with the fleet and warms the process (JIT, module caches) on a small job first.
  const log = env.log ?? ((): void => undefined);
  let daemon = await startBenchDaemon(env.url, api);
  try {
    await runJob(env.client, api.name, items, Math.min(WARMUP_BATCHES, Math.max(10, Math.ceil(n / 10))));
    log(`${api.name}: warmed up`);
  } finally {
    await daemon.close();
  }
  log(`${api.name}: warm-up daemon closed; submitting ${n} batches`);
  const submitStart = nowMs();
  const rec = await env.client.submit({ api_name: api.name, batches: Array.from({ length: n }, () => items), workers: WORKERS });
  const submitSeconds = (nowMs() - submitStart) / 1000;
  log(`${api.name}: submitted in ${Math.round(submitSeconds * 1000)} ms; starting the measured daemon`);
  collectGarbage();
  await env.onMeasure?.start();
  let measuring = env.onMeasure !== undefined;
  const stopMeasure = async (): Promise<void> => {
    if (!measuring) return;
    measuring = false;
    await env.onMeasure?.stop();
  };
  const sampler = env.natsPid !== undefined && CpuSampler.available ? new CpuSampler(env.natsPid) : undefined;
  sampler?.start();
  // The interval starts at the first handler call: sampled as its mark arrives (Python handlers' file marks are not
  // seen as they come; their interval starts at the nearest background sample).
  const offFirst = env.marks.onFirst((job) => {
    if (job === rec.job_id) sampler?.sample();
  });
  const daemonStart = nowMs();
  daemon = await startBenchDaemon(env.url, api);
  let ackedAt = 0;
  const polling = new AbortController();
  try {
    const acked = whenAcked(daemon, n, polling.signal).then(async (t) => {
      ackedAt = t;
      sampler?.stop();
      await stopMeasure();
    });
    await waitSucceeded(env.client, rec.job_id, n, log, acked);
    log(`${api.name}: job complete; first handler call ${Math.round((firstMark(env, rec.job_id) ?? NaN) - daemonStart)} ms after the daemon started`);
  } finally {
    offFirst();
    sampler?.stop();
    polling.abort();
    await stopMeasure();
    await daemon.close();
    log(`${api.name}: daemon closed`);
  }
  const end = (await env.client.record(rec.job_id)).end_time;
  const first = firstMark(env, rec.job_id);
  if (end === null || first === undefined || ackedAt === 0) throw new Error(`job ${rec.job_id}: no start mark, ack count or end time`);
  const split = sampler?.split(first, ackedAt);
  return {
    run: { ...throughput(n, items.length, bytesPerBatch, (ackedAt - first) / 1000), ...(split ? { cpu: perBatch(split, n) } : {}) },
    complete: throughput(n, items.length, bytesPerBatch, (Date.parse(end) - first) / 1000),
    submitSeconds,
    startLagMs: Math.round(first - daemonStart),
  };
}
