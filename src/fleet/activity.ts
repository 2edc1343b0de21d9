/**
 * What the fleet is and runs now, from the daemons' heartbeats in JETBATCH_DAEMONS: per job, how many batches are
 * inside handleBatch and on how many daemons; per API, how many daemons serve it with how many lanes. A status reader's view: heartbeats are at most ~2 s old, and an entry
 * whose writer stopped beating (by the writer's own clock, compared with ours) is left out.
 */
import type { FleetContext } from './context.js';
import { kvKeys } from './kv-keys.js';
import { Buckets, decodeJson } from './protocol.js';
import type { DaemonRecord, ErrorInfo } from '../types.js';

export interface JobActivity {
  batches: number;
  daemons: number;
}

export type FleetActivity = ReadonlyMap<string, JobActivity>;

/** The entries of JETBATCH_DAEMONS whose writer still beats (by its own clock and timeout, compared with ours). */
export async function liveDaemons(ctx: FleetContext, now = Date.now()): Promise<Array<Partial<DaemonRecord>>> {
  const keys = await kvKeys(ctx, Buckets.daemons);
  const entries = await Promise.all(keys.map((k) => ctx.daemons.get(k).catch(() => null)));
  const out: Array<Partial<DaemonRecord>> = [];
  for (const e of entries) {
    if (e === null || e.operation !== 'PUT' || e.value.length === 0) continue;
    let record: unknown;
    try {
      record = decodeJson(e.value);
    } catch {
      continue;
    }
    if (record === null || typeof record !== 'object' || Array.isArray(record)) continue;
    const d = record as Partial<DaemonRecord>;
    const age = now - Date.parse(d.last_seen ?? '');
    if (age < Math.max(d.presence_timeout_ms ?? 0, 5000)) out.push(d);
  }
  return out;
}

export async function readActivity(ctx: FleetContext, now = Date.now()): Promise<FleetActivity> {
  return activityOf(await liveDaemons(ctx, now));
}

/** Per job, the batches the given (live) daemons run and on how many of them; also for callers that follow the bucket. */
export function activityOf(daemons: Iterable<Partial<DaemonRecord>>): FleetActivity {
  const out = new Map<string, JobActivity>();
  for (const d of daemons) {
    for (const [jobId, n] of Object.entries(d.running ?? {})) {
      if (typeof n !== 'number' || n <= 0) continue;
      const a = out.get(jobId) ?? { batches: 0, daemons: 0 };
      a.batches += n;
      a.daemons += 1;
      out.set(jobId, a);
    }
  }
  return out;
}

/** What the live fleet offers an API: daemons serving it, their lanes, and those that cannot load its project. */
export interface ApiCapacity {
  daemons: number;
  /** Batches they can run at once (threads × concurrency), summed. */
  lanes: number;
  unhealthy: number;
  /** The error one unhealthy daemon reported (the first found), or null. */
  error: ErrorInfo | null;
}

/** Per API: how many live daemons serve it, how many batches they can run at once, how many cannot load it. */
export async function readCapacity(ctx: FleetContext, now = Date.now()): Promise<Map<string, ApiCapacity>> {
  const out = new Map<string, ApiCapacity>();
  for (const d of await liveDaemons(ctx, now)) {
    for (const [api, n] of Object.entries(d.lanes ?? {})) {
      if (typeof n !== 'number' || n <= 0) continue;
      const c = out.get(api) ?? { daemons: 0, lanes: 0, unhealthy: 0, error: null };
      c.daemons += 1;
      c.lanes += n;
      const error = d.unhealthy?.[api];
      if (error !== undefined && error !== null && typeof error === 'object') {
        c.unhealthy += 1;
        c.error ??= error;
      }
      out.set(api, c);
    }
  }
  return out;
}
