/**
 * The raw handler host's task (raw-host.ts): what any host of a JavaScript handler must do with batches on its
 * thread — decode each batch's bytes with the same @msgpack/msgpack settings as jetbatch's worker (its decodeValue:
 * limits from the message size), check it is an array, and call a no-op handler with it. Returns the item count.
 */
import { decode } from '@msgpack/msgpack';

export interface DecodeTask {
  /** The batches back to back; batch i is `data[ends[i - 1] ?? 0, ends[i])`. */
  data: Uint8Array;
  ends: number[];
}

function noop(items: unknown[]): number {
  return items.length;
}

export default function run(task: DecodeTask): number {
  let items = 0;
  let start = 0;
  for (const end of task.ends) {
    const b = task.data.subarray(start, end);
    start = end;
    const value = decode(b, { maxStrLength: b.byteLength, maxBinLength: b.byteLength, maxArrayLength: b.byteLength, maxMapLength: b.byteLength, maxExtLength: b.byteLength });
    if (!Array.isArray(value)) throw new TypeError('batch payload is not an array');
    items += noop(value);
  }
  return items;
}
