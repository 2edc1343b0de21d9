/** Items grouped into batches as they stream by (a submission read from a file, stdin or an iterable). */

/** Cuts runs of items (arrays read together) into batches of `size`, the last maybe shorter: one await per run. */
export async function* batchesOfRuns<T>(runs: AsyncIterable<T[]>, size: number): AsyncGenerator<T[]> {
  let batch: T[] = [];
  for await (const run of runs) {
    for (const item of run) {
      batch.push(item);
      if (batch.length >= size) {
        yield batch;
        batch = [];
      }
    }
  }
  if (batch.length > 0) yield batch;
}

/** Groups a stream of items into batches of `size` (the last may be shorter). */
export async function* inBatches<T>(items: AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  let batch: T[] = [];
  for await (const item of items) {
    batch.push(item);
    if (batch.length >= size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}
