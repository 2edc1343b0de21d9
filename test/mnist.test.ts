/**
 * Batch inference end to end: the committed ONNX model is reproducible, the mnist handler run by a real daemon gives
 * exactly what ONNX Runtime gives in process, results of 10,000 items come back complete (client and CLI, both
 * orders), bad input and a missing GPU fail the way docs/handlers.md says, and `npm run demo` itself works.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
import { JetbatchClient } from '../src/client/client.js';
import type { Daemon } from '../src/daemon/daemon.js';
import type { BatchResult } from '../src/types.js';
import type { Prediction } from '../handlers/mnist/handler.js';
import { PIXELS, loadDigits, split, toItems } from '../scripts/mnist-data.js';
import { MODEL_PATH, buildModelBytes } from '../scripts/train-mnist.js';
import { ROOT, startDaemon, tempDir } from './helpers/daemon.js';
import { NatsServer } from './helpers/nats-server.js';

const run = promisify(execFile);
const MNIST = join(ROOT, 'handlers', 'mnist');

/** What ONNX Runtime predicts in this process for the given items, batch by batch as the job splits them. */
async function directPredictions(items: Array<{ id: number; pixels: number[] }>, batchSize: number): Promise<Prediction[]> {
  const session = await ort.InferenceSession.create(MODEL_PATH, { intraOpNumThreads: 1, interOpNumThreads: 1, executionProviders: ['cpu'] });
  try {
    const out: Prediction[] = [];
    for (let start = 0; start < items.length; start += batchSize) {
      const batch = items.slice(start, start + batchSize);
      const input = new Float32Array(batch.length * PIXELS);
      batch.forEach((it, i) => input.set(it.pixels, i * PIXELS));
      const r = await session.run({ pixels: new ort.Tensor('float32', input, [batch.length, PIXELS]) });
      const labels = r.label!.data as BigInt64Array;
      const probs = r.probabilities!.data as Float32Array;
      batch.forEach((it, i) => {
        const label = Number(labels[i]);
        out.push({ id: it.id, label, score: probs[i * 10 + label]! });
      });
    }
    return out;
  } finally {
    await session.release();
  }
}

test('the committed model is reproduced byte for byte by scripts/train-mnist.ts', () => {
  const { bytes, heldOut } = buildModelBytes();
  assert.ok(Buffer.compare(readFileSync(MODEL_PATH), Buffer.from(bytes)) === 0, 'retrain and commit handlers/mnist/model.onnx');
  assert.ok(heldOut > 0.95, `held-out accuracy ${heldOut}`);
});

describe('mnist handler on a real daemon', () => {
  let server: NatsServer;
  let daemon: Daemon;
  let client: JetbatchClient;
  const digits = loadDigits();
  const all = toItems(digits, Array.from({ length: digits.count }, (_, i) => i));

  before(async () => {
    server = await NatsServer.start();
    daemon = await startDaemon(server.url, [
      { name: 'mnist', project: MNIST, threads: 2, config: { model: 'model.onnx' } },
      // ctx.gpu = 0 on every thread; this machine has no CUDA provider, so these exercise the guard.
      { name: 'mnist-gpu', project: MNIST, threads: 1, gpus: [0], max_attempts: 3 },
      { name: 'mnist-gpu-fallback', project: MNIST, threads: 1, gpus: [0], config: { cpu_fallback: true } },
    ]);
    client = await JetbatchClient.connect({ servers: [server.url] });
  });

  after(async () => {
    await client?.close();
    await daemon?.close();
    await server?.dispose();
  });

  test('10,000 digits in 1,000 batches: predictions equal an in-process ONNX Runtime run; results complete in both orders', async () => {
    const batchSize = 10;
    const record = await client.submit({ api_name: 'mnist', items: all, batch_size: batchSize, workers: 4 });
    assert.equal(record.total_batch_count, 1000);
    const final = await client.wait(record.job_id, { intervalMs: 200, timeoutMs: 120_000 });
    assert.equal(final.status, 'succeeded');
    assert.deepEqual([final.batch_metrics.succeeded, final.batch_metrics.failed], [1000, 0]);

    const completion: BatchResult[] = [];
    for await (const r of client.results(record.job_id)) completion.push(r);
    assert.equal(completion.length, 1000, 'one result per batch');
    assert.equal(new Set(completion.map((r) => r.batch_id)).size, 1000, 'each batch once');

    const sorted: BatchResult[] = [];
    for await (const r of client.results(record.job_id, { order: 'batch' })) sorted.push(r);
    assert.deepEqual(sorted.map((r) => r.batch_id), Array.from({ length: 1000 }, (_, i) => String(i)));

    // Batch N holds items N·batch_size…; its predictions come back in item order, each joined to its item id.
    const got: Prediction[] = sorted.flatMap((r) => r.result as Prediction[]);
    assert.deepEqual(got.map((p) => p.id), all.map((it) => it.id));
    const want = await directPredictions(all, batchSize);
    assert.deepEqual(got.map((p) => p.label), want.map((p) => p.label), 'same labels as in process');
    got.forEach((p, i) => assert.ok(Math.abs(p.score - want[i]!.score) < 1e-6, `score of ${p.id}: ${p.score} vs ${want[i]!.score}`));

    const { test: heldOut } = split(digits);
    const right = heldOut.filter((id) => got[id]!.label === digits.labels[id]).length;
    assert.ok(right / heldOut.length > 0.95, `held-out accuracy ${right / heldOut.length}`);

    // The CLI reads the same results: --sort --out FILE in batch order, stdout in completion order.
    const dir = tempDir();
    const file = join(dir, 'results.jsonl');
    const cli = (...args: string[]) =>
      run(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), ...args, '--server', server.url], { cwd: ROOT, maxBuffer: 64 * 1024 * 1024 });
    await cli('results', record.job_id, '--sort', '--out', file);
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as BatchResult);
    assert.deepEqual(lines, sorted);
    const { stdout } = await cli('results', record.job_id);
    const streamed = stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as BatchResult);
    assert.equal(streamed.length, 1000);
    assert.deepEqual([...streamed].sort((a, b) => Number(a.batch_id) - Number(b.batch_id)), sorted);
    rmSync(dir, { recursive: true, force: true });
  });

  test('probabilities on request; a malformed item dead-letters its batch without retries', async () => {
    const items: unknown[] = [...all.slice(0, 3), { id: 'short', pixels: [1, 2, 3] }];
    const record = await client.submit({ api_name: 'mnist', items, batch_size: 3, config: { probabilities: true }, max_attempts: 5 });
    const final = await client.wait(record.job_id, { intervalMs: 100, timeoutMs: 30_000 });
    assert.equal(final.status, 'completed_with_failures');
    const results: BatchResult[] = [];
    for await (const r of client.results(record.job_id)) results.push(r);
    const [first] = results;
    const preds = first?.result as Prediction[];
    assert.equal(preds.length, 3);
    for (const p of preds) {
      assert.equal(p.probabilities?.length, 10);
      assert.ok(Math.abs(p.probabilities!.reduce((a, b) => a + b, 0) - 1) < 1e-5);
      assert.equal(p.probabilities![p.label], p.score);
    }
    const [letter] = await client.deadLetters(record.job_id);
    assert.equal(letter?.attempts, 1);
    assert.equal(letter?.error.code, 'MNIST_BAD_ITEM');
    assert.match(letter?.error.message ?? '', /"short".*784/);
  });

  test('a missing model file fails the job as worker_error at once', async () => {
    const record = await client.submit({ api_name: 'mnist', items: all.slice(0, 20), batch_size: 10, config: { model: 'no-such-model.onnx' } });
    const final = await client.wait(record.job_id, { intervalMs: 100, timeoutMs: 30_000 });
    assert.equal(final.status, 'worker_error');
    assert.match(final.error?.message ?? '', /no-such-model\.onnx/);
  });

  test('ctx.gpu without a CUDA provider: permanent error naming the fix, or CPU with cpu_fallback', async () => {
    const items = all.slice(0, 20);
    const gpu = await client.submit({ api_name: 'mnist-gpu', items, batch_size: 10 });
    const failed = await client.wait(gpu.job_id, { intervalMs: 100, timeoutMs: 30_000 });
    assert.equal(failed.status, 'completed_with_failures');
    assert.equal(failed.batch_metrics.failed, 2);
    const letters = await client.deadLetters(gpu.job_id);
    assert.ok(letters.every((l) => l.attempts === 1 && l.error.code === 'MNIST_CUDA_UNAVAILABLE'));
    assert.match(letters[0]?.error.message ?? '', /CUDA provider on GPU 0.*cpu_fallback/s);

    const fallback = await client.submit({ api_name: 'mnist-gpu-fallback', items, batch_size: 10 });
    const ok = await client.wait(fallback.job_id, { intervalMs: 100, timeoutMs: 30_000 });
    assert.equal(ok.status, 'succeeded');
    const want = await directPredictions(items, 10);
    const got: Prediction[] = [];
    for await (const r of client.results(fallback.job_id, { order: 'batch' })) got.push(...(r.result as Prediction[]));
    assert.deepEqual(got.map((p) => p.label), want.map((p) => p.label));
  });
});

test('npm run demo: exits 0 and prints a real held-out accuracy, throughput and the results file', { timeout: 180_000 }, async () => {
  const out = join(tempDir('jetbatch-demo-test-'), 'results.jsonl');
  const env: NodeJS.ProcessEnv = { ...process.env, JETBATCH_DEMO_OUT: out };
  delete env.NATS_URL;
  const started = Date.now();
  const child = spawn('bash', [join(ROOT, 'scripts', 'demo.sh')], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), 150_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  clearTimeout(killer);
  const seconds = (Date.now() - started) / 1000;
  assert.equal(code, 0, output);
  const accuracy = /accuracy on the 2,000 held-out digits: (\d+\.\d+)%/.exec(output);
  assert.ok(accuracy, output);
  assert.ok(Number(accuracy[1]) > 90, `held-out accuracy ${accuracy[1]}%`);
  assert.match(output, /predictions: 10,000 of 10,000 digits came back/);
  assert.match(output, /throughput: .* digits\/s/);
  assert.ok(output.includes(`results: ${out}`), output);
  assert.ok(existsSync(out));
  assert.equal(readFileSync(out, 'utf8').trimEnd().split('\n').length, 100);
  assert.ok(seconds < 60, `demo took ${seconds.toFixed(1)} s`);
});
