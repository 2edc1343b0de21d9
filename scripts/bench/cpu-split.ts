/**
 * Where the CPU of a measured interval went (issue 17: "explain the rest"), from /proc on Linux: this process's
 * threads and nats-server, sampled when the measured interval starts and ends (the caller calls sample() at its first
 * batch; stop() samples) and every SAMPLE_MS in between, then split at the interval's ends (epoch ms, nowMs()). Threads
 * are told apart by when they appeared: the main thread (tid = pid), threads started after sampling began (the
 * measured pool's worker threads, or the raw host's), and the process's other threads (V8's platform threads:
 * concurrent GC and compilation for every isolate, and libuv's pool). Clock ticks are 10 ms here, so a figure of a
 * 0.3–0.5 s interval is good to a few percent; rounds are medians. Elsewhere than Linux it reports nothing.
 */
import { closeSync, openSync, readdirSync, readSync } from 'node:fs';
import { nowMs } from './handlers/work.js';

/**
 * Background sampling, for callers that cannot tell when their interval starts. Every sample reads the stat file of
 * every thread; every 25 ms, that cost the measured process's main thread ~25 ms of CPU a second.
 */
const SAMPLE_MS = 250;
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

/** utime + stime (clock ticks) of a /proc stat line. */
function ticksIn(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

export class CpuSampler {
  readonly #natsPid: number | undefined;
  readonly #samples: Array<{ t: number; ticks: Ticks }> = [];
  #timer: NodeJS.Timeout | undefined;
  #before = new Set<string>();
  /**
   * Each stat file stays open and is read again from offset 0 (the kernel regenerates it): opening, reading and
   * closing every file of every thread 40 times a second cost ~17 µs a file on the measured process's main thread,
   * against ~4 µs for the read alone.
   */
  readonly #fds = new Map<string, number>();
  readonly #buf = Buffer.alloc(1024);

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

  /** The ticks of the stat file at `path` (kept open under `key`); undefined once it is gone (the thread ended). */
  #ticks(key: string, path: string): number | undefined {
    try {
      let fd = this.#fds.get(key);
      if (fd === undefined) this.#fds.set(key, (fd = openSync(path, 'r')));
      const n = readSync(fd, this.#buf, 0, this.#buf.byteLength, 0);
      return ticksIn(this.#buf.toString('latin1', 0, n));
    } catch {
      this.#close(key);
      return undefined;
    }
  }

  #close(key: string): void {
    const fd = this.#fds.get(key);
    this.#fds.delete(key);
    if (fd !== undefined) closeSync(fd);
  }

  /** Samples now: called at the measured interval's start, so that split() finds a sample there. */
  sample(): void {
    if (this.#timer !== undefined) this.#sample();
  }

  #sample(): void {
    const ticks: Ticks = new Map();
    const alive = new Set(readdirSync('/proc/self/task'));
    for (const tid of this.#fds.keys()) if (tid !== 'nats' && !alive.has(tid)) this.#close(tid);
    for (const tid of alive) {
      const t = this.#ticks(tid, `/proc/self/task/${tid}/stat`);
      if (t !== undefined) ticks.set(tid, t);
    }
    if (this.#natsPid !== undefined) {
      const t = this.#ticks('nats', `/proc/${this.#natsPid}/stat`);
      if (t !== undefined) ticks.set('nats', t);
    }
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
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#sample();
    for (const key of [...this.#fds.keys()]) this.#close(key);
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
