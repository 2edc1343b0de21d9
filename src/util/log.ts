/**
 * Logging for the daemon and its worker threads: pino JSON lines on stdout (journald under systemd).
 * - Reserved keys (RESERVED_LOG_KEYS) are set by jetbatch and win over anything a handler logs or binds.
 * - A line longer than the limit is replaced by a warning line carrying the metadata and a prefix of the message,
 *   so one huge log call neither floods journald nor blocks anything.
 * - Worker threads write synchronously to fd 1 from their own thread: a line logged before the thread is
 *   terminated (batch timeout, stop) is already out, and the main thread never waits for it.
 */
import { createRequire } from 'node:module';
import pino, { type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import type PinoPretty from 'pino-pretty';

/** Keys jetbatch owns on every log line; a handler cannot overwrite them. */
export const RESERVED_LOG_KEYS = ['api_name', 'job_id', 'batch_id', 'worker', 'host', 'daemon', 'pid', 'level', 'time', 'msg'] as const;
const RESERVED = new Set<string>(RESERVED_LOG_KEYS);

/** The anchor's limit: lines above 5 MB are not shipped. */
export const DEFAULT_MAX_LINE_BYTES = 5 * 1024 * 1024;

/** Logger metadata lives under this symbol; pino child loggers inherit it through their prototype. */
const META = Symbol.for('jetbatch.log.meta');
type WithMeta = Logger & { [META]?: Record<string, unknown> };

export interface LogOptions {
  level: string;
  /** Metadata on every line (host, daemon or api_name/worker). */
  meta: Record<string, unknown>;
  maxLineBytes?: number;
  pretty?: boolean;
  /** Write synchronously (worker threads). */
  sync?: boolean;
  /** Redact these paths (credentials). */
  redact?: string[];
  /** Handler-facing (worker threads): reserved keys in a log call or a binding are ignored. */
  protectReserved?: boolean;
}

function omitReserved(obj: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const k of Object.keys(obj)) {
    if (RESERVED.has(k)) {
      out ??= { ...obj };
      delete out[k];
    }
  }
  return out ?? obj;
}

/** Replaces an oversized line by a warning that keeps the reserved metadata. */
export function guardLineSize(maxBytes: number): (line: string) => string {
  return (line) => {
    // Cheap check first: a UTF-8 byte is at least one UTF-16 unit, and at most three per unit.
    if (line.length * 3 <= maxBytes || Buffer.byteLength(line) <= maxBytes) return line;
    let meta: Record<string, unknown> = {};
    try {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      for (const k of RESERVED_LOG_KEYS) if (k in parsed && k !== 'msg' && k !== 'level') meta[k] = parsed[k];
      if (typeof parsed.msg === 'string') meta.original_msg = parsed.msg.slice(0, 200);
      meta.original_level = parsed.level;
    } catch {
      meta = {};
    }
    return JSON.stringify({
      ...meta,
      level: 40,
      time: Date.now(),
      msg: `log line dropped: ${Buffer.byteLength(line)} bytes exceeds the ${maxBytes}-byte limit`,
      dropped_bytes: Buffer.byteLength(line),
    }) + '\n';
  };
}

export function createLogger(opts: LogOptions): Logger {
  const options: LoggerOptions = {
    level: opts.level,
    base: null,
    mixin: (_obj, _level, logger) => (logger as WithMeta)[META] ?? {},
    // In worker threads jetbatch's metadata wins over a handler's keys of the same name; the daemon's own calls
    // may set reserved keys (job_id of the job it talks about).
    mixinMergeStrategy: opts.protectReserved
      ? (mergeObject, mixinObject) => ({ ...omitReserved(mergeObject as Record<string, unknown>), ...mixinObject })
      : (mergeObject, mixinObject) => ({ ...mixinObject, ...mergeObject }),
    hooks: { streamWrite: guardLineSize(opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES) },
    redact: { paths: opts.redact ?? ['pass', 'token', '*.pass', '*.token', 'password', '*.password'], censor: '[redacted]' },
  };
  // pino-pretty is loaded only when asked for: worker threads start faster without it.
  const destination: DestinationStream = opts.pretty
    ? (createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty)({ sync: opts.sync ?? false, destination: 1, colorize: process.stdout.isTTY === true })
    : pino.destination({ fd: 1, sync: opts.sync ?? false });
  const logger = pino(options, destination) as WithMeta;
  logger[META] = { ...opts.meta };
  if (opts.protectReserved) {
    // pino applies a bindings formatter to the root logger only; strip reserved keys from every child's bindings
    // here instead (children inherit this method through their prototype).
    const original = Object.getPrototypeOf(logger).child as Logger['child'];
    logger.child = function (this: Logger, bindings, childOptions) {
      return original.call(this, omitReserved(bindings), childOptions);
    } as Logger['child'];
  }
  return logger;
}

/** A child logger whose reserved metadata is `meta` on top of the parent's. */
export function withMeta(parent: Logger, meta: Record<string, unknown>): Logger {
  const child = parent.child({}) as WithMeta;
  child[META] = { ...((parent as WithMeta)[META] ?? {}), ...meta };
  return child;
}
