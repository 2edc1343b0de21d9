/**
 * Raw JetStream limits on the same messages jetbatch stores: WorkQueue pull consume with fire-and-forget acks
 * (timed from the first delivery to the last ack flushed to the server), and async publish with msg ids.
 */
import { AckPolicy, DeliverPolicy, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { CpuSampler, perBatch } from './cpu-split.js';
import { throughput, type Throughput } from './figures.js';
import { nowMs } from './handlers/work.js';
import { collectGarbage } from './heap.js';
import { RAW_STREAM, rawSubject } from './infra.js';
import { batchHeaders, batchMsgId, publishWindowed } from './publish.js';

export interface RawEnv {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
}

let runs = 0;

/** Fills a fresh raw subject with `n` copies of `bytes` (headers as jetbatch's); returns the subject. */
export async function fillRaw(env: RawEnv, scenario: string, bytes: Uint8Array, n: number): Promise<string> {
  const tag = `${scenario}-${++runs}`;
  const subject = rawSubject(tag);
  await publishWindowed(env.js, n, (i) => ({ subject, data: bytes, msgID: batchMsgId(tag, String(i), 0), headers: batchHeaders('raw', tag, String(i)) }));
  return subject;
}

export async function addRawConsumer(jsm: JetStreamManager, durable: string, subject: string): Promise<void> {
  await jsm.consumers.add(RAW_STREAM, {
    durable_name: durable,
    filter_subject: subject,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    max_ack_pending: 20_000,
    ack_wait: 60_000_000_000,
  });
}

/**
 * Consumes `n` messages with `consume()` (its default buffer unless `maxMessages`), acking each without waiting.
 * Timed from the first message to the server having every ack (flush).
 */
/** `natsPid`: the server's, to report where the CPU went (cpu-split.ts). */
export async function rawConsume(env: RawEnv, scenario: string, bytes: Uint8Array, itemsPerBatch: number, n: number, maxMessages?: number, natsPid?: number): Promise<Throughput> {
  const subject = await fillRaw(env, scenario, bytes, n);
  const sampler = natsPid !== undefined && CpuSampler.available ? new CpuSampler(natsPid) : undefined;
  const durable = subject.replaceAll('.', '_');
  await addRawConsumer(env.jsm, durable, subject);
  const consumer = await env.js.consumers.get(RAW_STREAM, durable);
  collectGarbage();
  sampler?.start();
  const messages = await consumer.consume(maxMessages === undefined ? {} : { max_messages: maxMessages });
  let first = 0;
  let got = 0;
  for await (const m of messages) {
    if (got === 0) {
      first = nowMs();
      sampler?.sample();
    }
    m.ack();
    if (++got >= n) break;
  }
  await env.nc.flush();
  const end = nowMs();
  sampler?.stop();
  await messages.close();
  await env.jsm.consumers.delete(RAW_STREAM, durable);
  const split = sampler?.split(first, end);
  return { ...throughput(n, itemsPerBatch, bytes.byteLength, (end - first) / 1000), ...(split ? { cpu: perBatch(split, n) } : {}) };
}

/** Raw async publish of the given batches with Nats-Msg-Id, 256 PubAcks in flight (the submission reference). */
export async function rawPublish(env: RawEnv, batches: readonly Uint8Array[], itemsPerBatch: number): Promise<Throughput> {
  const tag = `pub-${++runs}`;
  const subject = rawSubject(tag);
  const seconds = await publishWindowed(env.js, batches.length, (i) => ({ subject, data: batches[i] ?? new Uint8Array(0), msgID: batchMsgId(tag, String(i), 0) }));
  await env.jsm.streams.purge(RAW_STREAM, { filter: subject });
  const bytes = batches.reduce((s, b) => s + b.byteLength, 0) / Math.max(1, batches.length);
  return throughput(batches.length, itemsPerBatch, bytes, seconds);
}
