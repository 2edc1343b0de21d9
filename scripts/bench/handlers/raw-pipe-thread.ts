/**
 * One worker thread of the raw pipe reference (../raw-pipe.ts): it owns one bare Python loop (raw_echo.py) on
 * dedicated pipes (fd 3: thread → process, fd 4: process → thread), as a jetbatch worker thread owns its handler
 * process, and sends it batches one at a time (one request outstanding, like the Python runtime), taking the next
 * batch number from a counter shared with the other threads (a queue both drain).
 */
import { spawn } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { parentPort, workerData } from 'node:worker_threads';
import { nowMs } from './work.js';

export interface RawPipeThreadData {
  python: string;
  script: string;
  bytes: Uint8Array;
  /** Int32 [next batch number]. */
  counter: SharedArrayBuffer;
  n: number;
  decode: boolean;
  iterations: number;
  warmup: number;
}

/** Thread → bench: ready after the warm-up, then done with the time its last reply arrived. */
export type RawPipeThreadMessage = { type: 'ready' } | { type: 'done'; t: number; count: number };

const d = workerData as RawPipeThreadData;
const proc = spawn(d.python, [d.script, d.decode ? '1' : '0', String(d.iterations)], { stdio: ['ignore', 'inherit', 'inherit', 'pipe', 'pipe'] });
const out = proc.stdio[3] as Writable;
const inp = proc.stdio[4] as Readable;
const bytes = Buffer.from(d.bytes.buffer, d.bytes.byteOffset, d.bytes.byteLength);
const prefix = Buffer.alloc(4);
prefix.writeUInt32BE(bytes.byteLength, 0);

let waiting: (() => void) | undefined;
let buffered: Buffer = Buffer.alloc(0);
inp.on('data', (chunk: Buffer) => {
  buffered = buffered.byteLength === 0 ? chunk : Buffer.concat([buffered, chunk]);
  // Replies are 8 bytes: u32 length (4) | u32 value; one is outstanding at a time.
  while (buffered.byteLength >= 8) {
    buffered = buffered.subarray(8);
    const w = waiting;
    waiting = undefined;
    w?.();
  }
});
proc.on('exit', (code, signal) => {
  if (waiting !== undefined) throw new Error(`raw_echo.py exited (${code ?? signal}) with a request outstanding`);
});

function roundTrip(): Promise<void> {
  return new Promise((resolve) => {
    waiting = resolve;
    // Both chunks in one writev, as a minimal framed writer would.
    out.cork();
    out.write(prefix);
    out.write(bytes);
    out.uncork();
  });
}

// No top-level await: this file is loaded by require (raw-pipe-thread.cjs).
async function main(): Promise<void> {
  for (let i = 0; i < d.warmup; i++) await roundTrip();
  const counter = new Int32Array(d.counter);
  const port = parentPort!;
  port.postMessage({ type: 'ready' } satisfies RawPipeThreadMessage);
  await new Promise<void>((resolve) => port.once('message', () => resolve()));
  let count = 0;
  while (Atomics.add(counter, 0, 1) < d.n) {
    await roundTrip();
    count++;
  }
  port.postMessage({ type: 'done', t: nowMs(), count } satisfies RawPipeThreadMessage);
  out.end();
  await new Promise<void>((resolve) => (proc.exitCode !== null ? resolve() : proc.once('exit', () => resolve())));
}

void main();
