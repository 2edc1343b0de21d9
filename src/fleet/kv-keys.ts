/**
 * The keys of a KV bucket, read from its stream's subject counts (one request, paged by the client) instead of
 * `kv.keys()`: that one runs an ordered consumer until it has seen the last entry, and can wait forever while the
 * bucket is being written and entries are deleted (heartbeats every 2 s, a daemon leaving; nats-server issue 3481 is
 * one such report). A deleted key is listed while its tombstone is kept: readers skip entries that are not PUTs.
 */
import type { FleetContext } from './context.js';

/** Keys of `bucket` matching `filter` (a subject filter over keys; `>` for all). */
export async function kvKeys(ctx: FleetContext, bucket: string, filter = '>'): Promise<string[]> {
  const prefix = `$KV.${bucket}.`;
  const info = await ctx.jsm.streams.info(`KV_${bucket}`, { subjects_filter: prefix + filter });
  return Object.keys(info.state.subjects ?? {}).map((s) => s.slice(prefix.length));
}
