/** The Python runtime on its own (no pool, no NATS): one process, handlers per job, drops, abort, close. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import pino from 'pino';
import { decodeValue, encodeValue } from '../src/fleet/protocol.js';
import type { HandlerContext, JobSpec } from '../src/handler.js';
import { PythonRuntime } from '../src/worker/python/python-runtime.js';
import { ProcessReplaced, type JobHandler } from '../src/worker/runtime.js';
import { FIXTURES, tempDir } from './helpers/daemon.js';
import { PYTHON, runnerPids } from './helpers/python.js';
import { waitUntil } from './helpers/wait.js';

const projectDir = join(FIXTURES, 'python-failures');
const log = pino({ level: 'silent' });

function ctx(signal = new AbortController().signal): HandlerContext {
  return {
    log, signal, gpu: null, worker: 0, projectDir, attempt: 1, extendLease: () => {},
    metrics: { increment: () => {}, gauge: () => {}, observe: () => {} },
    client: () => Promise.reject(new Error('no client in this test')),
    open: () => Promise.reject(new Error('no stores in this test')),
  };
}

const job = (id: string): JobSpec => ({ job_id: id, api_name: 'py', config: { record_dir: tempDir() }, workers: 1, total_batch_count: 1 } as unknown as JobSpec);

describe('python runtime', () => {
  let resets = 0;
  const runtime = new PythonRuntime({
    handlerPath: join(projectDir, 'handler.py'), projectDir, python: PYTHON, gpu: null, memoryLimitMb: undefined,
    maxLineBytes: 1 << 20, log, onReset: () => resets++,
  });
  runtime.preload();
  after(() => runtime.close());

  test('a job whose handler was dropped (its previous run ended late) gets it constructed again', async () => {
    const { handler } = await runtime.create(job('j1'), ctx());
    const pid = decodeValue(runtime.encodeResult(await handler.handleBatch(runtime.decode(encodeValue(['ok'])), '0', ctx()))!);
    runtime.dropped('j1');
    const again = decodeValue(runtime.encodeResult(await handler.handleBatch(runtime.decode(encodeValue(['ok'])), '1', ctx()))!);
    assert.equal(again, pid, 'same process');
    assert.equal(handler.onJobComplete, undefined, 'the fixture has no hook');
  });

  test('an abort kills the running process; the next request starts a new one', async () => {
    const { handler } = await runtime.create(job('j3'), ctx());
    const ac = new AbortController();
    const running = Promise.resolve(handler.handleBatch(runtime.decode(encodeValue(['loop'])), '0', ctx(ac.signal)));
    setTimeout(() => ac.abort(Object.assign(new Error('stop'), { code: 'JB_ABORTED' })), 300);
    const err = await running.then(() => null, (e: unknown) => e);
    assert.ok(err instanceof ProcessReplaced);
    assert.equal(err.why, 'aborted');
    assert.ok(resets >= 1, 'the thread is told to construct its handlers again');
    const fresh = await runtime.create(job('j3'), ctx());
    assert.equal(typeof decodeValue(runtime.encodeResult(await fresh.handler.handleBatch(runtime.decode(encodeValue(['ok'])), '1', ctx()))!), 'number');
  });

  test('close() kills the process at once and is idempotent', async () => {
    assert.equal(runnerPids().length, 1);
    runtime.close();
    runtime.close();
    await waitUntil('no runner process', () => runnerPids().length === 0, { timeoutMs: 5000 });
    await assert.rejects(runtime.create(job('j4'), ctx()), /load failed/);
  });
});

describe('python runtime: a task\'s batches written ahead', () => {
  let resets = 0;
  const runtime = new PythonRuntime({
    handlerPath: join(projectDir, 'handler.py'), projectDir, python: PYTHON, gpu: null, memoryLimitMb: undefined,
    maxLineBytes: 1 << 20, log: pino({ level: 'info' }, { write: () => {} }), onReset: () => resets++,
  });
  after(() => runtime.close());

  /** A context whose log lines and metrics are collected, as the worker's batch context would carry them. */
  function collecting(batchId: string, signal?: AbortSignal): { ctx: HandlerContext; lines: Array<Record<string, unknown>>; metrics: string[] } {
    const lines: Array<Record<string, unknown>> = [];
    const metrics: string[] = [];
    const sink = { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) };
    const c = ctx(signal);
    return {
      ctx: { ...c, log: pino({ level: 'info' }, sink).child({ batch_id: batchId }), metrics: { ...c.metrics, increment: (name) => void metrics.push(name) } },
      lines,
      metrics,
    };
  }

  /** What worker.ts does with a task: pipeline its batches, then run them one by one, constructing again after a reset. */
  async function runTask(jobId: string, modes: string[], abortAt?: number): Promise<Array<{ value: unknown; lines: Array<Record<string, unknown>>; metrics: string[] } | { error: unknown }>> {
    const payloads = modes.map((m) => runtime.decode(encodeValue([m])));
    const done = runtime.pipeline(jobId, payloads.map((payload, i) => ({ batchId: String(i), attempt: 1, payload })));
    const out: Array<{ value: unknown; lines: Array<Record<string, unknown>>; metrics: string[] } | { error: unknown }> = [];
    let handler: JobHandler<Uint8Array> | undefined;
    let seenResets = resets;
    try {
      for (let i = 0; i < modes.length; i++) {
        // As worker.ts's instanceFor: constructed once, and again after the process was replaced.
        if (handler === undefined || resets !== seenResets) {
          seenResets = resets;
          handler = (await runtime.create(job(jobId), ctx())).handler;
        }
        const ac = new AbortController();
        const c = collecting(String(i), ac.signal);
        if (i === abortAt) setTimeout(() => ac.abort(Object.assign(new Error('batch timeout'), { code: 'JB_BATCH_TIMEOUT' })), 300);
        try {
          const value = decodeValue(runtime.encodeResult(await handler.handleBatch(payloads[i]!, String(i), c.ctx))!);
          out.push({ value, lines: c.lines, metrics: c.metrics });
        } catch (error) {
          out.push({ error });
        }
      }
    } finally {
      done();
    }
    return out;
  }

  test('the process finds the next batch waiting; each batch\'s logs and metrics reach its own context', async () => {
    const out = await runTask('a1', ['ahead', 'ahead', 'ahead', 'ahead', 'ahead']);
    const values = out.map((o) => ('value' in o ? o.value : o.error)) as Array<[number, boolean]>;
    assert.equal(new Set(values.map((v) => v[0])).size, 1, 'one process');
    // Batches 1–3 were written while an earlier one ran: each found the next waiting. The last had none behind it.
    assert.deepEqual(values.slice(1).map((v) => v[1]), [true, true, true, false], JSON.stringify(values));
    out.forEach((o, i) => {
      assert.ok('lines' in o);
      assert.deepEqual(o.lines.map((l) => [l.batch_id, l.seen, l.msg]), [[String(i), String(i), 'batch running']], `batch ${i}'s log line`);
      assert.deepEqual(o.metrics, ['ahead_batches']);
    });
  });

  test('a batch killed mid-task: the batches written ahead run again in the new process, once each', async () => {
    const before = resets;
    const out = await runTask('a2', ['ahead', 'loop', 'ahead', 'ahead'], 1);
    assert.ok('value' in out[0]!);
    const failed = out[1]!;
    assert.ok('error' in failed && failed.error instanceof ProcessReplaced && failed.error.why === 'timeout');
    assert.equal(resets, before + 1);
    const first = (out[0] as { value: [number, boolean] }).value[0];
    const later = out.slice(2).map((o) => (o as { value: [number, boolean] }).value[0]);
    assert.equal(new Set(later).size, 1);
    assert.notEqual(later[0], first, 'a new process');
    assert.deepEqual(out.slice(2).map((o) => (o as { value: [number, boolean] }).value[1]), [true, false], 'written ahead to the new process too');
    for (const [i, o] of out.slice(2).entries()) assert.deepEqual((o as { lines: Array<Record<string, unknown>> }).lines.map((l) => l.seen), [String(i + 2)]);
  });
});
