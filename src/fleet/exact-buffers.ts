/**
 * Large messages received into a buffer of their exact size. NATS.js assembles a message that spans several socket
 * reads (64 KiB each) in a buffer that starts with the first read's part and grows by doubling (twice its capacity
 * plus the next part): a 1 MiB batch allocates ~3.6 MiB in five buffers and copies ~1.7 MiB more than it receives.
 * That garbage is external memory, whose growth triggers the main isolate's mark-compacts (docs/benchmarks.md,
 * "1 MiB batches"). The message's size is known from its MSG line before any of its payload arrives, so the buffer
 * can be allocated once, at that size.
 *
 * This reaches NATS.js 3 connection internals (the protocol handler's `parser`, its `msgBuf` and `ma.size`), as
 * batch-headers.ts and body.ts reach message internals: if they are not where expected (another client version),
 * nothing is changed and messages are received as before. test/exact-buffers.test.ts checks that the pinned
 * version is patched, and that messages of every size arrive intact, across reconnects.
 */
import type { NatsConnection } from '@nats-io/transport-node';

/** The part of NATS.js's DenoBuffer used here. */
interface GrowingBuffer {
  readonly capacity: number;
  bytes(options: { copy: boolean }): Uint8Array;
  reset(): void;
  write(part: Uint8Array): number;
}

/** The part of NATS.js's Parser used here. */
interface ParserInternals {
  parse(buf: Uint8Array): void;
  /** The payload being assembled across reads, created at the end of the parse() that read its first part. */
  msgBuf?: GrowingBuffer;
  /** The MSG/HMSG line's arguments; `size` is the payload's size, header block included. */
  ma?: { size?: unknown };
}

const PATCHED = Symbol('jetbatch.exactBuffers');

/**
 * Makes every parser of `nc` (the current one, and those NATS.js creates on each reconnect) assemble a message that
 * spans several reads in one buffer of the message's size. Returns whether the connection could be patched.
 */
export function receiveIntoExactBuffers(nc: NatsConnection): boolean {
  const protocol = (nc as unknown as { protocol?: object }).protocol;
  if (protocol === undefined || !isParser(Reflect.get(protocol, 'parser'))) return false;
  const own = Object.getOwnPropertyDescriptor(protocol, 'parser');
  if (own === undefined || !('value' in own) || own.configurable !== true) return false;
  let current = patch(own.value as ParserInternals);
  Object.defineProperty(protocol, 'parser', {
    configurable: true,
    enumerable: own.enumerable ?? true,
    get: () => current,
    set: (next: unknown) => {
      current = isParser(next) ? patch(next) : (next as ParserInternals);
    },
  });
  return true;
}

/** Whether the connection's current parser is patched (tests). */
export function receivesIntoExactBuffers(nc: NatsConnection): boolean {
  const protocol = (nc as unknown as { protocol?: object }).protocol;
  const parser: unknown = protocol === undefined ? undefined : Reflect.get(protocol, 'parser');
  return typeof parser === 'object' && parser !== null && PATCHED in parser;
}

function isParser(value: unknown): value is ParserInternals {
  return typeof value === 'object' && value !== null && typeof (value as { parse?: unknown }).parse === 'function' && 'msgBuf' in value && 'ma' in value;
}

function patch(parser: ParserInternals): ParserInternals {
  if (PATCHED in parser) return parser;
  const parse = parser.parse;
  parser.parse = function (this: ParserInternals, buf: Uint8Array): void {
    const before = this.msgBuf;
    parse.call(this, buf);
    const started = this.msgBuf;
    // Only a payload whose first part this read brought; a later read finds the buffer large enough.
    if (started === undefined || started === before) return;
    const size = this.ma?.size;
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || started.capacity >= size) return;
    const Grown = started.constructor as new (ab: ArrayBuffer) => GrowingBuffer;
    const exact = new Grown(new ArrayBuffer(size));
    // Constructed over the whole ArrayBuffer, it counts as full: empty it, keeping its capacity.
    exact.reset();
    exact.write(started.bytes({ copy: false }));
    this.msgBuf = exact;
  };
  Object.defineProperty(parser, PATCHED, { value: true });
  return parser;
}
