/**
 * The NATS.js 3 message internals the hot path reads: the raw message bytes (header block, then body) and where the
 * header block ends. batch-headers.ts reads the block from them, body.ts the body; both fall back to the public API
 * when they are not there (another client version).
 */
import type { JsMsg } from '@nats-io/jetstream';

export interface CoreMsgInternals {
  /** The message as received: header block, then body. */
  _rdata?: unknown;
  /** `hdr`: length of the header block, -1 without one. */
  _msg?: { hdr?: unknown };
}

/** The core message inside a JetStream message, if it is where NATS.js 3 keeps it. */
export function coreOf(msg: JsMsg): CoreMsgInternals | undefined {
  return (msg as unknown as { msg?: CoreMsgInternals }).msg;
}
