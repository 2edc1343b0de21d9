/**
 * The Piscina task of a group of batches: their bodies copied into one buffer, which is transferred to the thread
 * (DESIGN.md §6: copied out of the connection's read buffer, so the thread never sees reused memory), or, for one
 * large batch alone, the buffer its body already owns.
 */
import type { BatchesTask } from '../../worker/thread-protocol.js';
import type { BatchIdentity } from './batch-headers.js';
import { ownedBody } from './body.js';
import type { Delivered } from './settle.js';

/** A delivered batch whose id header was read. */
export type Identified = Delivered & { id: BatchIdentity };

/**
 * The task of `batches`. A single batch whose body owns its buffer (body.ts, ownedBody) is moved, not copied: the
 * task's data is a view of that buffer, transferred with it.
 */
export function batchesTask(jobId: string, job: Uint8Array, batches: readonly Identified[], timeoutMs: number): BatchesTask {
  const only = batches.length === 1 ? batches[0]! : undefined;
  const moved = only === undefined ? undefined : ownedBody(only.msg, only.bytes);
  const data = moved ?? copied(batches);
  return {
    kind: 'batches',
    jobId,
    job,
    batchIds: batches.map((b) => b.id.batchId),
    attempts: batches.map((b) => b.attempt),
    data,
    ends: ends(batches),
    timeoutMs,
  };
}

/** Where each batch's body ends in the task's data. */
function ends(batches: readonly Identified[]): number[] {
  const out: number[] = [];
  let offset = 0;
  for (const b of batches) out.push((offset += b.bytes));
  return out;
}

function copied(batches: readonly Identified[]): Uint8Array {
  let total = 0;
  for (const b of batches) total += b.bytes;
  // Not zero-filled first (every byte is written below); allocUnsafeSlow owns its ArrayBuffer, unpooled.
  const data = new Uint8Array(Buffer.allocUnsafeSlow(total).buffer, 0, total);
  let offset = 0;
  for (const b of batches) {
    data.set(b.msg.data, offset);
    offset += b.bytes;
  }
  return data;
}
