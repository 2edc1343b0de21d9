/** The frame format between a worker thread and its Python process, both ends (TypeScript and Python). */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import zlib from 'node:zlib';
import { describe, test } from 'node:test';
import { encodeValue } from '../src/fleet/protocol.js';
import { FrameReader, encodeFrame } from '../src/worker/python/frames.js';
import { ROOT } from './helpers/daemon.js';
import { PYTHON } from './helpers/python.js';

const concat = (chunks: Uint8Array[]): Buffer => Buffer.concat(chunks.map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength)));

describe('python frames', () => {
  test('frames split at every byte boundary come out whole; tails are their own buffers; large tails never copied on write', () => {
    const batch = encodeValue([{ id: 1, x: 'é' }, [1, 2, 3]]);
    const first = encodeFrame(['batch', 'job-1', '7', 2], batch);
    assert.equal(first.length, 1, 'a small tail is copied into the frame: one chunk, one write');
    const large = new Uint8Array(64 * 1024).fill(3);
    assert.equal(encodeFrame(['batch', 'job-1', '8', 1], large)[1], large, 'a large batch is written as it is');
    const stream = concat([...first, ...encodeFrame(['drop', 'job-1']), ...encodeFrame(['ok', true], new Uint8Array(70_000).fill(7))]);
    for (const step of [1, 3, 8, 4096, stream.byteLength]) {
      const reader = new FrameReader();
      const frames = [];
      for (let i = 0; i < stream.byteLength; i += step) frames.push(...reader.push(stream.subarray(i, i + step)));
      assert.deepEqual(frames.map((f) => f.header), [['batch', 'job-1', '7', 2], ['drop', 'job-1'], ['ok', true]], `step ${step}`);
      assert.deepEqual(new Uint8Array(frames[0]!.tail), batch);
      assert.equal(frames[1]!.tail.byteLength, 0);
      assert.equal(frames[2]!.tail.byteLength, 70_000);
      assert.ok(frames[2]!.tail.buffer.byteLength < 70_100, 'a frame owns its buffer (posting it copies the frame only)');
    }
  });

  test('a malformed stream throws instead of being read on', () => {
    const bad = Buffer.alloc(8);
    bad.writeUInt32BE(2, 0);
    assert.throws(() => new FrameReader().push(bad), /bad frame length 2/);
    const tail = Buffer.alloc(12);
    tail.writeUInt32BE(8, 0);
    tail.writeUInt32BE(100, 4);
    assert.throws(() => new FrameReader().push(tail), /tail of 100 bytes/);
  });

  test('the Python end reads and writes the same frames', () => {
    const payload = encodeValue([1, 'two', { three: 3 }]);
    const input = concat(encodeFrame(['batch', 'j', '0', 1], payload));
    // A Python child that reads one frame from fd 0 and echoes it (decoded header, tail as is) on fd 1.
    const script = [
      'import sys; sys.path.insert(0, sys.argv[1])',
      'from jetbatch._frames import Channel',
      'import msgpack',
      'ch = Channel(0, 1)',
      'header, tail = ch.read()',
      'ch.write(["ok", header, msgpack.unpackb(tail)], bytes(tail))',
    ].join('\n');
    const out = execFileSync(PYTHON, ['-c', script, join(ROOT, 'src', 'python')], { input });
    const [frame] = new FrameReader().push(out);
    assert.deepEqual(frame!.header, ['ok', ['batch', 'j', '0', 1], [1, 'two', { three: 3 }]]);
    assert.deepEqual(new Uint8Array(frame!.tail), payload);
  });

  test('the Python end reads frames of every size from one stream, small ones from its read buffer, large ones whole', () => {
    // Many small frames (so some straddle the end of a read while earlier ones sit in the buffer), then the edges.
    const sizes = [...Array.from({ length: 3000 }, (_, i) => (i * 7919) % 5000), 3, 70_000, 0, 5, 2 * 1024 * 1024 + 17, 64 * 1024 - 20, 64 * 1024, 9];
    const tails = sizes.map((n, i) => new Uint8Array(n).fill(i % 251));
    const input = concat(tails.flatMap((t, i) => encodeFrame(['batch', 'j', String(i), 1], t)));
    // Reads every frame (the runner's reader), answers each with its header's batch id, length and a checksum.
    const script = [
      'import sys, zlib; sys.path.insert(0, sys.argv[1])',
      'from jetbatch._frames import Channel',
      'ch = Channel(0, 1)',
      'while True:',
      '    try:',
      '        header, tail = ch.read()',
      '    except EOFError:',
      '        break',
      '    ch.write(["ok", header[2], len(tail), zlib.crc32(tail)])',
    ].join('\n');
    const out = execFileSync(PYTHON, ['-c', script, join(ROOT, 'src', 'python')], { input, maxBuffer: 16 << 20 });
    const frames = new FrameReader().push(out);
    const { crc32 } = zlib;
    assert.deepEqual(frames.map((f) => f.header), tails.map((t, i) => ['ok', String(i), t.byteLength, crc32(t)]));
  });
});
