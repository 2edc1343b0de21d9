/**
 * The batches of each scenario. A batch is what jetbatch stores in JetStream: a MessagePack array of items. Sized
 * batches hold one binary item padded so the encoded batch has exactly the scenario's size; record batches hold
 * small records. Raw figures use the very same encoded bytes.
 */
import { encodeValue } from '../../src/fleet/protocol.js';

export const KiB = 1024;
export const MiB = 1024 * 1024;
/** The client keeps 4 KiB of every message for headers, so the largest batch is 1 MiB − 4 KiB (max_payload). */
export const LARGEST_BATCH = MiB - 4096;

export interface BatchShape {
  /** Items of one batch, as a publisher passes them to `client.submit`. */
  items: unknown[];
  /** The same batch encoded. */
  bytes: Uint8Array;
}

/** One binary item padded so that the encoded batch is exactly `size` bytes. */
export function sizedBatch(size: number): BatchShape {
  for (const overhead of [3, 4, 6]) {
    const items = [new Uint8Array(size - overhead).fill(0x61)];
    const bytes = encodeValue(items);
    if (bytes.byteLength === size) return { items, bytes };
  }
  throw new Error(`cannot build a batch of exactly ${size} bytes`);
}

/** `n` small records (~30 bytes each encoded), the typical shape of a batch of rows. */
export function recordBatch(n: number): BatchShape {
  const items = Array.from({ length: n }, (_, i) => ({ id: i, name: `rec-${i}`, score: i * 0.5, ok: i % 2 === 0 }));
  return { items, bytes: encodeValue(items) };
}

/** A latency-run batch: its publish time (epoch ms, float64) then padding, 128 bytes in all. */
export function stampedBatch(t0: number): Uint8Array {
  return encodeValue([t0, new Uint8Array(116)]);
}
