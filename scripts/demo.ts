/**
 * `npm run demo`: batch inference end to end. Uses the NATS server in NATS_URL when set; otherwise starts a private
 * nats-server (random port, temp store) and removes it afterwards. Starts a daemon from config/jetbatch.yaml,
 * submits the 10,000 real MNIST digits to the `mnist` API (ONNX Runtime, handlers/mnist), shows progress, joins the
 * predictions back to the true labels by item id, prints accuracy (held-out digits and training digits apart),
 * throughput and where the results are, and shuts everything down.
 *
 * `--python PATH`: the same digits through the `mnist-torch` API instead (PyTorch, handlers/mnist-torch/handler.py,
 * one PATH process per worker thread), added to the config here so config/jetbatch.yaml still starts a daemon on a
 * host without PyTorch. `--nats-server BIN`: the nats-server to start (default: on PATH). scripts/demo.sh finds both.
 *
 * Environment: NATS_URL (use that server), JETBATCH_DEMO_OUT (results file; default in the temp dir).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { parse as parseYaml } from 'yaml';
import { JetbatchClient } from '../src/client/client.js';
import { progressView } from '../src/cli/progress.js';
import { parseConfig, type DaemonOptions } from '../src/daemon/config.js';
import { Daemon } from '../src/daemon/daemon.js';
import { redactUrl } from '../src/fleet/server-url.js';
import { loadDigits, split, toItems, PIXELS, type Digits } from './mnist-data.js';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const BATCH_SIZE = 100;

interface Prediction {
  id: number;
  label: number;
  score: number;
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => res(typeof a === 'object' && a !== null ? a.port : 0));
    });
  });
}

async function startPrivateNats(bin: string): Promise<{ url: string; stop: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'jetbatch-demo-'));
  const port = await freePort();
  const conf = join(dir, 'nats.conf');
  writeFileSync(conf, `listen: 127.0.0.1:${port}\njetstream { store_dir: "${join(dir, 'store')}" }\n`);
  const proc: ChildProcess = spawn(bin, ['-c', conf], { stdio: 'ignore' });
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      await new Promise<void>((r) => { proc.once('exit', () => r()); proc.kill('SIGTERM'); });
    }
    rmSync(dir, { recursive: true, force: true });
  };
  for (let i = 0; ; i++) {
    const ok = await new Promise<boolean>((r) => {
      const c = tcpConnect(port, '127.0.0.1');
      c.once('connect', () => { c.destroy(); r(true); });
      c.once('error', () => r(false));
    });
    if (ok) break;
    if (i >= 200 || proc.exitCode !== null) {
      await stop();
      throw new Error(`${bin} did not start listening on 127.0.0.1:${port}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { url: `nats://127.0.0.1:${port}`, stop };
}

/** A digit as 14 lines of text (two pixel rows per line). */
function asciiDigit(digits: Digits, id: number): string[] {
  const px = digits.pixels.subarray(id * PIXELS, (id + 1) * PIXELS);
  const lines: string[] = [];
  for (let y = 0; y < 28; y += 2) {
    let line = '';
    for (let x = 0; x < 28; x++) {
      const v = Math.max(px[y * 28 + x]!, px[(y + 1) * 28 + x]!);
      line += v > 170 ? '#' : v > 60 ? '+' : v > 0 ? '.' : ' ';
    }
    lines.push(line.trimEnd());
  }
  while (lines.length > 0 && lines[0] === '') lines.shift();
  while (lines.length > 0 && lines.at(-1) === '') lines.pop();
  return lines;
}

const pct = (n: number, d: number) => `${((100 * n) / d).toFixed(2)}%`;
const fmt = (n: number) => n.toLocaleString('en-US');

/** config/jetbatch.yaml, plus the `mnist-torch` API run by the given interpreter when there is one. */
function demoConfig(servers: string[], python: string | undefined): DaemonOptions {
  const file = join(root, 'config', 'jetbatch.yaml');
  const raw = parseYaml(readFileSync(file, 'utf8')) as { apis: unknown[] };
  if (python !== undefined) {
    raw.apis.push({ name: 'mnist-torch', project: '../handlers/mnist-torch', python, threads: 2, config: { model: 'model.pt', torch_threads: 1 }, batch_timeout: '60s', max_attempts: 3 });
  }
  return parseConfig(raw, file, { servers });
}

const { values: args } = parseArgs({ options: { 'nats-server': { type: 'string' }, python: { type: 'string' } } });
const natsBin = args['nats-server'] ?? 'nats-server';
const apiName = args.python === undefined ? 'mnist' : 'mnist-torch';
const engine = args.python === undefined ? 'ONNX Runtime' : `PyTorch (${args.python}, one process per thread)`;
const external = process.env.NATS_URL;
const wallStart = performance.now();
const nats = external ? { url: external, stop: async () => {} } : await startPrivateNats(natsBin);
console.log(external ? `using NATS at ${redactUrl(external)}` : `started a private nats-server at ${nats.url}`);

const stopping = new AbortController();
const onSignal = () => {
  console.log('\ninterrupted: shutting down');
  stopping.abort(new Error('interrupted'));
};
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);

let daemon: Daemon | undefined;
let client: JetbatchClient | undefined;
try {
  const options = demoConfig([nats.url], args.python);
  // A random metrics port, so the demo runs next to a real daemon; warnings only, so the output stays readable.
  const quiet = { ...options, logLevel: 'warn', apis: options.apis.map((a) => ({ ...a, logLevel: 'warn' })), metrics: { ...options.metrics, listen: '127.0.0.1:0' } };
  daemon = await Daemon.start(quiet, { logger: pino({ level: 'warn' }) });
  client = await JetbatchClient.connect({ servers: [nats.url] });
  const mnistApi = options.apis.find((a) => a.name === apiName);
  console.log(`daemon started: APIs ${options.apis.map((a) => a.name).join(', ')}; ${apiName} runs ${engine} in ${mnistApi?.threads ?? '?'} worker threads`);

  const digits = loadDigits();
  const { test } = split(digits);
  const heldOut = new Set(test);
  const items = toItems(digits, Array.from({ length: digits.count }, (_, i) => i));
  console.log(`loaded ${fmt(digits.count)} real handwritten digits (mnist package); ${fmt(test.length)} of them were held out when the model was trained`);

  const started = performance.now();
  const record = await client.submit({ api_name: apiName, items, batch_size: BATCH_SIZE, workers: 4 });
  const enqueued = performance.now();
  console.log(`submitted job ${record.job_id}: ${fmt(items.length)} digits in ${record.total_batch_count} batches of ${BATCH_SIZE} (enqueued in ${((enqueued - started) / 1000).toFixed(2)} s)`);
  const view = progressView(process.stdout);
  const final = await client.wait(record.job_id, { intervalMs: 200, onStatus: (s) => view.update(s), signal: stopping.signal });
  view.stop();
  const seconds = (performance.now() - started) / 1000;
  console.log(`job ${final.job_id} ${final.status}: ${final.batch_metrics.succeeded} batches succeeded, ${final.batch_metrics.failed} failed`);

  // Read the results back as `jetbatch results JOB` does, save them as JSON Lines, and join them to the labels by id.
  const outFile = resolve(process.env.JETBATCH_DEMO_OUT ?? join(tmpdir(), `jetbatch-demo-${final.job_id}.jsonl`));
  const out = createWriteStream(outFile);
  const predicted = new Map<number, Prediction>();
  let batches = 0;
  for await (const r of client.results(final.job_id)) {
    batches++;
    out.write(JSON.stringify(r) + '\n');
    for (const p of r.result as Prediction[]) predicted.set(p.id, p);
  }
  await new Promise<void>((r) => out.end(() => r()));

  let heldOutRight = 0;
  let trainRight = 0;
  let firstWrong: Prediction | undefined;
  for (let id = 0; id < digits.count; id++) {
    const p = predicted.get(id);
    const right = p !== undefined && p.label === digits.labels[id];
    if (heldOut.has(id)) {
      if (right) heldOutRight++;
      else if (p !== undefined) firstWrong ??= p;
    } else if (right) trainRight++;
  }
  const trainCount = digits.count - test.length;
  const avg = final.batch_metrics.avg_time_per_batch;
  console.log('');
  console.log(`predictions: ${fmt(predicted.size)} of ${fmt(items.length)} digits came back (${batches} batch results)`);
  console.log(`accuracy on the ${fmt(test.length)} held-out digits: ${pct(heldOutRight, test.length)}   <- digits the model never saw`);
  console.log(`accuracy on the ${fmt(trainCount)} training digits: ${pct(trainRight, trainCount)}   (seen in training; not a measure of generalization)`);
  console.log(`throughput: ${fmt(items.length)} digits in ${seconds.toFixed(2)} s = ${fmt(Math.round(items.length / seconds))} digits/s end to end (submit to last batch)` +
    (avg === null ? '' : `; ${(avg * 1000).toFixed(1)} ms per batch of ${BATCH_SIZE} in the handler`));
  const sample = test.filter((_, i) => i % 200 === 7).map((id) => `#${id}: ${digits.labels[id]}→${predicted.get(id)?.label ?? '?'}`);
  console.log(`sample held-out predictions (true→predicted): ${sample.join('  ')}`);
  if (firstWrong !== undefined) {
    console.log(`a held-out mistake, digit #${firstWrong.id}: true ${digits.labels[firstWrong.id]}, predicted ${firstWrong.label} (p=${firstWrong.score.toFixed(2)})`);
    for (const line of asciiDigit(digits, firstWrong.id)) console.log(`    ${line}`);
  }
  console.log(`results: ${outFile}`);
  console.log(`  one JSON line per batch {job_id, batch_id, result: [{id, label, score}], duration_ms, attempt}, in completion order;`);
  console.log(`  \`jetbatch results ${final.job_id} --sort --out FILE\` writes the same lines ordered by batch id` +
    (external ? '' : ' (while a NATS server holding the job runs; this demo removes its private one now)'));
  const complete = final.status === 'succeeded' && predicted.size === items.length;
  if (!complete) console.log(`FAILED: expected job succeeded with ${items.length} predictions`);
  process.exitCode = complete ? 0 : 1;
} catch (err) {
  if (stopping.signal.aborted) process.exitCode = 130;
  else throw err;
} finally {
  await client?.close();
  await daemon?.close();
  await nats.stop();
  console.log(`done in ${((performance.now() - wallStart) / 1000).toFixed(1)} s; daemon and ${external ? 'connection' : 'private nats-server'} shut down`);
}
