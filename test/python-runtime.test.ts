/** The Python runtime on its own (no pool, no NATS): one process, handlers per job, drops, abort, close. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import pino from 'pino';
import { decodeValue, encodeValue } from '../src/fleet/protocol.js';
import type { HandlerContext, JobSpec } from '../src/handler.js';
import { PythonRuntime } from '../src/worker/python/python-runtime.js';
import { ProcessReplaced, type BatchEnd, type JobHandler } from '../src/worker/runtime.js';
import { BatchAbort } from '../src/worker/batch-abort.js';
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

  /** What the task loop (task-runner.ts) does with a task: pipeline its batches, then run them one by one, constructing again after a reset. */
  async function runTask(jobId: string, modes: string[], abortAt?: number): Promise<Array<{ value: unknown; lines: Array<Record<string, unknown>>; metrics: string[] } | { error: unknown }>> {
    const payloads = modes.map((m) => runtime.decode(encodeValue([m])));
    const done = runtime.pipeline(jobId, payloads.map((payload, i) => ({ batchId: String(i), attempt: 1, payload })));
    const out: Array<{ value: unknown; lines: Array<Record<string, unknown>>; metrics: string[] } | { error: unknown }> = [];
    let handler: JobHandler<Uint8Array> | undefined;
    let seenResets = resets;
    try {
      for (let i = 0; i < modes.length; i++) {
        // As TaskRunner's instance per job: constructed once, and again after the process was replaced.
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

describe('python runtime: a task\'s batches in one request (handleBatches)', () => {
  let resets = 0;
  const runtime = new PythonRuntime({
    handlerPath: join(projectDir, 'handler.py'), projectDir, python: PYTHON, gpu: null, memoryLimitMb: undefined,
    maxLineBytes: 1 << 20, log: pino({ level: 'info' }, { write: () => {} }), onReset: () => resets++,
  });
  after(() => runtime.close());

  interface Seen { lines: Array<Record<string, unknown>>; metrics: string[]; leases: number }

  /** handleBatches on a task of `modes`, with the worker's hooks; what each batch's context received, by index. */
  async function runAtOnce(jobId: string, modes: string[], o: { timeoutMs?: number; abortAfterMs?: number; config?: Record<string, unknown> } = {}): Promise<{ ends: BatchEnd[]; seen: Map<number, Seen>; abort: BatchAbort; handler: JobHandler<Uint8Array> }> {
    const spec = { ...job(jobId), config: { record_dir: tempDir(), ...o.config } } as JobSpec;
    const { handler } = await runtime.create(spec, ctx());
    // As a task's batches arrive: views into one buffer, back to back.
    const parts = modes.map((m) => encodeValue([m]));
    const data = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
    let at = 0;
    const batches = parts.map((p, i) => {
      data.set(p, at);
      at += p.byteLength;
      return { batchId: String(i), attempt: 1, payload: data.subarray(at - p.byteLength, at) };
    });
    const seen = new Map<number, Seen>();
    const abort = new BatchAbort();
    if (o.abortAfterMs !== undefined) setTimeout(() => abort.abort(Object.assign(new Error('the job was stopped'), { code: 'JB_ABORTED' })), o.abortAfterMs);
    const ends = await handler.handleBatches!(batches, {
      timeoutMs: o.timeoutMs ?? 60_000,
      abort,
      context: (i, onExtend) => {
        const s: Seen = { lines: [], metrics: [], leases: 0 };
        assert.equal(seen.has(i), false, `batch ${i}'s context is made once`);
        seen.set(i, s);
        const c = ctx();
        return {
          ...c,
          log: pino({ level: 'info' }, { write: (line: string) => void s.lines.push(JSON.parse(line) as Record<string, unknown>) }).child({ batch_id: String(i) }),
          metrics: { ...c.metrics, increment: (name) => void s.metrics.push(name) },
          extendLease: () => {
            s.leases++;
            onExtend();
          },
        };
      },
      timeoutError: (i) => Object.assign(new Error(`batch ${i} timed out`), { code: 'JB_BATCH_TIMEOUT' }),
    });
    return { ends, seen, abort, handler };
  }

  const value = (e: BatchEnd | undefined): unknown => {
    assert.ok(e?.ok, `an ok end: ${JSON.stringify(e)}`);
    return decodeValue(runtime.encodeResult(e.value)!);
  };

  test('every batch answered in order in one process; each batch\'s logs and metrics reach its own context, made only for batches that send something', async () => {
    const { ends, seen } = await runAtOnce('m1', ['ok', 'ahead', 'ok', 'ahead', 'ok']);
    assert.equal(ends.length, 5);
    const pids = [0, 2, 4].map((i) => value(ends[i]));
    assert.equal(new Set(pids).size, 1, 'one process');
    for (const e of ends) assert.ok(e.ms >= 0 && e.ms < 5000, `the batch's own time: ${e.ms}`);
    assert.deepEqual([1, 3].map((i) => (value(ends[i]) as [number, boolean])[0]), [pids[0], pids[0]]);
    assert.deepEqual([...seen.keys()].sort(), [1, 3], 'contexts only for the batches that logged');
    for (const i of [1, 3]) {
      assert.deepEqual(seen.get(i)!.lines.map((l) => [l.batch_id, l.seen, l.msg]), [[String(i), String(i), 'batch running']]);
      assert.deepEqual(seen.get(i)!.metrics, ['ahead_batches']);
    }
  });

  test('a batch that raises ends with its Python traceback; the batches after it still run', async () => {
    const { ends } = await runAtOnce('m2', ['ok', 'raise', 'permanent', 'ok']);
    assert.equal(ends.length, 4);
    const raised = ends[1]!;
    assert.ok(!raised.ok && raised.error instanceof Error);
    assert.match(raised.error.message, /model failed on '1'/);
    assert.match(String(raised.error.stack), /Traceback[\s\S]*model_step/);
    const permanent = ends[2]!;
    assert.ok(!permanent.ok && (permanent.error as { permanent?: boolean; code?: string }).permanent === true);
    assert.equal((permanent.error as { code?: string }).code, 'E_BAD_INPUT');
    assert.equal(value(ends[3]), value(ends[0]), 'same process');
  });

  test('a batch over its time limit mid-task: it ends with the timeout, the process is replaced, the rest is left to handleBatch', async () => {
    const before = resets;
    const { ends } = await runAtOnce('m3', ['ok', 'loop', 'ok', 'ok'], { timeoutMs: 400 });
    assert.equal(ends.length, 2, 'the batches after the timed-out one are not answered here');
    value(ends[0]);
    const timedOut = ends[1]!;
    assert.ok(!timedOut.ok && timedOut.error instanceof ProcessReplaced);
    assert.equal(timedOut.error.why, 'timeout');
    assert.match(String((timedOut.error.original as Error).message), /batch 1 timed out/);
    assert.equal(resets, before + 1);
  });

  test('each reply and each lease extension restarts the time limit: a task longer than it, and a batch extending its lease past it, succeed', async () => {
    const { ends, seen } = await runAtOnce('m4', ['ok', 'lease', 'ok'], { timeoutMs: 700, config: { batch_timeout_s: 0.7 } });
    assert.equal(ends.length, 3);
    assert.equal(value(ends[1]), 'survived');
    assert.ok(seen.get(1)!.leases >= 5, `leases extended: ${seen.get(1)?.leases}`);
  });

  test('a process that dies mid-task (os._exit): that batch ends as a crash, the rest is left to handleBatch', async () => {
    const { ends } = await runAtOnce('m5', ['ok', 'exit', 'ok']);
    assert.equal(ends.length, 2);
    const died = ends[1]!;
    assert.ok(!died.ok && died.error instanceof ProcessReplaced && died.error.why === 'crash');
    assert.match(String((died.error.original as Error).message), /exited with code 7/);
  });

  test('a stop mid-task kills the process; the batch running ends with the stop\'s reason', async () => {
    const { ends } = await runAtOnce('m6', ['ok', 'loop', 'ok'], { abortAfterMs: 300 });
    assert.equal(ends.length, 2);
    const stopped = ends[1]!;
    assert.ok(!stopped.ok && stopped.error instanceof ProcessReplaced && stopped.error.why === 'aborted');
    assert.match(String((stopped.error.original as Error).message), /the job was stopped/);
  });

  test('a job whose handler was dropped: nothing is answered here, and handleBatch constructs it again', async () => {
    const { handler } = await runAtOnce('m7', ['ok']);
    runtime.dropped('m7');
    const batches = [encodeValue(['ok']), encodeValue(['ok'])].map((payload, i) => ({ batchId: String(i), attempt: 1, payload }));
    const hooks = { timeoutMs: 60_000, abort: new BatchAbort(), context: () => ctx(), timeoutError: () => new Error('timeout') };
    assert.deepEqual(await handler.handleBatches!(batches, hooks), []);
    assert.equal(typeof decodeValue(runtime.encodeResult(await handler.handleBatch(batches[0]!.payload, '0', ctx()))!), 'number');
    // Constructed again: the next task is answered at once; the batches were copied together (not one buffer).
    const ends = await handler.handleBatches!(batches, hooks);
    assert.equal(ends.length, 2);
    assert.ok(ends.every((e) => e.ok));
  });
});
