/** Collects what the jetbatch bench handlers report from their worker threads (see handlers/work.ts). */
import { BroadcastChannel } from 'node:worker_threads';
import { BENCH_CHANNEL, type BenchMark } from './handlers/work.js';

export class Marks {
  readonly #channel = new BroadcastChannel(BENCH_CHANNEL);
  readonly #first = new Map<string, number>();
  readonly #latency = new Map<string, number[]>();
  readonly #onFirst = new Set<(job: string) => void>();

  constructor() {
    this.#channel.onmessage = (event: unknown) => {
      const mark = (event as { data: BenchMark }).data;
      if (mark.type === 'first') {
        const seen = this.#first.get(mark.job);
        if (seen === undefined || mark.t < seen) this.#first.set(mark.job, mark.t);
        if (seen === undefined) for (const listener of this.#onFirst) listener(mark.job);
      } else {
        let list = this.#latency.get(mark.job);
        if (list === undefined) this.#latency.set(mark.job, (list = []));
        list.push(mark.ms);
      }
    };
    this.#channel.unref();
  }

  /** When the job's first batch reached a handler (epoch ms), if it has. */
  first(job: string): number | undefined {
    return this.#first.get(job);
  }

  /** Calls `listener` as each job's first mark arrives; returns the function that removes it. */
  onFirst(listener: (job: string) => void): () => void {
    this.#onFirst.add(listener);
    return () => this.#onFirst.delete(listener);
  }

  latencies(job: string): number[] {
    return this.#latency.get(job) ?? [];
  }

  close(): void {
    this.#channel.close();
  }
}
