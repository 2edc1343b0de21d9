/** End to end on a real nats-server and real worker threads: submit, run, results, status, resubmission, bad input. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { JetbatchClient } from '../src/client/client.js';
import type { Daemon } from '../src/daemon/daemon.js';
import { JetbatchError } from '../src/errors.js';
import { Streams, Subjects, encodeValue } from '../src/fleet/protocol.js';
import type { JobStatus } from '../src/types.js';
import { FIXTURES, ROOT, readRecords, startDaemon, tempDir } from './helpers/daemon.js';
import { NatsServer } from './helpers/nats-server.js';

const run = promisify(execFile);

describe('core: one daemon, two APIs', () => {
  let server: NatsServer;
  let daemon: Daemon;
  let client: JetbatchClient;
  let nc: NatsConnection;
  const recordDir = tempDir();

  before(async () => {
    server = await NatsServer.start();
    daemon = await startDaemon(server.url, [
      { name: 'echo', project: join(ROOT, 'handlers', 'echo'), threads: 2 },
      {
        name: 'recorder',
        project: join(FIXTURES, 'recorder'),
        threads: 2,
        config: { record_dir: recordDir, api_only: 'api', nested: { x: 1, y: 1 } },
      },
    ]);
    client = await JetbatchClient.connect({ servers: [server.url] });
    nc = await connect({ servers: server.url });
  });

  after(async () => {
    await client?.close();
    await nc?.close();
    await daemon?.close();
    await server?.dispose();
  });

  async function queuedMessages(): Promise<number> {
    const jsm = await jetstreamManager(nc);
    return (await jsm.streams.info(Streams.batches)).state.messages;
  }

  async function jobCount(): Promise<number> {
    return (await client.jobs()).length;
  }

  test('1,000 items in batches of 10: every item seen once, exact counts, results complete', async () => {
    const items = Array.from({ length: 1000 }, (_, i) => ({ id: i, text: `item-${i}` }));
    const record = await client.submit({ api_name: 'recorder', items, batch_size: 10, workers: 4 });
    assert.equal(record.total_batch_count, 100);
    const final = await client.wait(record.job_id, { intervalMs: 100, timeoutMs: 60_000 });
    assert.equal(final.status, 'succeeded');
    assert.deepEqual(final.batch_metrics.succeeded, 100);
    assert.equal(final.batch_metrics.failed, 0);
    assert.equal(final.batches_in_queue, 0);
    assert.equal(typeof final.batch_metrics.avg_time_per_batch, 'number');
    assert.ok(final.end_time !== null && final.end_time >= final.start_time);

    const ends = readRecords(recordDir).filter((r) => r.job === record.job_id && r.ev === 'end');
    const seen = ends.flatMap((r) => r.items as Array<{ id: number }>).map((i) => i.id).sort((a, b) => a - b);
    assert.deepEqual(seen, items.map((i) => i.id));

    const results = [];
    for await (const r of client.results(record.job_id)) results.push(r);
    assert.equal(results.length, 100);
    assert.deepEqual(new Set(results.map((r) => r.batch_id)), new Set(Array.from({ length: 100 }, (_, i) => String(i))));
    for (const r of results) assert.deepEqual(r.result, { n: 10, batch: r.batch_id });
  });

  test('handler gets the API config deep-merged under the job config, and the jobSpec fields', async () => {
    const record = await client.submit({
      api_name: 'recorder',
      items: [1, 2, 3],
      batch_size: 2,
      workers: 2,
      config: JSON.parse('{"job_only":"job","nested":{"y":2,"__proto__":{"polluted":1}},"__proto__":{"polluted":true}}') as Record<string, unknown>,
    });
    const final = await client.wait(record.job_id, { intervalMs: 100, timeoutMs: 30_000 });
    assert.equal(final.status, 'succeeded');
    const init = readRecords(recordDir).find((r) => r.job === record.job_id && r.ev === 'init');
    assert.ok(init, 'constructor ran');
    const cfg = init.config as Record<string, unknown>;
    assert.deepEqual(cfg, { record_dir: recordDir, api_only: 'api', nested: { x: 1, y: 2 }, job_only: 'job' });
    const spec = init.spec as Record<string, unknown>;
    assert.equal(spec.job_id, record.job_id);
    assert.equal(spec.api_name, 'recorder');
    assert.equal(spec.workers, 2);
    assert.equal(spec.total_batch_count, 2);
    assert.equal(spec.start_time, record.start_time);
    assert.deepEqual(spec.config, cfg);
    assert.equal(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted'), false);
    const complete = readRecords(recordDir).filter((r) => r.job === record.job_id && r.ev === 'complete');
    assert.equal(complete.length, 1);
    const summary = complete[0]!.summary as { batch_metrics: { succeeded: number; failed: number } };
    assert.deepEqual([summary.batch_metrics.succeeded, summary.batch_metrics.failed], [2, 0]);
  });

  test('two APIs and several jobs at once all finish with exact counts', async () => {
    const jobs = await Promise.all(
      [0, 1, 2, 3, 4, 5].map((i) =>
        client.submit({
          api_name: i % 2 === 0 ? 'echo' : 'recorder',
          items: Array.from({ length: 50 + i * 10 }, (_, k) => k),
          batch_size: 5,
          workers: 1 + (i % 3),
        }),
      ),
    );
    const finals = await Promise.all(jobs.map((j) => client.wait(j.job_id, { intervalMs: 100, timeoutMs: 60_000 })));
    finals.forEach((f, i) => {
      assert.equal(f.status, 'succeeded', f.job_id);
      assert.equal(f.batch_metrics.succeeded, (50 + i * 10) / 5);
      assert.equal(f.batch_metrics.failed, 0);
    });
    const listed = await client.jobs({ api: 'echo' });
    assert.ok(listed.every((s) => s.api_name === 'echo'));
    const starts = listed.map((s) => s.start_time);
    assert.deepEqual(starts, [...starts].sort().reverse(), 'newest first');
  });

  test('resubmitting the same job id enqueues nothing twice; different content under that id is refused', async () => {
    const input = { api_name: 'echo', items: Array.from({ length: 40 }, (_, i) => i), batch_size: 4, job_id: 'resubmit-1' };
    const first = await client.submit(input);
    const again = await client.submit(input);
    assert.equal(again.job_id, first.job_id);
    assert.equal(again.start_time, first.start_time);
    const final = await client.wait('resubmit-1', { intervalMs: 100, timeoutMs: 30_000 });
    assert.equal(final.status, 'succeeded');
    assert.equal(final.batch_metrics.succeeded, 10);
    let results = 0;
    for await (const r of client.results('resubmit-1')) results += r.result === null ? 0 : 1;
    assert.equal(results, 10);
    const afterDone = await client.submit(input);
    assert.equal(afterDone.status, 'succeeded');
    assert.equal(await queuedMessages(), 0);
    await assert.rejects(client.submit({ ...input, items: [9, 9, 9] }), (e: unknown) => e instanceof JetbatchError && e.code === 'JB_JOB_CONFLICT');
  });

  test('bad submissions are rejected with a clear error and nothing is enqueued', async () => {
    const jobsBefore = await jobCount();
    const cases: Array<[string, Record<string, unknown>, string, RegExp]> = [
      ['unknown API', { api_name: 'nope', items: [1], batch_size: 1 }, 'JB_UNKNOWN_API', /nope/],
      ['batch size 0', { api_name: 'echo', items: [1], batch_size: 0 }, 'JB_INVALID_SUBMISSION', /batch_size/],
      ['items not a list', { api_name: 'echo', items: 'abc', batch_size: 1 }, 'JB_INVALID_SUBMISSION', /items/],
      ['workers wrong type', { api_name: 'echo', items: [1], batch_size: 1, workers: '2' }, 'JB_INVALID_SUBMISSION', /workers/],
      ['config not an object', { api_name: 'echo', items: [1], batch_size: 1, config: [1] }, 'JB_INVALID_SUBMISSION', /config/],
      ['api name with a wildcard', { api_name: 'echo.>', items: [1], batch_size: 1 }, 'JB_INVALID_SUBMISSION', /api_name/],
      ['job id with a dot', { api_name: 'echo', items: [1], batch_size: 1, job_id: 'a.b' }, 'JB_INVALID_SUBMISSION', /job_id/],
      ['oversized batch', { api_name: 'echo', items: ['x'.repeat(2 * 1024 * 1024)], batch_size: 1 }, 'JB_PAYLOAD_TOO_LARGE', /batch 0/],
    ];
    for (const [name, input, code, pattern] of cases) {
      await assert.rejects(
        client.submit(input as never),
        (e: unknown) => e instanceof JetbatchError && e.code === code && pattern.test(e.message),
        name,
      );
    }
    assert.equal(await jobCount(), jobsBefore);
    assert.equal(await queuedMessages(), 0);
  });

  test('one NATS request submits a job (JSON or MessagePack body) and bad ones get a coded error', async () => {
    const reply = async (body: Uint8Array): Promise<{ ok: boolean; job?: { job_id: string }; error?: { code: string; message: string } }> =>
      (await nc.request(Subjects.request.submit, body, { timeout: 10_000 })).json();
    const viaJson = await reply(new TextEncoder().encode(JSON.stringify({ api_name: 'echo', items: [1, 2, 3, 4, 5], batch_size: 2 })));
    assert.equal(viaJson.ok, true);
    const viaPack = await reply(encodeValue({ api_name: 'echo', batches: [[1], [2, 3]], workers: 2 }));
    assert.equal(viaPack.ok, true);
    for (const id of [viaJson.job!.job_id, viaPack.job!.job_id]) {
      const s: JobStatus = await client.wait(id, { intervalMs: 100, timeoutMs: 30_000 });
      assert.equal(s.status, 'succeeded');
    }
    const status = await (await nc.request(Subjects.request.status, JSON.stringify({ job_id: viaJson.job!.job_id }), { timeout: 5000 })).json<{ ok: boolean; status: JobStatus }>();
    assert.equal(status.status.batch_metrics.succeeded, 3);

    const jobsBefore = await jobCount();
    const bad = await reply(new TextEncoder().encode(JSON.stringify({ api_name: 'echo', items: {}, batch_size: 1 })));
    assert.equal(bad.ok, false);
    assert.equal(bad.error?.code, 'JB_INVALID_SUBMISSION');
    const garbage = await reply(new Uint8Array([0xc1, 0xff, 0x00]));
    assert.equal(garbage.ok, false);
    assert.equal(garbage.error?.code, 'JB_INVALID_SUBMISSION');
    const missing = await (await nc.request(Subjects.request.status, JSON.stringify({ job_id: 'does-not-exist' }), { timeout: 5000 })).json<{ ok: boolean; error: { code: string } }>();
    assert.equal(missing.error.code, 'JB_JOB_NOT_FOUND');
    assert.equal(await jobCount(), jobsBefore);
    assert.equal(await queuedMessages(), 0);
  });

  test('CLI: submit --wait --json reports succeeded with exact counts; status, jobs and results', async () => {
    const dir = tempDir();
    const file = join(dir, 'items.jsonl');
    writeFileSync(file, Array.from({ length: 95 }, (_, i) => JSON.stringify({ i })).join('\n') + '\n');
    const cli = (...args: string[]) =>
      run(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), ...args, '--server', server.url], { cwd: ROOT });
    const { stdout } = await cli('submit', 'echo', '--items', file, '--batch-size', '10', '--workers', '3', '--wait', '--json');
    const final = JSON.parse(stdout) as JobStatus;
    assert.equal(final.status, 'succeeded');
    assert.equal(final.total_batch_count, 10);
    assert.deepEqual([final.batch_metrics.succeeded, final.batch_metrics.failed, final.batches_in_queue], [10, 0, 0]);
    for (const key of ['job_id', 'api_name', 'status', 'workers', 'total_batch_count', 'batches_in_queue', 'batch_metrics', 'start_time', 'end_time']) {
      assert.ok(key in final, key);
    }
    const status = JSON.parse((await cli('status', final.job_id, '--json')).stdout) as JobStatus;
    assert.equal(status.status, 'succeeded');
    const list = JSON.parse((await cli('jobs', '--api', 'echo', '--json')).stdout) as JobStatus[];
    assert.ok(list.some((j) => j.job_id === final.job_id));
    const lines = (await cli('results', final.job_id)).stdout.trim().split('\n').map((l) => JSON.parse(l) as { result: unknown[] });
    assert.equal(lines.length, 10);
    assert.equal(lines.reduce((n, l) => n + l.result.length, 0), 95);
    await assert.rejects(cli('submit', 'echo', '--items', file, '--batch-size', '0'), (e: { code?: number; stderr?: string }) => e.code === 2 && /JB_INVALID_SUBMISSION/.test(e.stderr ?? ''));
    await assert.rejects(cli('status', 'no-such-job'), (e: { code?: number; stderr?: string }) => e.code === 2 && /JB_JOB_NOT_FOUND/.test(e.stderr ?? ''));
  });
});
