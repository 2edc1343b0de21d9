/** The submit input reader: JSON Lines streamed (plain, gzip, line numbers), one-document files, malformed lines, the line length cap. */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { openInput, type ReadOptions, type ReadStats } from '../src/cli/read-input.js';
import { ErrorCodes, JetbatchError } from '../src/errors.js';
import { tempDir } from './helpers/daemon.js';
import { MAX_LINE_CHARS, lineRuns, type Line } from '../src/util/lines.js';

const dir = tempDir('jetbatch-read-input-');
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

const STRICT: ReadOptions = { batches: false, strict: true, maxBadLines: null };

async function read(text: string | Buffer, options: Partial<ReadOptions> = {}, name = 'items.jsonl'): Promise<{ values: unknown[]; stats: ReadStats }> {
  const file = join(dir, `${n++}-${name}`);
  writeFileSync(file, text);
  const reader = await openInput(file, { ...STRICT, ...options });
  const values: unknown[] = [];
  for await (const run of reader.values) values.push(...run);
  return { values, stats: reader.stats };
}

async function assertInvalid(text: string, options: Partial<ReadOptions>, ...patterns: RegExp[]): Promise<JetbatchError> {
  let caught: unknown;
  try {
    await read(text, options);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof JetbatchError, `expected a JetbatchError, got ${String(caught)}`);
  assert.equal(caught.code, ErrorCodes.INVALID_SUBMISSION);
  assert.match(caught.message, /items\.jsonl/, 'the message should name the source');
  for (const p of patterns) assert.match(caught.message, p);
  return caught;
}

describe('reading submit input', () => {
  test('a JSON array gives its elements', async () => {
    assert.deepEqual((await read('[1, "two", {"three": 3}, null, [4]]')).values, [1, 'two', { three: 3 }, null, [4]]);
  });

  test('a pretty-printed JSON array over many lines, with surrounding whitespace', async () => {
    assert.deepEqual((await read('\n  [\n  {"a": 1},\n  {"a": 2}\n]\n\n')).values, [{ a: 1 }, { a: 2 }]);
  });

  test('JSON Lines give one value per line', async () => {
    assert.deepEqual((await read('{"a":1}\n{"a":2}\n"s"\n42\nnull\n')).values, [{ a: 1 }, { a: 2 }, 's', 42, null]);
  });

  test('JSON Lines: blank and whitespace-only lines are skipped, CRLF endings accepted, no final newline needed', async () => {
    assert.deepEqual((await read('{"a":1}\n\n   \n{"a":2}\r\n\t\n{"a":3}')).values, [{ a: 1 }, { a: 2 }, { a: 3 }]);
  });

  test('JSON Lines whose lines are arrays (one batch per line) give one array per line', async () => {
    assert.deepEqual((await read('[1,2]\n[3]\n', { batches: true })).values, [[1, 2], [3]]);
  });

  test('gzip-compressed JSON Lines (.gz) are decompressed as they stream; bytes count the compressed file', async () => {
    const text = Array.from({ length: 5000 }, (_, i) => JSON.stringify({ i, pad: 'x'.repeat(50) })).join('\n');
    const gz = gzipSync(text);
    const { values, stats } = await read(gz, {}, 'items.jsonl.gz');
    assert.equal(values.length, 5000);
    assert.deepEqual(values[4999], { i: 4999, pad: 'x'.repeat(50) });
    assert.equal(stats.bytes, gz.length);
    assert.equal(stats.totalBytes, gz.length);
    // Without the .gz name, by its magic bytes: the rule of stored delimited files (util/gzip.ts).
    assert.deepEqual((await read(gz, {}, 'items.jsonl')).values, values);
  });

  test('multi-byte UTF-8 split across read chunks survives', async () => {
    const line = JSON.stringify({ s: 'ü€😀'.repeat(100_000) });
    const { values } = await read(`${line}\n${line}\n`);
    assert.deepEqual(values, [JSON.parse(line), JSON.parse(line)]);
  });

  describe('strict', () => {
    test('a bad JSON line is rejected, naming its line number', async () => {
      const err = await assertInvalid('{"a":1}\n{"a":2}\n{"a":\n{"a":4}\n', {}, /line 3\b/);
      assert.doesNotMatch(err.message, /line [124]\b/);
    });

    test('line numbers count blank lines, leading and in the middle', async () => {
      await assertInvalid('{"a":1}\n\n\n{oops}\n', {}, /line 4\b/);
      await assertInvalid('\n\n{"a":1}\n{oops}\n', {}, /line 4\b/);
    });

    test('an item the job cannot take (a __proto__ key) is a bad line', async () => {
      await assertInvalid('{"a":1}\n{"__proto__":{"x":1}}\n', {}, /line 2: item: a "__proto__" key/);
    });

    test('with --batches, a line that is not a non-empty array is a bad line', async () => {
      await assertInvalid('[1]\n[]\n', { batches: true }, /line 2: batch: must be a non-empty array/);
      await assertInvalid('[1, 2, 3]', { batches: true }, /line 1: batch 0: must be a non-empty array/);
    });

    test('an unterminated JSON array is rejected', async () => {
      await assertInvalid('[1, 2,', {}, /not valid JSON/);
    });
  });

  test('a JSON object (not an array) spread over lines is rejected, strict or not', async () => {
    await assertInvalid('{\n  "items": [1, 2, 3]\n}\n', {}, /line 1\b/);
    await assertInvalid('{\n  "items": [1, 2, 3]\n}\n', { strict: false }, /line 1: expected a JSON array or JSON Lines/);
  });

  test('a one-line JSON object is one value', async () => {
    assert.deepEqual((await read('{"items": [1, 2, 3]}')).values, [{ items: [1, 2, 3] }]);
  });

  test('empty and whitespace-only input is rejected', async () => {
    await assertInvalid('', {}, /empty/);
    await assertInvalid('  \n\n\t \n', {}, /empty/);
  });

  describe('not strict: malformed lines are skipped, counted and sampled', () => {
    test('the rest is read; each bad line is counted with its number and why', async () => {
      const { values, stats } = await read('{"a":1}\n{oops\n{"a":2}\n\n{"__proto__":{}}\n{"a":3}\n', { strict: false });
      assert.deepEqual(values, [{ a: 1 }, { a: 2 }, { a: 3 }]);
      assert.equal(stats.badLines, 2);
      assert.equal(stats.values, 3);
      assert.deepEqual(stats.samples.map((s) => s.line), [2, 5]);
      assert.match(stats.samples[0]!.message, /not valid JSON/);
    });

    test('a malformed first line does not turn the file into one document', async () => {
      const { values, stats } = await read('{oops\n{"a":1}\n{"a":2}\n', { strict: false });
      assert.deepEqual(values, [{ a: 1 }, { a: 2 }]);
      assert.deepEqual(stats.samples.map((s) => s.line), [1]);
    });

    test('more than --max-bad-lines fails, naming the limit and the last line', async () => {
      await assertInvalid('{"a":1}\nx\ny\n{"a":2}\nz\n', { strict: false, maxBadLines: 2 }, /more than 2 malformed lines/, /line 5/);
      assert.equal((await read('{"a":1}\nx\ny\n{"a":2}\n', { strict: false, maxBadLines: 2 })).stats.badLines, 2);
    });
  });

  test('a missing file fails at once', async () => {
    await assert.rejects(openInput(join(dir, 'missing.jsonl'), STRICT), (err: unknown) => err instanceof JetbatchError && /cannot read /.test(err.message));
  });
});

describe('line length cap (util/lines.ts)', () => {
  async function lines(chunks: string[], max: number): Promise<Line[]> {
    const out: Line[] = [];
    for await (const run of lineRuns(Readable.from(chunks.map((c) => Buffer.from(c))), max)) out.push(...run);
    return out;
  }

  test('a line longer than the cap is reported by number, its text dropped up to its newline, in any chunking', async () => {
    const text = 'ok\n' + 'x'.repeat(25) + '\nnext\n' + 'y'.repeat(11) + '\nlast';
    const expected: Line[] = [[1, 'ok'], [2, null], [3, 'next'], [4, null], [5, 'last']];
    assert.deepEqual(await lines([text], 10), expected);
    for (const size of [1, 3, 7, 10, 11]) {
      const chunks = Array.from({ length: Math.ceil(text.length / size) }, (_, i) => text.slice(i * size, i * size + size));
      assert.deepEqual(await lines(chunks, 10), expected, `chunks of ${size}`);
    }
    // Exactly the cap is fine; a file with no newline at all is one line, too long.
    assert.deepEqual(await lines(['0123456789\n', '0123456789'], 10), [[1, '0123456789'], [2, '0123456789']]);
    assert.deepEqual(await lines(Array.from({ length: 1000 }, () => 'z'.repeat(100)), 10), [[1, null]]);
  });

  test('the reader of submit input reports a too-long line as malformed, with its line number', async () => {
    const text = '{"a":1}\n' + JSON.stringify({ b: 'x'.repeat(100) }) + '\n{"c":3}\n';
    await assertInvalid(text, { maxLineChars: 50 }, /line 2: line longer than 50 characters/);
    const { values, stats } = await read(text, { strict: false, maxLineChars: 50 });
    assert.deepEqual(values, [{ a: 1 }, { c: 3 }]);
    assert.equal(stats.badLines, 1);
    assert.deepEqual(stats.samples.map((s) => s.line), [2]);
    // A too-long first line too.
    const first = await read(JSON.stringify({ b: 'x'.repeat(100) }) + '\n{"c":3}\n', { strict: false, maxLineChars: 50 });
    assert.deepEqual(first.values, [{ c: 3 }]);
    assert.equal(first.stats.badLines, 1);
    assert.equal(MAX_LINE_CHARS, 64 * 1024 * 1024);
  });
});
