/**
 * The thread that reads a submission's input (cli/threaded-input.ts starts it): the file or stdin read, split into
 * lines, parsed, checked, cut into batches and MessagePack-encoded here, so the main thread only publishes. Batches
 * go to the main thread in groups, their buffers transferred, at most AHEAD groups not yet taken: memory stays
 * bounded whatever the file's size.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { JetbatchError } from '../errors.js';
import { encodeBatch } from '../fleet/items.js';
import { batchesOfRuns } from '../util/batching.js';
import { openInput, type ReadStats } from './read-input.js';
import type { FromInputThread, InputThreadData, StatsSnapshot } from './threaded-input.js';

/** A group is sent once it holds this many batches or bytes (so at most AHEAD x 1 MiB of large batches wait). */
const GROUP_BATCHES = 64;
const GROUP_BYTES = 1024 * 1024;
/** Groups sent and not yet taken by the main thread before reading pauses. */
const AHEAD = 4;

const port = parentPort!;
const data = workerData as InputThreadData;
let credit = AHEAD;
let wake: (() => void) | null = null;
port.on('message', () => {
  credit++;
  wake?.();
  wake = null;
});

function snapshot(stats: ReadStats): StatsSnapshot {
  return { bytes: stats.bytes, totalBytes: stats.totalBytes, values: stats.values, badLines: stats.badLines, samples: stats.samples.slice() };
}

async function run(): Promise<void> {
  const reader = await openInput(data.file, data.options);
  const source: AsyncIterable<unknown[]> = data.batchSize === null ? eachOf(reader.values) : batchesOfRuns(reader.values, data.batchSize);
  let index = 0;
  let bytes: Uint8Array[] = [];
  let lengths: number[] = [];
  let size = 0;
  const send = async (): Promise<void> => {
    while (credit === 0) await new Promise<void>((resolve) => (wake = resolve));
    credit--;
    const message: FromInputThread = { kind: 'batches', bytes, lengths, stats: snapshot(reader.stats) };
    port.postMessage(message, bytes.map((b) => b.buffer as ArrayBuffer));
    bytes = [];
    lengths = [];
    size = 0;
  };
  for await (const items of source) {
    // The reader checked every value (cli/read-input.ts accept): not walked again.
    const encoded = encodeBatch(items, index++, true);
    // Transferred below: a view of a larger buffer is copied first, so nothing else is detached with it.
    bytes.push(encoded.byteOffset === 0 && encoded.byteLength === encoded.buffer.byteLength ? encoded : encoded.slice());
    lengths.push(items.length);
    size += encoded.byteLength;
    if (bytes.length >= GROUP_BATCHES || size >= GROUP_BYTES) await send();
  }
  if (bytes.length > 0) await send();
  port.postMessage({ kind: 'end', stats: snapshot(reader.stats) } satisfies FromInputThread);
}

/** Nothing more is read: the thread exits once its last message is sent. */
function finished(): void {
  port.unref();
}

/** Each batch of runs of batches (a --batches input). */
async function* eachOf(runs: AsyncIterable<unknown[]>): AsyncGenerator<unknown[]> {
  for await (const run of runs) for (const b of run) yield b as unknown[];
}

run().catch((err: unknown) => {
  const error = err instanceof JetbatchError ? { code: err.code, message: err.message } : { code: null, message: (err as Error).message ?? String(err) };
  port.postMessage({ kind: 'error', error } satisfies FromInputThread);
}).finally(finished);
