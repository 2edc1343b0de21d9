/**
 * The job registry (KV bucket JETBATCH_JOBS). Every status change is a compare-and-set on the entry's revision,
 * so two daemons (or a daemon and a publisher) never both win the same transition. Reads go to the stream leader
 * (see `openContext`): a CAS loop that decides "nothing to do" from a stale read would skip a write it owes.
 */
import { JetStreamApiError } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { FleetContext } from './context.js';
import { kvKeys } from './kv-keys.js';
import { Buckets, decodeJson, encodeJson } from './protocol.js';
import type { JobRecord } from '../types.js';

export interface Versioned {
  record: JobRecord;
  revision: number;
}

export async function getJob(kv: KV, jobId: string): Promise<Versioned | null> {
  const entry = await kv.get(jobId);
  if (entry === null || entry.operation !== 'PUT' || entry.value.length === 0) return null;
  return { record: decodeJson(entry.value) as JobRecord, revision: entry.revision };
}

/** Every job record, newest first (by start time, then id), optionally of one API. */
export async function listJobs(ctx: FleetContext, filter: { api?: string; limit?: number } = {}): Promise<JobRecord[]> {
  const keys = await kvKeys(ctx, Buckets.jobs);
  const records: JobRecord[] = [];
  for (const k of keys) {
    const v = await getJob(ctx.jobs, k);
    if (v !== null && (filter.api === undefined || v.record.api_name === filter.api)) records.push(v.record);
  }
  records.sort((a, b) => (a.start_time < b.start_time ? 1 : a.start_time > b.start_time ? -1 : b.job_id.localeCompare(a.job_id)));
  return filter.limit === undefined ? records : records.slice(0, filter.limit);
}

/** Creates the record; returns false if the key exists already. */
export async function createJob(kv: KV, record: JobRecord): Promise<boolean> {
  try {
    await kv.create(record.job_id, encodeJson(record));
    return true;
  } catch (err) {
    if (isWrongLastSequence(err)) return false;
    throw err;
  }
}

export interface Transition {
  /** The record as stored after the call. */
  record: JobRecord;
  /** Its revision in the bucket. */
  revision: number;
  /** Whether this call wrote it. */
  changed: boolean;
}

/**
 * Applies `change` to the current record with CAS, retrying on conflicting writes. `change` returns the new
 * record, or null to leave it alone (it may be async, for decisions that need another read); the result is the
 * record as stored after the call (or null if missing).
 */
export async function transitionJob(
  kv: KV,
  jobId: string,
  change: (current: JobRecord, revision: number) => JobRecord | null | Promise<JobRecord | null>,
): Promise<Transition | null> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const current = await getJob(kv, jobId);
    if (current === null) return null;
    const next = await change(current.record, current.revision);
    if (next === null) return { record: current.record, revision: current.revision, changed: false };
    try {
      const revision = await kv.update(jobId, encodeJson(next), current.revision);
      return { record: next, revision, changed: true };
    } catch (err) {
      if (!isWrongLastSequence(err)) throw err;
    }
  }
  throw new Error(`job ${jobId}: too many concurrent updates`);
}

/** JetStream API error 10071: the key's revision moved (or, for create, the key exists). */
function isWrongLastSequence(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === 10071;
}
