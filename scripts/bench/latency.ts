/**
 * Handler-start latency at a moderate fixed rate: each batch carries its publish time; the handler (jetbatch) or
 * the Piscina task (raw JetStream consume → Piscina dispatch, the same two threads) reports when it started. The
 * jetbatch job is enqueued by a paced publisher that follows docs/PROTOCOL.md (record `enqueuing`, batches with
 * their headers and msg ids, then `pending`), since the client publishes as fast as it can.
 */
import type { JsMsg } from '@nats-io/jetstream';
import type { JetbatchClient } from '../../src/client/client.js';
import type { FleetContext } from '../../src/fleet/context.js';
import { Subjects, batchMsgId } from '../../src/fleet/protocol.js';
import { createJob, transitionJob } from '../../src/fleet/registry.js';
import { newJobId } from '../../src/fleet/submission.js';
import type { JobRecord } from '../../src/types.js';
import { percentile, round } from './figures.js';
import { nowMs } from './handlers/work.js';
import { RAW_STREAM, rawSubject, within } from './infra.js';
import { HANDLERS, WORKERS, runJob, startBenchDaemon, waitSucceeded } from './jetbatch.js';
import type { Marks } from './marks.js';
import { sizedBatch, stampedBatch } from './payloads.js';
import { batchHeaders, publishPaced } from './publish.js';
import { collectGarbage } from './heap.js';
import { addRawConsumer, type RawEnv } from './raw-jetstream.js';
import { rawPool, runTask } from './raw-piscina.js';

export interface Latency {
  rate: number;
  samples: number;
  p50: number;
  p99: number;
  max: number;
  /** The dropped first second (see summarise), kept in the JSON so a warm-up outlier stays visible. */
  warmup?: { samples: number; p99: number; max: number };
}

/** Repeats of each latency measurement in one run (issue 17 item 3: p99 over 3 repeats, not one). */
export const LATENCY_REPEATS = 3;

/**
 * Samples of the first second are dropped (connection and JIT warm-up) from the figures; their own p99 and max are
 * kept apart as `warmup`.
 */
function summarise(rate: number, ms: number[]): Latency {
  const head = Math.min(rate, Math.floor(ms.length / 5));
  const kept = ms.slice(head);
  const dropped = ms.slice(0, head);
  const figures: Latency = { rate, samples: kept.length, p50: round(percentile(kept, 50), 3), p99: round(percentile(kept, 99), 3), max: round(Math.max(...kept), 3) };
  if (dropped.length > 0) figures.warmup = { samples: dropped.length, p99: round(percentile(dropped, 99), 3), max: round(Math.max(...dropped), 3) };
  return figures;
}

/** The repeat with the median p99 (the lower middle one of an even count, as medianRun), if any. */
export function medianRepeat(repeats: readonly Latency[]): Latency | undefined {
  const sorted = [...repeats].sort((a, b) => a.p99 - b.p99);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

export async function jetbatchLatency(url: string, client: JetbatchClient, ctx: FleetContext, marks: Marks, rate: number, seconds: number): Promise<Latency> {
  const api = 'b-latency';
  const daemon = await startBenchDaemon(url, { name: api, project: HANDLERS.noop, threads: 2, config: { report_latency: true } });
  try {
    await runJob(client, api, sizedBatch(128).items, 200);
    const n = rate * seconds;
    const now = Date.now();
    const record: JobRecord = {
      job_id: newJobId(),
      api_name: api,
      status: 'enqueuing',
      workers: WORKERS,
      total_batch_count: n,
      config: {},
      timeout: null,
      batch_timeout: null,
      max_attempts: null,
      backoff: null,
      spec_hash: `bench-latency-${now}`,
      start_time: new Date(now).toISOString(),
      end_time: null,
      enqueue_deadline: new Date(now + 600_000).toISOString(),
      error: null,
      batch_metrics: null,
      batches_in_queue: null,
      completion: null,
    };
    const job = record.job_id;
    if (!(await createJob(ctx.jobs, record))) throw new Error(`job ${job} exists`);
    const subject = Subjects.batch(api, job);
    collectGarbage();
    await publishPaced(ctx.js, n, rate, (i, t) => ({ subject, data: stampedBatch(t), msgID: batchMsgId(job, String(i), 0), headers: batchHeaders(api, job, String(i)) }));
    await transitionJob(ctx.jobs, job, (cur) => (cur.status === 'enqueuing' ? { ...cur, status: 'pending' } : null));
    await waitSucceeded(client, job, n);
    return summarise(rate, marks.latencies(job));
  } finally {
    await daemon.close();
  }
}

/**
 * Publishes rate × seconds stamped batches (their publish time also in a `Bench-T0` header) to a raw consumer of
 * their own, and hands each one received, with its publish time, to `received`, which acks it and returns its
 * latency (or a promise of it). Resolves with the figures once every latency is in.
 */
async function rawPaced(env: RawEnv, tag: string, rate: number, seconds: number, received: (m: JsMsg, t0: number) => number | Promise<number>): Promise<Latency> {
  const n = rate * seconds;
  const subject = rawSubject(tag);
  const durable = subject.replaceAll('.', '_');
  await addRawConsumer(env.jsm, durable, subject);
  const latencies: number[] = [];
  try {
    const consumer = await env.js.consumers.get(RAW_STREAM, durable);
    const messages = await consumer.consume();
    const consumed = (async () => {
      let got = 0;
      const later: Array<Promise<void>> = [];
      for await (const m of messages) {
        const ms = received(m, Number(m.headers?.get('Bench-T0')));
        if (typeof ms === 'number') latencies.push(ms);
        else later.push(ms.then((x) => void latencies.push(x)));
        if (++got >= n) break;
      }
      await Promise.all(later);
    })();
    collectGarbage();
    await publishPaced(env.js, n, rate, (i, t) => {
      const headers = batchHeaders('raw', tag, String(i));
      headers.set('Bench-T0', String(t));
      return { subject, data: stampedBatch(t), msgID: batchMsgId(tag, String(i), 0), headers };
    });
    await within(consumed, 60_000, `${tag}: consumer`);
    await messages.close();
    return summarise(rate, latencies);
  } finally {
    await env.jsm.consumers.delete(RAW_STREAM, durable).catch(() => undefined);
  }
}

/**
 * The floor: publish → consume() receipt on the main thread, acked at once. Every pipeline measured here starts a
 * handler after this point, so no handler-start p99 of the same run can be expected below this one's.
 */
export function floorLatency(env: RawEnv, rate: number, seconds: number): Promise<Latency> {
  return rawPaced(env, `floor-${Date.now()}`, rate, seconds, (m, t0) => {
    const ms = nowMs() - t0;
    m.ack();
    return ms;
  });
}

/** The raw pipeline: consume() → copy → Piscina task on 2 threads → ack after the task. */
export async function rawLatency(env: RawEnv, rate: number, seconds: number): Promise<Latency> {
  const pool = rawPool(2);
  try {
    await Promise.all(Array.from({ length: 8 }, () => runTask(pool, new Uint8Array(128), 0)));
    return await rawPaced(env, `latency-${Date.now()}`, rate, seconds, (m, t0) =>
      runTask(pool, m.data, 0, t0).then((ms) => {
        m.ack();
        return ms;
      }),
    );
  } finally {
    await pool.destroy();
  }
}
