/**
 * A large batch's body on the daemon's main thread, once it has been copied into its task for the worker thread, or
 * moved there as it is (ownedBody). Until its task ended, the delivered message kept the body alive: long enough to
 * be promoted, so only a mark-compact freed it, and the growth of that external memory kept triggering them (1 MiB
 * batches: the helper threads' GC ~1.9 ms per batch, against ~0.9 ms with the body dropped; jetbatch / raw
 * consume+ack 0.40–0.58 → 0.54–0.73 in alternated runs). So a large body is dropped once handed to its task. The one
 * thing that needs it afterwards, a dead letter, reads the batch back from the stream by its sequence: a batch stays
 * in the work queue until it is acked or termed.
 *
 * The body is reached through NATS.js 3 message internals (msg-internals.ts, as batch-headers.ts reads the header
 * block); with another client version nothing is dropped or moved and the body is read from the message, as before.
 */
import type { JsMsg } from '@nats-io/jetstream';
import { ErrorCodes, JetbatchError } from '../../errors.js';
import type { FleetContext } from '../../fleet/context.js';
import { Streams } from '../../fleet/protocol.js';
import { coreOf } from './msg-internals.js';

/** Bodies smaller than this are kept: cheap to hold, and most batches are. */
export const DROP_MIN_BYTES = 64 * 1024;

/** The most a socket read hands NATS.js at once (libuv reads a TCP stream 64 KiB at a time). */
const SOCKET_READ_MAX = 64 * 1024;
/**
 * Bodies at least this large are given to their thread without a copy when they own their buffer (ownedBody): four
 * times the largest socket read, so such a message always spanned several reads.
 */
export const MOVE_MIN_BYTES = 4 * SOCKET_READ_MAX;

/**
 * The body of `bytes`, as a view of a buffer that holds this message alone, when it is large enough to have one;
 * otherwise undefined. Such a body can be transferred to a thread as it is, instead of copied: the main thread then
 * never touches its bytes again (1 MiB batches: the copy, and the garbage of a second MiB, per batch).
 *
 * Why the buffer holds this message alone: a message that spans several socket reads is assembled by NATS.js's
 * parser in a buffer of its own (it starts at offset 0 and grows by doubling); only a message that fits within one
 * read is a view of that read's chunk, which other messages may share. A message of MOVE_MIN_BYTES or more cannot fit
 * within one. The caller drops the message's body (dropBody) before the view's buffer is transferred: the transfer
 * detaches it here, and NATS.js would throw on a later read of `msg.data`.
 */
export function ownedBody(msg: JsMsg, bytes: number): Uint8Array | undefined {
  if (bytes < MOVE_MIN_BYTES) return undefined;
  const core = coreOf(msg);
  const raw = core?._rdata;
  const hdr = core?._msg?.hdr;
  if (!(raw instanceof Uint8Array) || raw.byteOffset !== 0) return undefined;
  const start = typeof hdr === 'number' && hdr > 0 ? hdr : 0;
  if (raw.byteLength - start !== bytes) return undefined;
  return raw.subarray(start);
}

/**
 * Drops the message's reference to its body of `bytes`, if it is large and NATS.js keeps it where expected. Returns
 * whether it did: the message's `data` (and `headers`) must not be read afterwards; `bodyOf` gives the body back.
 * (`bytes` is the caller's: reading `msg.data` makes a view, for every batch on the hot path.)
 */
export function dropBody(msg: JsMsg, bytes: number): boolean {
  if (bytes < DROP_MIN_BYTES) return false;
  const core = coreOf(msg);
  if (core === undefined || !(core._rdata instanceof Uint8Array)) return false;
  core._rdata = undefined;
  return true;
}

/** The batch's body, untouched: from the message, or read back from the stream when `dropped`. */
export async function bodyOf(ctx: FleetContext, msg: JsMsg, dropped: boolean): Promise<Uint8Array> {
  if (!dropped) return new Uint8Array(msg.data);
  const stored = await ctx.jsm.streams.getMessage(Streams.batches, { seq: msg.seq });
  if (stored === null) throw new JetbatchError(ErrorCodes.INTERNAL, `batch message ${msg.seq} is no longer in ${Streams.batches}`);
  return new Uint8Array(stored.data);
}
