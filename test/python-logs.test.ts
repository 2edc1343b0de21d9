/**
 * Python handlers in daemons of their own (their output is read): a handler written exactly like a Cortex
 * handler.py (relative file, .env, cortex_logger with extra, on_job_complete once across two daemons), and what
 * jetbatch.logger, print() and stderr become: pino lines with the job's metadata that a handler cannot overwrite.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { JetbatchClient } from '../src/client/client.js';
import { DaemonProcess, tempDir } from './helpers/daemon.js';
import { NatsServer } from './helpers/nats-server.js';
import { pythonApi, runnerPids } from './helpers/python.js';
import { waitUntil } from './helpers/wait.js';

type Line = Record<string, unknown>;
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
/** The processes under `pid`, with their command lines (what a failure to find the runners needs to explain). */
const psOf = (pid: number): string => {
  try {
    return execFileSync('ps', ['-o', 'pid,ppid,etimes,args', '--ppid', String(pid)], { encoding: 'utf8' });
  } catch {
    return `(no process under ${pid})`;
  }
};
const linesOf = (output: string): Line[] => output.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line);

describe('python handlers: a Cortex handler.py and logs', () => {
  let server: NatsServer;
  const daemons: DaemonProcess[] = [];
  let client: JetbatchClient;
  const recordDir = tempDir('jetbatch-py-logs-');

  before(async () => {
    server = await NatsServer.start();
    const apis = [
      pythonApi('python-cortex', { config: { record_dir: recordDir } }),
      pythonApi('python-logs'),
    ];
    for (let i = 0; i < 2; i++) daemons.push(await DaemonProcess.spawn(server.url, apis, { log_max_line_bytes: 100_000 }));
    client = await JetbatchClient.connect({ servers: [server.url] });
  });

  after(async () => {
    await client?.close();
    for (const d of daemons) assert.equal(await d.kill('SIGTERM'), 0, d.output);
    await server?.dispose();
  });

  test('a Cortex handler.py runs unchanged on two daemons: project files, .env, cortex_logger, on_job_complete once', async () => {
    const items = Array.from({ length: 40 }, (_, i) => ({ id: i, key: i % 2 === 0 ? 'a' : 'b' }));
    const job = await client.submit({ api_name: 'python-cortex', items, batch_size: 2, workers: 2 });
    const final = await client.wait(job.job_id, { intervalMs: 100, timeoutMs: 60_000 });
    assert.equal(final.status, 'succeeded', JSON.stringify(final.error));
    assert.equal(final.batch_metrics.succeeded, 20);
    const results = [];
    for await (const r of client.results(job.job_id, { order: 'batch' })) results.push(...(r.result as Line[]));
    assert.deepEqual(results, items.map((it) => ({ id: it.id, value: it.key === 'a' ? 1 : 2, secret: 'from-dotenv' })));
    // Both daemons ran batches (each has one thread, the job two workers), yet the hook ran once.
    const ran = daemons.map((d) => linesOf(d.output).filter((l) => l.msg === 'completed processing batch' && l.job_id === job.job_id));
    assert.ok(ran.every((r) => r.length > 0), `batches per daemon: ${ran.map((r) => r.length)}`);
    await waitUntil('the completion hook', () => readdirSync(recordDir).includes(`cortex-complete-${job.job_id}`), { timeoutMs: 10_000 });
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(readFileSync(join(recordDir, `cortex-complete-${job.job_id}`), 'utf8').trim().split('\n').length, 1, 'on_job_complete ran once');
    const line = ran[0]![0]!;
    assert.equal(line.api_name, 'python-cortex');
    assert.equal(line.level, 30);
    assert.equal(line.worker, 0);
    assert.equal(line.confidence, 0.97);
    assert.equal(line.items, 2);
    assert.equal(typeof line.batch_id, 'string', 'batch_id set by jetbatch');
    assert.equal(line.extra_batch_id, line.batch_id, "the handler's own batch_id is kept, renamed");
  });

  test('logger lines carry the metadata; reserved keys are renamed extra_<key>; extra is flattened one level', async () => {
    const job = await client.submit({ api_name: 'python-logs', batches: [[1], [2, 3]], workers: 1 });
    const final = await client.wait(job.job_id, { intervalMs: 100, timeoutMs: 30_000 });
    assert.equal(final.status, 'succeeded', JSON.stringify(final.error));
    await new Promise((r) => setTimeout(r, 300));
    const lines = daemons.flatMap((d) => linesOf(d.output)).filter((l) => l.job_id === job.job_id);
    const hello = lines.filter((l) => l.msg === 'hello from python');
    assert.equal(hello.length, 2);
    for (const l of hello) {
      assert.equal(l.api_name, 'python-logs');
      assert.ok(l.batch_id === '0' || l.batch_id === '1');
      assert.equal(l.worker, 0);
      assert.equal(l.level, 30);
      assert.equal(typeof l.time, 'number');
      assert.equal(l.custom, 'kept');
      assert.deepEqual(l.nested, { a: { b: 1 } }, 'one level: nested values stay nested');
      assert.equal(l.score, 0.25, 'numpy scalars become numbers');
      for (const k of ['job_id', 'api_name', 'worker', 'level', 'msg', 'message', 'asctime', 'labels', 'process']) {
        assert.equal(l[`extra_${k}`], k === 'worker' ? 999 : 'evil', k);
      }
      for (const k of ['message', 'asctime', 'labels', 'process']) assert.equal(l[k], undefined, k);
    }
    const formatted = lines.find((l) => l.msg === 'formatted n=3');
    assert.equal(formatted?.level, 40, 'logger.warning → warn');
    const caught = lines.find((l) => l.msg === 'caught an error');
    assert.equal(caught?.level, 50);
    assert.equal((caught?.error as Line).type, 'KeyError');
    assert.match(String((caught?.error as Line).stack), /Traceback[\s\S]*KeyError: 'lookup'/);
    const printed = lines.filter((l) => typeof l.msg === 'string' && (l.msg as string).startsWith('printed line from batch'));
    assert.deepEqual(printed.map((l) => [l.level, l.stream, l.msg === `printed line from batch ${l.batch_id}`]), [[30, 'stdout', true], [30, 'stdout', true]]);
    const stderr = lines.filter((l) => typeof l.msg === 'string' && (l.msg as string).startsWith('stderr line from batch'));
    assert.deepEqual(stderr.map((l) => [l.level, l.stream]), [[40, 'stderr'], [40, 'stderr']]);
    const dropped = lines.find((l) => typeof l.msg === 'string' && (l.msg as string).startsWith('log line dropped'));
    assert.ok(dropped, 'the oversized line is replaced by a warning');
    assert.equal(dropped.level, 40);
    assert.equal(dropped.batch_id, '1');
    assert.equal(dropped.original_msg, 'oversized');
    assert.ok(!daemons.some((d) => d.output.includes('x'.repeat(1000))), 'the oversized content is not written');
    const constructed = lines.find((l) => l.msg === 'constructed');
    assert.equal(constructed?.phase, 'init');
    assert.equal(constructed?.batch_id, undefined, 'the constructor has no batch');
  });

  test('a daemon killed with SIGKILL takes its Python processes with it, busy ones too (parent-death signal)', async () => {
    const extra = await DaemonProcess.spawn(server.url, [pythonApi('python-failures', { threads: 2, config: { record_dir: recordDir } })]);
    try {
      const runners = await waitUntil('two runner processes', () => runnerPids(extra.proc.pid!).length === 2 && runnerPids(extra.proc.pid!), { timeoutMs: 20_000, detail: () => psOf(extra.proc.pid!) });
      // One of them sleeps in a batch: it does not read its request pipe, so only the kernel's signal can end it.
      await client.submit({ api_name: 'python-failures', batches: [['sleep']], batch_timeout: 600 });
      const pidFile = join(recordDir, 'pid-0');
      const busy = Number(await waitUntil('the batch to start', () => existsSync(pidFile) && readFileSync(pidFile, 'utf8'), { timeoutMs: 20_000 }));
      assert.ok(runners.includes(busy), `the batch ran in ${busy}, not in a runner listed before (${runners}):\n${psOf(extra.proc.pid!)}`);
      assert.equal(await extra.kill('SIGKILL'), 'SIGKILL');
      await waitUntil('the orphaned runners to die', () => !runners.some(alive), { timeoutMs: 10_000, detail: () => String(runners.filter(alive)) });
    } finally {
      // A failure above must not leave the daemon running: this file would wait for it until the test timeout.
      await extra.kill('SIGKILL'); // (it answers at once when the daemon has exited)
    }
  });

  test('SIGTERM to the daemons leaves no Python process behind', async () => {
    // Once a daemon exits, its orphans would belong to init: follow the pids themselves.
    const runners = daemons.flatMap((d) => runnerPids(d.proc.pid!));
    assert.equal(runners.length, 4, 'one process per thread of each API on each daemon');
    for (const d of daemons) assert.equal(await d.kill('SIGTERM'), 0, d.output);
    await waitUntil('the runner processes to exit', () => !runners.some(alive), { timeoutMs: 10_000, detail: () => String(runners.filter(alive)) });
  });
});
