/**
 * One rule for every reader of JSON Lines (the CLI's input, stored delimited files): a stream is gzip-compressed when
 * its name ends in `.gz` or its first bytes are the gzip magic `1f 8b` (a compressed file without the suffix, stdin).
 * A JSON text never starts with 0x1f, so the magic cannot be mistaken for data.
 */
import { pipeline, Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';

/** The stream's text bytes: gunzipped when `name` ends in `.gz` or it starts with the gzip magic bytes. */
export async function decompressed(bytes: Readable, name: string): Promise<AsyncIterable<Buffer>> {
  // zlib's errors (Z_DATA_ERROR, …) surface to whoever reads the gunzipped stream.
  const gunzip = (from: Readable): Readable => pipeline(from, createGunzip(), () => undefined);
  if (name.endsWith('.gz')) return gunzip(bytes);
  const it = bytes[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const first = await it.next();
  if (first.done === true) return Readable.from([]);
  const head = first.value;
  async function* all(): AsyncGenerator<Buffer> {
    yield head;
    for (let r = await it.next(); r.done !== true; r = await it.next()) yield r.value;
  }
  return head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b ? gunzip(Readable.from(all(), { objectMode: false })) : all();
}
