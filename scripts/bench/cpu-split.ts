/**
 * Where the CPU of a measured interval went (issue 17: "explain the rest"), from /proc on Linux: this process's
 * threads and nats-server, sampled every SAMPLE_MS while a scenario runs, then split at the interval's ends (epoch ms, nowMs()). Threads
 * are told apart by when they appeared: the main thread (tid = pid), threads started after sampling began (the
 * measured pool's worker threads, or the raw host's), and the process's other threads (V8's platform threads:
 * concurrent GC and compilation for every isolate, and libuv's pool). Clock ticks are 10 ms here, so a figure of a
 * 0.3–0.5 s interval is good to a few percent; rounds are medians. Elsewhere than Linux it reports nothing.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { nowMs } from './handlers/work.js';

const SAMPLE_MS = 25;
/** Clock ticks per second of utime/stime in /proc (USER_HZ, 100 on Linux). */
const TICK_MS = 10;

export interface CpuSplit {
  /** Length of the interval, ms. */
  wallMs: number;
  /** CPU ms of each part over the interval. */
  mainMs: number;
  threadsMs: number;
  helpersMs: number;
  natsMs: number;
}

type Ticks = Map<string, number>;

function ticksOf(path: string): number {
  try {
    const stat = readFileSync(path, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

export class CpuSampler {
  readonly #natsPid: number | undefined;
  readonly #samples: Array<{ t: number; ticks: Ticks }> = [];
  #timer: NodeJS.Timeout | undefined;
  #before = new Set<string>();

  constructor(natsPid: number | undefined) {
    this.#natsPid = natsPid;
  }

  static get available(): boolean {
    try {
      readdirSync('/proc/self/task');
      return true;
    } catch {
      return false;
    }
  }

  #sample(): void {
    const ticks: Ticks = new Map();
    for (const tid of readdirSync('/proc/self/task')) ticks.set(tid, ticksOf(`/proc/self/task/${tid}/stat`));
    if (this.#natsPid !== undefined) ticks.set('nats', ticksOf(`/proc/${this.#natsPid}/stat`));
    this.#samples.push({ t: nowMs(), ticks });
  }

  /** Starts sampling; the threads alive now are "helpers" (or main), any started later are "threads". */
  start(): void {
    this.#sample();
    this.#before = new Set(this.#samples[0]!.ticks.keys());
    this.#timer = setInterval(() => this.#sample(), SAMPLE_MS);
    this.#timer.unref();
  }

  /** Stops sampling (a thread that ended before this keeps the ticks of its last sample). */
  stop(): void {
    clearInterval(this.#timer);
    this.#sample();
  }

  /** The split of [from, to] (nowMs() times), between the samples nearest those ends; null if none. */
  split(from: number, to: number): CpuSplit | null {
    const nearest = (t: number): { t: number; ticks: Ticks } | undefined =>
      this.#samples.reduce<{ t: number; ticks: Ticks } | undefined>((best, s) => (best === undefined || Math.abs(s.t - t) < Math.abs(best.t - t) ? s : best), undefined);
    const a = nearest(from);
    const b = nearest(to);
    if (a === undefined || b === undefined || b.t <= a.t) return null;
    const pid = String(process.pid);
    const out: CpuSplit = { wallMs: b.t - a.t, mainMs: 0, threadsMs: 0, helpersMs: 0, natsMs: 0 };
    // A thread present at `a` but gone by `b` (a pool closed early) is not counted; none is here by construction.
    for (const [id, end] of b.ticks) {
      const ms = (end - (a.ticks.get(id) ?? 0)) * TICK_MS;
      if (id === 'nats') out.natsMs += ms;
      else if (id === pid) out.mainMs += ms;
      else if (this.#before.has(id)) out.helpersMs += ms;
      else out.threadsMs += ms;
    }
    return out;
  }
}

/** CPU µs per batch of each part, and in all. */
export interface CpuPerBatch {
  main: number;
  threads: number;
  helpers: number;
  nats: number;
  total: number;
}

export function perBatch(split: CpuSplit, batches: number): CpuPerBatch {
  const us = (ms: number): number => Math.round((ms * 1000) / batches);
  const total = split.mainMs + split.threadsMs + split.helpersMs + split.natsMs;
  return { main: us(split.mainMs), threads: us(split.threadsMs), helpers: us(split.helpersMs), nats: us(split.natsMs), total: us(total) };
}
