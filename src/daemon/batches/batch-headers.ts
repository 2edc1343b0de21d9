/**
 * The two headers the hot path needs (batch id, generation), read straight from a delivered message's header
 * block. `msg.headers` makes NATS.js decode the whole block into a validated map on first access, which cost
 * ~3 µs per batch on the daemon's main thread, about a tenth of its budget at 128 B (docs/benchmarks.md).
 *
 * The raw block is reached through NATS.js 3 message internals; if they are not there (another client version),
 * the public `msg.headers` is used. test/batch-headers.test.ts checks both agree, and that the fast path is taken.
 */
import type { JsMsg } from '@nats-io/jetstream';
import { Headers } from '../../fleet/protocol.js';
import { coreOf } from './msg-internals.js';

const decoder = new TextDecoder();

/** The message's header block as text (`NATS/1.0…\r\nKey: value\r\n…`), or undefined if it cannot be reached. */
export function rawHeaderBlock(msg: JsMsg): string | undefined {
  const core = coreOf(msg);
  const raw = core?._rdata;
  const hdr = core?._msg?.hdr;
  if (!(raw instanceof Uint8Array) || typeof hdr !== 'number' || hdr < 0 || hdr > raw.byteLength) return undefined;
  return decoder.decode(raw.subarray(0, hdr));
}

/** The first value of `key` (exact name, as `msg.headers.get` matches) in a header block; '' when absent. */
export function headerValue(block: string, key: string): string {
  const needle = `\r\n${key}:`;
  const at = block.indexOf(needle);
  if (at < 0) return '';
  const from = at + needle.length;
  const end = block.indexOf('\r\n', from);
  return block.slice(from, end < 0 ? undefined : end).trim();
}

export function batchHeaders(msg: JsMsg): { batchId: string; generation: string } {
  const block = rawHeaderBlock(msg);
  if (block === undefined) {
    const h = msg.headers;
    return { batchId: h?.get(Headers.batchId) ?? '', generation: h?.get(Headers.generation) ?? '' };
  }
  return { batchId: headerValue(block, Headers.batchId), generation: headerValue(block, Headers.generation) };
}

export interface BatchIdentity {
  apiName: string;
  jobId: string;
  batchId: string;
  generation: number;
}

/**
 * The identity of a batch pulled from the consumer of `jobId`, whose filter subject already names the API and the
 * job: only the batch id and generation headers are read. Null when the batch id is missing or malformed.
 */
export function identify(msg: JsMsg, apiName: string, jobId: string): BatchIdentity | null {
  const { batchId, generation: g } = batchHeaders(msg);
  const generation = g ? Number(g) : 0;
  if (!batchId || !Number.isInteger(generation)) return null;
  return { apiName, jobId, batchId, generation };
}
