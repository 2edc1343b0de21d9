/**
 * The submit input read on its own thread (cli/threaded-input.ts): the same batches, bytes and counts as the
 * in-process reader, errors with their codes and line numbers, memory bounded by taking (the thread pauses when the
 * publisher does), and the thread ended by close() or by stopping early.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { setTimeout as sleep } from 'node:timers/promises';
import { openInput, type ReadOptions } from '../src/cli/read-input.js';
import { openThreadedInput } from '../src/cli/threaded-input.js';
import { ErrorCodes, JetbatchError } from '../src/errors.js';
import { encodeValue } from '../src/fleet/protocol.js';
import { batchesOfRuns } from '../src/util/batching.js';
import { tempDir } from './helpers/daemon.js';

const dir = tempDir('jetbatch-threaded-input-');
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const LENIENT: ReadOptions = { batches: false, strict: false, maxBadLines: null };

function file(text: string | Buffer, name = 'items.jsonl'): string {
  const path = join(dir, `${n++}-${name}`);
  writeFileSync(path, text);
  return path;
}

function workers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Worker').length;
}

async function threadEnds(): Promise<void> {
  for (let i = 0; i < 100 && workers() > 0; i++) await sleep(20);
  assert.equal(workers(), 0, 'the input thread should have ended');
}

async function rejection(p: Promise<unknown>): Promise<JetbatchError> {
  const err = await p.then(() => null, (e: unknown) => e);
  assert.ok(err instanceof JetbatchError, `expected a JetbatchError, got ${String(err)}`);
  return err;
}

describe('the input thread', () => {
  test('yields the bytes the in-process reader would encode, batch lengths and stats included (items, gzip, --batches)', async () => {
    const lines = Array.from({ length: 25_000 }, (_, i) => (i % 1000 === 7 ? '{"broken":' : JSON.stringify({ id: i, s: 'é'.repeat(i % 5), a: [i, null, true] })));
    const cases: Array<{ path: string; options: ReadOptions; size: number | null }> = [
      { path: file(lines.join('\n') + '\n'), options: LENIENT, size: 97 },
      { path: file(gzipSync(lines.join('\n')), 'items.jsonl.gz'), options: LENIENT, size: 1000 },
      { path: file(Array.from({ length: 300 }, (_, b) => JSON.stringify(Array.from({ length: 1 + (b % 7) }, (_, i) => ({ b, i })))).join('\n')), options: { ...LENIENT, batches: true }, size: null },
    ];
    for (const c of cases) {
      const expected: Uint8Array[] = [];
      const reader = await openInput(c.path, c.options);
      const source = c.size === null ? (async function* () { for await (const run of reader.values) yield* run as unknown[][]; })() : batchesOfRuns(reader.values, c.size);
      const lengths: number[] = [];
      for await (const b of source) {
        expected.push(encodeValue(b));
        lengths.push(b.length);
      }
      const threaded = await openThreadedInput(c.path, c.options, c.size);
      const got: Uint8Array[] = [];
      const gotLengths: number[] = [];
      for await (const b of threaded.batches) {
        got.push(b.bytes);
        gotLengths.push(b.length);
      }
      assert.equal(got.length, expected.length);
      assert.ok(got.every((b, i) => Buffer.from(b).equals(Buffer.from(expected[i]!))), 'every batch byte for byte');
      assert.deepEqual(gotLengths, lengths);
      assert.equal(threaded.stats.values, reader.stats.values);
      assert.equal(threaded.stats.badLines, reader.stats.badLines);
      assert.deepEqual(threaded.stats.samples, reader.stats.samples);
      assert.equal(threaded.stats.bytes, statSync(c.path).size);
      assert.equal(threaded.stats.totalBytes, statSync(c.path).size);
    }
    await threadEnds();
  });

  test('a malformed line is the reader\'s error, code and line number, whether before the first batch or after many', async () => {
    const early = await rejection(openThreadedInput(file('{"a":1}\n{"b":\n'), { ...LENIENT, strict: true }, 10));
    assert.equal(early.code, ErrorCodes.INVALID_SUBMISSION);
    assert.match(early.message, /line 2: not valid JSON/);
    const late = Array.from({ length: 200_000 }, (_, i) => JSON.stringify({ i }));
    late[150_000] = '[1, 2';
    const threaded = await openThreadedInput(file(late.join('\n')), { ...LENIENT, strict: true }, 100);
    const err = await rejection((async () => {
      for await (const _ of threaded.batches);
    })());
    assert.equal(err.code, ErrorCodes.INVALID_SUBMISSION);
    assert.match(err.message, /line 150001: not valid JSON/);
    const unreadable = await rejection(openThreadedInput(join(dir, 'missing.jsonl'), LENIENT, 10));
    assert.match(unreadable.message, /cannot read .*missing\.jsonl/);
    await threadEnds();
  });

  test('reads ahead only a few groups of batches: a publisher that pauses pauses the reading', async () => {
    // ~60 MB of items; the thread keeps at most 4 groups of ≤ 64 batches (or 4 MiB) not taken.
    const line = JSON.stringify({ pad: 'x'.repeat(500) });
    const path = file(Array.from({ length: 120_000 }, () => line).join('\n'));
    const size = statSync(path).size;
    const threaded = await openThreadedInput(path, LENIENT, 10);
    const it = threaded.batches[Symbol.asyncIterator]();
    await it.next();
    await sleep(500);
    assert.ok(threaded.stats.bytes < size / 4, `read ${threaded.stats.bytes} of ${size} bytes while nothing was taken`);
    let batches = 1;
    for (let r = await it.next(); r.done !== true; r = await it.next()) batches++;
    assert.equal(batches, 12_000);
    assert.equal(threaded.stats.bytes, size);
    await threadEnds();
  });

  test('close() ends the thread; so does stopping early; an empty input ends it at once', async () => {
    const path = file(Array.from({ length: 100_000 }, (_, i) => JSON.stringify({ i })).join('\n'));
    const closed = await openThreadedInput(path, LENIENT, 10);
    closed.close();
    closed.close();
    await threadEnds();
    const stopped = await openThreadedInput(path, LENIENT, 10);
    for await (const b of stopped.batches) if (b.length > 0) break;
    await threadEnds();
    const empty = await openThreadedInput(file('\n\n{"x":\n'), LENIENT, 10);
    assert.equal(empty.stats.values, 0);
    assert.equal(empty.stats.badLines, 1);
    await threadEnds();
  });
});
