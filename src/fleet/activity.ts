/**
 * What the fleet is running now, from the daemons' heartbeats in JETBATCH_DAEMONS: per job, how many batches are
 * inside handleBatch and on how many daemons. A status reader's view: heartbeats are at most ~2 s old, and an entry
 * whose writer stopped beating (by the writer's own clock, compared with ours) is left out.
 */
import type { FleetContext } from './context.js';
import { kvKeys } from './kv-keys.js';
import { Buckets, decodeJson } from './protocol.js';
import type { DaemonRecord } from '../types.js';

export interface JobActivity {
  batches: number;
  daemons: number;
}

export type FleetActivity = ReadonlyMap<string, JobActivity>;

export async function readActivity(ctx: FleetContext, now = Date.now()): Promise<FleetActivity> {
  const out = new Map<string, JobActivity>();
  const keys = await kvKeys(ctx, Buckets.daemons);
  const entries = await Promise.all(keys.map((k) => ctx.daemons.get(k).catch(() => null)));
  for (const e of entries) {
    if (e === null || e.operation !== 'PUT' || e.value.length === 0) continue;
    let record: Partial<DaemonRecord>;
    try {
      record = decodeJson(e.value) as Partial<DaemonRecord>;
    } catch {
      continue;
    }
    const age = now - Date.parse(record.last_seen ?? '');
    if (!(age < Math.max(record.presence_timeout_ms ?? 0, 5000))) continue;
    for (const [jobId, n] of Object.entries(record.running ?? {})) {
      if (typeof n !== 'number' || n <= 0) continue;
      const a = out.get(jobId) ?? { batches: 0, daemons: 0 };
      a.batches += n;
      a.daemons += 1;
      out.set(jobId, a);
    }
  }
  return out;
}
