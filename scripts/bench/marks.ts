/** Collects what the jetbatch bench handlers report from their worker threads (see handlers/work.ts). */
import { BroadcastChannel } from 'node:worker_threads';
import { BENCH_CHANNEL, type BenchMark } from './handlers/work.js';

export class Marks {
  readonly #channel = new BroadcastChannel(BENCH_CHANNEL);
  readonly #first = new Map<string, number>();
  readonly #latency = new Map<string, number[]>();

  constructor() {
    this.#channel.onmessage = (event: unknown) => {
      const mark = (event as { data: BenchMark }).data;
      if (mark.type === 'first') {
        const seen = this.#first.get(mark.job);
        if (seen === undefined || mark.t < seen) this.#first.set(mark.job, mark.t);
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

  latencies(job: string): number[] {
    return this.#latency.get(job) ?? [];
  }

  close(): void {
    this.#channel.close();
  }
}
