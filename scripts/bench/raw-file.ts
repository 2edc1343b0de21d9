/**
 * The raw limit of submitting a JSON Lines file: what any publisher of docs/PROTOCOL.md must do with such a file
 * and nothing more. Read it in 64 KiB chunks, split lines, `JSON.parse` each, group 100 values, MessagePack-encode
 * the group with the encoder jetbatch uses, publish it with the protocol's headers and msg id, up to 256 PubAcks in
 * flight. No checks, no checkpoints, no job record: the reference issue 16's file-submission rate is judged
 * against, beside the stricter one (the same batches published already encoded from memory).
 */
import { createReadStream } from 'node:fs';
import type { PubAck } from '@nats-io/jetstream';
import { encodeValue } from '../../src/fleet/protocol.js';
import { throughput, type Throughput } from './figures.js';
import { nowMs } from './handlers/work.js';
import { RAW_STREAM, rawSubject } from './infra.js';
import { PUBLISH_WINDOW, batchHeaders, batchMsgId } from './publish.js';
import type { RawEnv } from './raw-jetstream.js';

let runs = 0;

export async function rawFilePublish(env: RawEnv, file: string, itemsPerBatch: number): Promise<Throughput> {
  const tag = `file-${++runs}`;
  const subject = rawSubject(tag);
  const started = nowMs();
  const inflight: Array<Promise<PubAck>> = [];
  let head = 0;
  let batches = 0;
  let bytes = 0;
  let batch: unknown[] = [];
  const publish = async (): Promise<void> => {
    const data = encodeValue(batch);
    batch = [];
    bytes += data.byteLength;
    const id = String(batches++);
    inflight.push(env.js.publish(subject, data, { msgID: batchMsgId(tag, id, 0), headers: batchHeaders('raw', tag, id) }));
    if (inflight.length - head >= PUBLISH_WINDOW) await inflight[head++];
  };
  const decoder = new TextDecoder();
  let rest = '';
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 16 }) as AsyncIterable<Buffer>) {
    const text = rest + decoder.decode(chunk, { stream: true });
    let start = 0;
    for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', start)) {
      if (i > start) batch.push(JSON.parse(text.slice(start, i)));
      start = i + 1;
      if (batch.length >= itemsPerBatch) await publish();
    }
    rest = text.slice(start);
  }
  if (rest.length > 0) batch.push(JSON.parse(rest));
  if (batch.length > 0) await publish();
  await Promise.all(inflight.slice(head));
  const seconds = (nowMs() - started) / 1000;
  await env.jsm.streams.purge(RAW_STREAM, { filter: subject });
  return throughput(batches, itemsPerBatch, bytes / Math.max(1, batches), seconds);
}
