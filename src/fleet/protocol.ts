/**
 * The wire protocol: stream, bucket and subject names, headers and encodings. docs/PROTOCOL.md describes the same
 * facts for publishers in other languages; change both together.
 */
import { decode, encode } from '@msgpack/msgpack';

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

/** Job ids: 1–64 characters that are safe in subjects, consumer names and KV keys. */
export const JOB_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
/** API names: lowercase letters, digits, `_` and `-`, starting with a letter or digit, at most 63 characters. */
export const API_NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Batches (and one-request submissions) travel as MessagePack; `undefined` object values are omitted. */
export function encodeValue(value: unknown): Uint8Array {
  return encode(value, { ignoreUndefined: true });
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

/** Request bodies may be JSON (first non-space byte `{`) or MessagePack. */
export function decodeRequestBody(bytes: Uint8Array): unknown {
  let i = 0;
  while (i < bytes.length && (bytes[i] === 0x20 || bytes[i] === 0x0a || bytes[i] === 0x0d || bytes[i] === 0x09)) i++;
  if (i === bytes.length) return undefined;
  if (bytes[i] === 0x7b /* { */) return JSON.parse(utf8.decode(bytes));
  return decodeValue(bytes);
}

const textEncoder = new TextEncoder();
export function encodeJson(value: unknown): Uint8Array {
  return textEncoder.encode(JSON.stringify(value));
}
export function decodeJson(bytes: Uint8Array): unknown {
  return JSON.parse(utf8.decode(bytes));
}
