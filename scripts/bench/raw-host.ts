/**
 * The raw limit of a handler host (issue 17 item 1): what any host of a JavaScript handler must do, and nothing more —
 * consume from JetStream, hand the batches' bytes to 2 Piscina threads, decode them there with jetbatch's
 * @msgpack/msgpack settings (handlers/decode-task.ts), call a no-op, and ack once the thread answered. Given the
 * same freedom as jetbatch to group: whatever has arrived when a thread is free goes to it in one task (up to
 * MAX_GROUP batches, copied into one transferred buffer), one task per thread at a time. Timed from the first
 * delivery to the server having every ack. Raw JetStream consume+ack and raw Piscina dispatch each leave out half
 * of this work; jetbatch's record batches are judged against it.
 */
import type { JsMsg } from '@nats-io/jetstream';
import { Piscina } from 'piscina';
import { CpuSampler, perBatch } from './cpu-split.js';
import { throughput, type Throughput } from './figures.js';
import { nowMs } from './handlers/work.js';
import type { DecodeTask } from './handlers/decode-task.js';
import { RAW_STREAM } from './infra.js';
import { addRawConsumer, fillRaw, type RawEnv } from './raw-jetstream.js';
import { collectGarbage } from './heap.js';

const TASK_FILE = new URL('./handlers/decode-task.ts', import.meta.url);
/** Most batches in one task (as jetbatch's MAX_GROUP). */
const MAX_GROUP = 64;
/** Batches received and not yet acked, at most. */
const WINDOW = 1024;

function taskOf(group: readonly JsMsg[]): DecodeTask {
  const data = new Uint8Array(group.reduce((s, m) => s + m.data.byteLength, 0));
  const ends: number[] = [];
  let at = 0;
  for (const m of group) {
    data.set(m.data, at);
    at += m.data.byteLength;
    ends.push(at);
  }
  return { data, ends };
}

/** `natsPid`: the server's, to report where the CPU went (cpu-split.ts). */
export async function rawHost(env: RawEnv, scenario: string, bytes: Uint8Array, itemsPerBatch: number, n: number, threads: number, natsPid?: number): Promise<Throughput> {
  const sampler = natsPid !== undefined && CpuSampler.available ? new CpuSampler(natsPid) : undefined;
  sampler?.start();
  const pool = new Piscina({ filename: TASK_FILE.href, minThreads: threads, maxThreads: threads, idleTimeout: Infinity });
  try {
    // Warm-up: every thread started and the task module loaded.
    await Promise.all(Array.from({ length: threads * 4 }, () => pool.run(taskOf([{ data: bytes } as JsMsg]))));
    const subject = await fillRaw(env, `host-${scenario}`, bytes, n);
    const durable = subject.replaceAll('.', '_');
    await addRawConsumer(env.jsm, durable, subject);
    const consumer = await env.js.consumers.get(RAW_STREAM, durable);
    collectGarbage();
    const messages = await consumer.consume();
    const pending: JsMsg[] = [];
    let first = 0;
    let got = 0;
    let acked = 0;
    let tasks = 0;
    let room: (() => void) | undefined;
    let failure: unknown;
    let finish: () => void = () => {};
    const done = new Promise<void>((resolve) => (finish = resolve));
    const pump = (): void => {
      while (tasks < threads && pending.length > 0) {
        const group = pending.splice(0, MAX_GROUP);
        const task = taskOf(group);
        tasks++;
        pool.run(task, { transferList: [task.data.buffer as ArrayBuffer] }).then(
          () => {
            for (const m of group) m.ack();
            tasks--;
            acked += group.length;
            if (acked === n) finish();
            room?.();
            pump();
          },
          (err: unknown) => {
            failure = err;
            finish();
          },
        );
      }
    };
    for await (const m of messages) {
      if (got === 0) {
        first = nowMs();
        sampler?.sample();
      }
      pending.push(m);
      pump();
      if (++got >= n) break;
      if (got - acked >= WINDOW) await new Promise<void>((resolve) => (room = resolve));
      room = undefined;
    }
    await done;
    if (failure !== undefined) throw failure;
    await env.nc.flush();
    const end = nowMs();
    sampler?.stop();
    await messages.close();
    await env.jsm.consumers.delete(RAW_STREAM, durable);
    const split = sampler?.split(first, end);
    return { ...throughput(n, itemsPerBatch, bytes.byteLength, (end - first) / 1000), ...(split ? { cpu: perBatch(split, n) } : {}) };
  } finally {
    sampler?.stop();
    await pool.destroy();
  }
}
