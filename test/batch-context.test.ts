/** BatchContext (pure logic): the `ctx` a handler gets, used the ways handlers use it. */
import assert from 'node:assert/strict';
import type { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import type { Logger } from 'pino';
import type { JetbatchClient } from '../src/client/client.js';
import { BatchAbort } from '../src/worker/batch-abort.js';
import { BatchContext, type ThreadServices } from '../src/worker/context.js';

function services(leases: string[]): ThreadServices {
  return {
    gpu: 1,
    worker: 3,
    projectDir: '/srv/project',
    metrics: { increment: () => {}, gauge: () => {}, observe: () => {} },
    client: () => Promise.reject(new Error('no client here')) as Promise<JetbatchClient>,
    open: (url: string) => Promise.reject(new Error(`cannot open ${url}`)) as Promise<Readable>,
    lease: (jobId, batchId) => leases.push(`${jobId}/${batchId}`),
  };
}

const fakeLogger = (name: string): Logger => ({ name }) as unknown as Logger;

describe('BatchContext', () => {
  test('extendLease works detached: it restarts the timeout and tells the main thread, every call', () => {
    const leases: string[] = [];
    let extended = 0;
    const ctx = new BatchContext(services(leases), 'job-1', 2, fakeLogger('l'), new AbortController().signal, 'b-7', () => extended++);
    const { extendLease } = ctx;
    extendLease();
    setImmediate(ctx.extendLease);
    return new Promise<void>((resolve) =>
      setImmediate(() => {
        assert.equal(extended, 2);
        assert.deepEqual(leases, ['job-1/b-7', 'job-1/b-7']);
        resolve();
      }),
    );
  });

  test('outside a batch (constructor, onJobComplete) extendLease does nothing', () => {
    const leases: string[] = [];
    const ctx = new BatchContext(services(leases), 'job-1', 0, fakeLogger('l'), new AbortController().signal, null);
    ctx.extendLease();
    assert.deepEqual(leases, []);
    assert.equal(ctx.attempt, 0);
  });

  test('the logger is made once, and only when read; destructuring reads it', () => {
    let made = 0;
    const ctx = new BatchContext(services([]), 'job-1', 1, () => fakeLogger(`batch-${++made}`), new AbortController().signal, 'b-1');
    assert.equal(made, 0);
    const { log, gpu, worker, projectDir, attempt } = ctx;
    assert.equal((log as unknown as { name: string }).name, 'batch-1');
    assert.equal(ctx.log, log);
    assert.equal(made, 1);
    assert.deepEqual([gpu, worker, projectDir, attempt], [1, 3, '/srv/project', 1]);
  });

  test('the signal of a BatchAbort is made when read and carries an abort that came before', () => {
    const abort = new BatchAbort();
    const ctx = new BatchContext(services([]), 'job-1', 1, fakeLogger('l'), abort, 'b-1');
    const reason = new Error('timed out');
    abort.abort(reason);
    assert.equal(ctx.signal.aborted, true);
    assert.equal(ctx.signal.reason, reason);
    assert.equal(ctx.signal, ctx.signal, 'the same signal every read');
  });

  test('client and open are the thread services, callable detached', async () => {
    const ctx = new BatchContext(services([]), 'job-1', 1, fakeLogger('l'), new AbortController().signal, 'b-1');
    const { open, client } = ctx;
    await assert.rejects(open('obj://b/k'), /cannot open obj:\/\/b\/k/);
    await assert.rejects(client(), /no client here/);
  });
});
