// BullMQ sandboxed processor (run in worker threads): the same no-op / fixed-CPU work as the jetbatch handlers.
// Plain JavaScript because BullMQ's worker threads cannot load TypeScript through tsx on Node 20; `burn` must stay
// identical to burn() in work.ts (main.ts checks that both give the same result).

let sink = 0;

/** @param {number} iterations */
export function burn(iterations) {
  let x = 0x9e3779b9 | 0;
  for (let i = 0; i < iterations; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
  }
  sink ^= x;
  return sink;
}

/** @param {{ data: { p: string, iterations: number } }} job */
export default async function processor(job) {
  if (job.data.iterations > 0) burn(job.data.iterations);
}
