/**
 * The wire protocol: stream, bucket and subject names, headers and encodings. docs/PROTOCOL.md describes the same
 * facts for publishers in other languages; change both together.
 */
import { Encoder, decode } from '@msgpack/msgpack';

export const Streams = {
  /** WorkQueue stream holding every queued batch. */
  batches: 'JETBATCH_BATCHES',
  /** Batches that exhausted their attempts (or could not be decoded), with their last error. */
  deadLetters: 'JETBATCH_DLQ',
  /** Values returned by handleBatch, one message per succeeded batch. */
  results: 'JETBATCH_RESULTS',
  /** Job lifecycle events: status changes and completion. */
  events: 'JETBATCH_EVENTS',
  /** Completion claims in the order the server stored them: the first claim of an attempt wins it. */
  claims: 'JETBATCH_CLAIMS',
} as const;

export const Buckets = {
  /** Job registry: key = job id, value = JSON job record. */
  jobs: 'JETBATCH_JOBS',
  /** APIs served by the fleet: key = API name, value = JSON API record. */
  apis: 'JETBATCH_APIS',
  /** Per-daemon batch timing counters: key = `<job>.<daemon>`, value = JSON {count, total_ms}. */
  stats: 'JETBATCH_STATS',
  /** Deployed handler projects: key = API name, value = JSON Deployment (history = earlier versions). */
  deployments: 'JETBATCH_DEPLOYMENTS',
  /** Live daemons: key = daemon id, value = JSON DaemonRecord, rewritten every heartbeat; deleted on shutdown. */
  daemons: 'JETBATCH_DAEMONS',
} as const;

/** Object Store bucket of deployed project archives, object name `<api>/v<version>`. */
export const ProjectsBucket = 'JETBATCH_PROJECTS';
export const projectObjectName = (api: string, version: number): string => `${api}/v${version}`;

export const Subjects = {
  batch: (api: string, job: string): string => `jetbatch.batch.${api}.${job}`,
  batchWildcard: 'jetbatch.batch.>',
  deadLetter: (api: string, job: string): string => `jetbatch.dlq.${api}.${job}`,
  deadLetterWildcard: 'jetbatch.dlq.>',
  result: (api: string, job: string): string => `jetbatch.result.${api}.${job}`,
  resultWildcard: 'jetbatch.result.>',
  event: (api: string, job: string, type: string): string => `jetbatch.event.${api}.${job}.${type}`,
  eventWildcard: 'jetbatch.event.>',
  /** A claim on completing a job: completion round (0, +1 per replay that reopens it), claim attempt (1, 2, …). */
  claim: (job: string, round: number, attempt: number): string => `jetbatch.claim.${job}.${round}.${attempt}`,
  claimWildcard: 'jetbatch.claim.>',
  /** Request/reply endpoints answered by any daemon (queue group `jetbatch`). */
  request: {
    submit: 'jetbatch.req.submit',
    status: 'jetbatch.req.status',
    stop: 'jetbatch.req.stop',
    jobs: 'jetbatch.req.jobs',
    /** Replies once no batch of the job can start any more: about 1.5 s after the request. */
    pause: 'jetbatch.req.pause',
    resume: 'jetbatch.req.resume',
  },
  /** Core-NATS broadcast telling every daemon to abort a job's in-flight batches at once. */
  control: (job: string): string => `jetbatch.ctl.${job}`,
  controlWildcard: 'jetbatch.ctl.*',
} as const;

export const RequestQueueGroup = 'jetbatch';

/** Bytes of a message kept for headers and envelopes: a batch or a result may use max_payload minus this. */
const HEADER_ROOM = 4096;

/** Largest batch (or stored result) body the connected server accepts. */
export function maxBodyBytes(nc: { info?: { max_payload: number } | undefined }): number {
  return (nc.info?.max_payload ?? 1024 * 1024) - HEADER_ROOM;
}

export const Headers = {
  jobId: 'Jetbatch-Job-Id',
  batchId: 'Jetbatch-Batch-Id',
  apiName: 'Jetbatch-Api-Name',
  /** Replay generation: 0 for the first enqueue, +1 for every `dlq --replay`. */
  generation: 'Jetbatch-Generation',
  msgId: 'Nats-Msg-Id',
} as const;

/** Durable consumer name of a job's work queue. */
export const consumerName = (job: string): string => `job_${job}`;

/** `Nats-Msg-Id` of a batch, so a retried publish within the duplicate window is stored once. */
export const batchMsgId = (job: string, batchId: string, generation: number): string =>
  generation === 0 ? `${job}:${batchId}` : `${job}:${batchId}:g${generation}`;

/** `Nats-Msg-Id` of a batch's result in the results stream: one per generation (a replayed batch stores it again). */
export const resultMsgId = (job: string, batchId: string, generation: number): string => `${job}:${batchId}:${generation}`;

/**
 * The batch id in a result's `Nats-Msg-Id` (resultMsgId; job ids hold no `:`, a batch id may), and its index when it
 * is a decimal one of at most 15 digits (a safe integer); null for a msg id that is not a result's.
 */
export function resultBatchOf(msgId: string): { batchId: string; index: number | null } | null {
  const first = msgId.indexOf(':');
  const last = msgId.lastIndexOf(':');
  if (first < 1 || last <= first + 1 || !/^\d+$/.test(msgId.slice(last + 1))) return null;
  const batchId = msgId.slice(first + 1, last);
  return { batchId, index: /^\d{1,15}$/.test(batchId) ? Number(batchId) : null };
}

/** Job ids: 1–64 characters that are safe in subjects, consumer names and KV keys. */
export const JOB_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
/** API names: lowercase letters, digits, `_` and `-`, starting with a letter or digit, at most 63 characters. */
export const API_NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/**
 * One encoder per thread, reused: its buffer grows to the largest value encoded and stays, so encoding a stream of
 * large batches does not allocate (and leave for the collector) a growing buffer each time. `encode` copies out.
 */
const encoder = new Encoder({ ignoreUndefined: true });

/** Batches (and one-request submissions) travel as MessagePack; `undefined` object values are omitted. */
export function encodeValue(value: unknown): Uint8Array {
  return encoder.encode(value);
}

/**
 * Decodes MessagePack with limits, so a hostile message declaring a huge length or deep nesting fails fast
 * instead of allocating: lengths beyond the message itself are rejected by the decoder.
 */
export function decodeValue(bytes: Uint8Array): unknown {
  return decode(bytes, {
    maxStrLength: bytes.byteLength,
    maxBinLength: bytes.byteLength,
    maxArrayLength: bytes.byteLength,
    maxMapLength: bytes.byteLength,
    maxExtLength: bytes.byteLength,
  });
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Why a request body is not a JSON object or a MessagePack map; `got` says what arrived instead. */
export class RequestBodyError extends Error {
  readonly got: string;
  constructor(got: string, options: { cause?: unknown } = {}) {
    super(`expected a JSON object or a MessagePack map, got ${got}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RequestBodyError';
    this.got = got;
  }
}

/** First bytes of a JSON text other than an object: `[`, `"`, `-`, digits, `t`, `f`, `n`. */
const JSON_VALUE_START = new Set([0x5b, 0x22, 0x2d, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x74, 0x66, 0x6e]);

/**
 * A request body: a JSON object (first non-space byte `{`) or a MessagePack map; `undefined` for an empty (or
 * all-whitespace) body, which only some endpoints accept. Anything else throws a RequestBodyError saying what it is:
 * another JSON or MessagePack value ("a JSON array", "a MessagePack string"), malformed JSON or MessagePack (with the
 * parser's reason, e.g. a length beyond the message), or bytes that are neither.
 */
export function decodeRequestBody(bytes: Uint8Array): Record<string, unknown> | undefined {
  let i = 0;
  while (i < bytes.length && (bytes[i] === 0x20 || bytes[i] === 0x0a || bytes[i] === 0x0d || bytes[i] === 0x09)) i++;
  if (i === bytes.length) return undefined;
  const first = bytes[i]!;
  let jsonError: unknown;
  if (first === 0x7b /* { */ || JSON_VALUE_START.has(first)) {
    try {
      return asMap(JSON.parse(utf8.decode(bytes)), 'JSON');
    } catch (err) {
      if (err instanceof RequestBodyError) throw err;
      // `{` or `[` starts no MessagePack body worth trying (a bare integer): it is malformed JSON.
      if (first === 0x7b || first === 0x5b) throw new RequestBodyError(`malformed JSON (${reason(err)})`, { cause: err });
      jsonError = err;
    }
  }
  let value: unknown;
  try {
    value = decodeValue(bytes);
  } catch (err) {
    // A first byte of 0x80 or more is a MessagePack map, array, string, … header: say why it did not decode.
    if (bytes[0]! >= 0x80) throw new RequestBodyError(`malformed MessagePack (${reason(err)})`, { cause: err });
    throw new RequestBodyError('bytes that are neither JSON nor MessagePack', { cause: jsonError ?? err });
  }
  return asMap(value, 'MessagePack');
}

function asMap(value: unknown, encoding: 'JSON' | 'MessagePack'): Record<string, unknown> {
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) return value as Record<string, unknown>;
  throw new RequestBodyError(describeValue(value, encoding));
}

/** "a JSON array", "a MessagePack string", "MessagePack nil", … */
function describeValue(value: unknown, encoding: 'JSON' | 'MessagePack'): string {
  if (value === null) return encoding === 'JSON' ? 'JSON null' : 'MessagePack nil';
  if (Array.isArray(value)) return `a ${encoding} array`;
  if (value instanceof Uint8Array) return 'MessagePack binary data';
  if (value instanceof Date) return 'a MessagePack timestamp';
  if (typeof value === 'number' || typeof value === 'bigint') {
    return encoding === 'JSON' ? 'a JSON number' : Number.isInteger(value) || typeof value === 'bigint' ? 'a MessagePack integer' : 'a MessagePack float';
  }
  if (typeof value === 'string' || typeof value === 'boolean') return `a ${encoding} ${typeof value}`;
  return `a ${encoding} extension value`;
}

function reason(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

const textEncoder = new TextEncoder();
export function encodeJson(value: unknown): Uint8Array {
  return textEncoder.encode(JSON.stringify(value));
}
export function decodeJson(bytes: Uint8Array): unknown {
  return JSON.parse(utf8.decode(bytes));
}
