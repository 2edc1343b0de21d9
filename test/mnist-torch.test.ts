/**
 * The PyTorch example (handlers/mnist-torch, issue #15 item 7) run by a real daemon in Python worker processes: the
 * 2,000 held-out digits come back one prediction per item with accuracy ≥ 95 %, pixels sent as MessagePack bin give
 * the same labels as lists, a thread with a GPU works (on the CPU without CUDA), a malformed item is dead-lettered at
 * once (jetbatch.PermanentError), a missing weights file ends the job as worker_error, the training script's --eval
 * passes in plain Python, and `npm run demo -- --python` works.
 *
 * The interpreter is $JETBATCH_TEST_PYTHON (scripts/test.sh), else Debian's /usr/bin/python3; it needs torch, numpy
 * and msgpack (scripts/ensure-torch.sh installs Debian's packages).
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { JetbatchClient } from '../src/client/client.js';
import type { Daemon } from '../src/daemon/daemon.js';
import type { BatchResult } from '../src/types.js';
import { loadDigits, split, toItems } from '../scripts/mnist-data.js';
import { ROOT, startDaemon } from './helpers/daemon.js';
import { NatsServer } from './helpers/nats-server.js';

const run = promisify(execFile);
const PYTHON = process.env.JETBATCH_TEST_PYTHON || '/usr/bin/python3';
const PROJECT = join(ROOT, 'handlers', 'mnist-torch');

interface Prediction {
  id: number | string;
  label: number;
  score: number;
}

const digits = loadDigits();
const { test: heldOut } = split(digits);

test('the committed weights score ≥ 95 % on the held-out digits through handler.py in plain Python (--eval)', { timeout: 120_000 }, async () => {
  // The script exports the digits with scripts/mnist-export.ts: this Node first on its PATH.
  const env = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}` };
  const { stdout } = await run(PYTHON, [join(ROOT, 'scripts', 'train-mnist-torch.py'), '--eval'], { cwd: ROOT, env });
  const accuracy = /held-out accuracy through handler\.py .*: (\d+\.\d+)%/.exec(stdout);
  assert.ok(accuracy, stdout);
  assert.ok(Number(accuracy[1]) >= 95, stdout);
});

describe('mnist-torch handler (PyTorch, one Python process per worker thread) on a real daemon', () => {
  let server: NatsServer;
  let daemon: Daemon;
  let client: JetbatchClient;

  before(async () => {
    server = await NatsServer.start();
    daemon = await startDaemon(server.url, [
      { name: 'mnist-torch', project: PROJECT, python: PYTHON, threads: 2, config: { model: 'model.pt', torch_threads: 1 } },
      // CUDA_VISIBLE_DEVICES=0 in the child: on the GPU where torch has CUDA, on the CPU otherwise (Debian's CPU build).
      { name: 'mnist-torch-gpu', project: PROJECT, python: PYTHON, threads: 1, gpus: [0] },
    ]);
    client = await JetbatchClient.connect({ servers: [server.url] });
  });

  after(async () => {
    await client?.close();
    await daemon?.close();
    await server?.dispose();
  });

  test('the 2,000 held-out digits: one prediction per item in item order, accuracy ≥ 95 %', async () => {
    const items = toItems(digits, heldOut);
    const record = await client.submit({ api_name: 'mnist-torch', items, batch_size: 100, workers: 2 });
    assert.equal(record.total_batch_count, 20);
    const final = await client.wait(record.job_id, { intervalMs: 200, timeoutMs: 120_000 });
    assert.equal(final.status, 'succeeded', JSON.stringify(final.error ?? final.batch_metrics));
    const got: Prediction[] = [];
    for await (const r of client.results(record.job_id, { order: 'batch' })) got.push(...(r.result as Prediction[]));
    assert.deepEqual(got.map((p) => p.id), heldOut);
    for (const p of got) {
      assert.ok(Number.isInteger(p.label) && p.label >= 0 && p.label <= 9, `label ${p.label}`);
      assert.ok(p.score > 0 && p.score <= 1, `score ${p.score}`);
    }
    const right = got.filter((p) => p.label === digits.labels[p.id as number]).length;
    assert.ok(right / heldOut.length >= 0.95, `held-out accuracy ${right / heldOut.length}`);
  });

  test('pixels as MessagePack bin (Uint8Array) give the labels the lists give', async () => {
    const ids = heldOut.slice(0, 40);
    const lists = toItems(digits, ids);
    const bins = lists.map((it) => ({ id: it.id, pixels: Uint8Array.from(it.pixels) }));
    const labels: number[][] = [];
    for (const items of [lists, bins]) {
      const record = await client.submit({ api_name: 'mnist-torch', items, batch_size: 20 });
      const final = await client.wait(record.job_id, { intervalMs: 100, timeoutMs: 60_000 });
      assert.equal(final.status, 'succeeded', JSON.stringify(final.error ?? final.batch_metrics));
      const got: Prediction[] = [];
      for await (const r of client.results(record.job_id, { order: 'batch' })) got.push(...(r.result as Prediction[]));
      assert.deepEqual(got.map((p) => p.id), ids);
      labels.push(got.map((p) => p.label));
    }
    assert.deepEqual(labels[1], labels[0]);
  });

  test('a thread with a GPU runs the same model (on the CPU when this torch has no CUDA)', async () => {
    const ids = heldOut.slice(0, 200);
    const record = await client.submit({ api_name: 'mnist-torch-gpu', items: toItems(digits, ids), batch_size: 100 });
    const final = await client.wait(record.job_id, { intervalMs: 100, timeoutMs: 60_000 });
    assert.equal(final.status, 'succeeded', JSON.stringify(final.error ?? final.batch_metrics));
    const got: Prediction[] = [];
    for await (const r of client.results(record.job_id, { order: 'batch' })) got.push(...(r.result as Prediction[]));
    assert.deepEqual(got.map((p) => p.id), ids);
    const right = got.filter((p) => p.label === digits.labels[p.id as number]).length;
    assert.ok(right / ids.length >= 0.95, `accuracy ${right / ids.length}`);
  });

  test('a malformed item dead-letters its batch without retries (PermanentError)', async () => {
    const items: unknown[] = [...toItems(digits, heldOut.slice(0, 3)), { id: 'short', pixels: [1, 2, 3] }];
    const record = await client.submit({ api_name: 'mnist-torch', items, batch_size: 3, max_attempts: 5 });
    const final = await client.wait(record.job_id, { intervalMs: 100, timeoutMs: 60_000 });
    assert.equal(final.status, 'completed_with_failures');
    const results: BatchResult[] = [];
    for await (const r of client.results(record.job_id)) results.push(r);
    assert.equal(results.length, 1);
    assert.equal((results[0]?.result as Prediction[]).length, 3);
    const letters = await client.deadLetters(record.job_id);
    assert.equal(letters.length, 1);
    assert.equal(letters[0]?.attempts, 1);
    assert.equal(letters[0]?.error.code, 'MNIST_BAD_ITEM');
    assert.match(letters[0]?.error.message ?? '', /'short'.*784/);
  });

  test('a missing weights file ends the job as worker_error, naming the file', async () => {
    const record = await client.submit({ api_name: 'mnist-torch', items: toItems(digits, heldOut.slice(0, 20)), batch_size: 10, config: { model: 'no-such-model.pt' } });
    const final = await client.wait(record.job_id, { intervalMs: 100, timeoutMs: 60_000 });
    assert.equal(final.status, 'worker_error');
    assert.match(final.error?.message ?? '', /no-such-model\.pt/);
  });
});

test('npm run demo -- --python: exits 0 and prints the held-out accuracy of the PyTorch API', { timeout: 240_000 }, async () => {
  const env: NodeJS.ProcessEnv = { ...process.env, JETBATCH_PYTHON: PYTHON };
  delete env.NATS_URL;
  const child = spawn('bash', [join(ROOT, 'scripts', 'demo.sh'), '--python'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), 200_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  clearTimeout(killer);
  assert.equal(code, 0, output);
  assert.match(output, /mnist-torch runs PyTorch/);
  const accuracy = /accuracy on the 2,000 held-out digits: (\d+\.\d+)%/.exec(output);
  assert.ok(accuracy, output);
  assert.ok(Number(accuracy[1]) >= 95, `held-out accuracy ${accuracy[1]}%`);
  assert.match(output, /predictions: 10,000 of 10,000 digits came back/);
});
