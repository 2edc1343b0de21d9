/** The Python runtime on its own (no pool, no NATS): one process, handlers per job, drops, abort, close. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import pino from 'pino';
import { decodeValue, encodeValue } from '../src/fleet/protocol.js';
import type { HandlerContext, JobSpec } from '../src/handler.js';
import { PythonRuntime } from '../src/worker/python/python-runtime.js';
import { ProcessReplaced } from '../src/worker/runtime.js';
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
