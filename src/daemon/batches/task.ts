/**
 * The Piscina task of a group of batches: their bodies copied into one buffer, which is transferred to the thread
 * (DESIGN.md §6: copied out of the connection's read buffer, so the thread never sees reused memory).
 */
import type { BatchesTask } from '../../worker/thread-protocol.js';
import type { BatchIdentity } from './batch-headers.js';
import type { Delivered } from './settle.js';

/** A delivered batch whose id header was read. */
export type Identified = Delivered & { id: BatchIdentity };

export function batchesTask(jobId: string, job: Uint8Array, batches: readonly Identified[], timeoutMs: number): BatchesTask {
  let total = 0;
  for (const b of batches) total += b.msg.data.byteLength;
  // Not zero-filled first (every byte is written below); allocUnsafeSlow owns its ArrayBuffer, unpooled.
  const data = new Uint8Array(Buffer.allocUnsafeSlow(total).buffer, 0, total);
  const ends: number[] = [];
  let offset = 0;
  for (const b of batches) {
    const body = b.msg.data;
    data.set(body, offset);
    offset += body.byteLength;
    ends.push(offset);
  }
  return {
    kind: 'batches',
    jobId,
    job,
    batchIds: batches.map((b) => b.id.batchId),
    attempts: batches.map((b) => b.attempt),
    data,
    ends,
    timeoutMs,
  };
}
