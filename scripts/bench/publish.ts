/**
 * Raw publishing: every message with a Nats-Msg-Id, a window of PubAcks in flight (the reference for jetbatch's
 * submission), or at a fixed rate (for latency runs).
 */
import type { JetStreamClient, PubAck } from '@nats-io/jetstream';
import { headers, type MsgHdrs } from '@nats-io/transport-node';
import { Headers, batchMsgId } from '../../src/fleet/protocol.js';
import { nowMs } from './handlers/work.js';

/** PubAcks awaited at once, as the jetbatch client does. */
export const PUBLISH_WINDOW = 256;

export interface Outgoing {
  subject: string;
  data: Uint8Array;
  msgID: string;
  headers?: MsgHdrs;
}

/** The headers jetbatch puts on a batch (docs/PROTOCOL.md), so raw messages weigh what jetbatch's weigh. */
export function batchHeaders(api: string, job: string, batchId: string): MsgHdrs {
  const h = headers();
  h.set(Headers.jobId, job);
  h.set(Headers.batchId, batchId);
  h.set(Headers.apiName, api);
  h.set(Headers.generation, '0');
  return h;
}

export { batchMsgId };

function publishOne(js: JetStreamClient, m: Outgoing): Promise<PubAck> {
  return js.publish(m.subject, m.data, m.headers === undefined ? { msgID: m.msgID } : { msgID: m.msgID, headers: m.headers });
}

/** Publishes `n` messages with up to `window` PubAcks in flight; resolves with the elapsed seconds. */
export async function publishWindowed(js: JetStreamClient, n: number, message: (i: number) => Outgoing, window = PUBLISH_WINDOW): Promise<number> {
  const started = nowMs();
  const inflight: Array<Promise<PubAck>> = [];
  let head = 0;
  for (let i = 0; i < n; i++) {
    inflight.push(publishOne(js, message(i)));
    if (inflight.length - head >= window) await inflight[head++];
  }
  await Promise.all(inflight.slice(head));
  return (nowMs() - started) / 1000;
}

/**
 * Publishes `n` messages at `rate` per second, evenly (checked every millisecond), never waiting for PubAcks on
 * the way; `message` gets the send time so it can stamp it into the payload.
 */
export async function publishPaced(js: JetStreamClient, n: number, rate: number, message: (i: number, t: number) => Outgoing): Promise<void> {
  const started = nowMs();
  const acks: Array<Promise<PubAck>> = [];
  let sent = 0;
  while (sent < n) {
    const due = Math.min(n, Math.floor(((nowMs() - started) * rate) / 1000) + 1);
    while (sent < due) acks.push(publishOne(js, message(sent++, nowMs())));
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(acks);
}
