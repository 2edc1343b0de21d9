/**
 * Frames between a worker thread and its Python process, on dedicated pipes (fd 3: thread → child, fd 4: child →
 * thread; never stdout, which a handler's print() owns):
 *
 *     u32 BE frame length | u32 BE tail length | MessagePack header | tail (raw bytes)
 *
 * The header is a MessagePack array `[kind, ...fields]`; the tail carries bytes that are already MessagePack — a
 * batch as it arrived from NATS, a result as the child encoded it — so they cross without being decoded or
 * re-encoded on the thread. The same layout is read and written by src/python/jetbatch/_frames.py.
 */
import { decodeValue, encodeValue } from '../../fleet/protocol.js';

/** A frame larger than this is a protocol error (results are capped far lower by NATS' max_payload). */
export const MAX_FRAME_BYTES = 1024 * 1024 * 1024;

export interface Frame {
  header: unknown[];
  /** A view of the frame's own buffer (never a shared pool), so posting it to another thread copies only the frame. */
  tail: Uint8Array;
}

/** A tail up to this size is copied into the frame's one buffer; a larger one is written as it is. */
const COPY_TAIL_BYTES = 16 * 1024;

/** The byte chunks of one frame, to be written in order (a large tail is not copied). */
export function encodeFrame(header: readonly unknown[], tail?: Uint8Array): Uint8Array[] {
  const head = encodeValue(header);
  const tailLength = tail?.byteLength ?? 0;
  const copy = tail !== undefined && tailLength <= COPY_TAIL_BYTES;
  const prefix = Buffer.allocUnsafe(8 + head.byteLength + (copy ? tailLength : 0));
  prefix.writeUInt32BE(4 + head.byteLength + tailLength, 0);
  prefix.writeUInt32BE(tailLength, 4);
  prefix.set(head, 8);
  if (copy) prefix.set(tail, 8 + head.byteLength);
  return tail === undefined || tailLength === 0 || copy ? [prefix] : [prefix, tail];
}

/** Splits a byte stream into frames. A malformed frame throws; the stream cannot be trusted after that. */
export class FrameReader {
  #chunks: Buffer[] = [];
  #buffered = 0;
  /** Length of the frame being assembled (after its 4-byte prefix), or -1 while the prefix is incomplete. */
  #need = -1;

  /** Adds a chunk; returns the frames it completes. */
  push(chunk: Buffer): Frame[] {
    this.#chunks.push(chunk);
    this.#buffered += chunk.byteLength;
    const frames: Frame[] = [];
    for (;;) {
      if (this.#need < 0) {
        if (this.#buffered < 4) break;
        const length = this.#take(4).readUInt32BE(0);
        if (length < 4 || length > MAX_FRAME_BYTES) throw new Error(`bad frame length ${length} from the Python process`);
        this.#need = length;
      }
      if (this.#buffered < this.#need) break;
      const body = this.#take(this.#need, true);
      this.#need = -1;
      frames.push(parseFrame(body));
    }
    return frames;
  }

  /** Removes `n` buffered bytes; `own` returns them in a buffer of their own (not a view into a chunk). */
  #take(n: number, own = false): Buffer {
    const first = this.#chunks[0]!;
    let out: Buffer;
    if (!own && first.byteLength >= n) {
      out = first.subarray(0, n);
    } else {
      out = Buffer.allocUnsafeSlow(n);
      let at = 0;
      while (at < n) {
        const c = this.#chunks[0]!;
        const k = Math.min(c.byteLength, n - at);
        c.copy(out, at, 0, k);
        at += k;
        if (k === c.byteLength) this.#chunks.shift();
        else this.#chunks[0] = c.subarray(k);
      }
      this.#buffered -= n;
      return out;
    }
    if (n === first.byteLength) this.#chunks.shift();
    else this.#chunks[0] = first.subarray(n);
    this.#buffered -= n;
    return out;
  }
}

function parseFrame(body: Buffer): Frame {
  const tailLength = body.readUInt32BE(0);
  if (tailLength > body.byteLength - 4) throw new Error(`bad frame: tail of ${tailLength} bytes in a ${body.byteLength}-byte frame`);
  const headerEnd = body.byteLength - tailLength;
  const header = decodeValue(body.subarray(4, headerEnd));
  if (!Array.isArray(header) || typeof header[0] !== 'string') throw new Error('bad frame: its header is not [kind, ...]');
  return { header, tail: body.subarray(headerEnd) };
}
