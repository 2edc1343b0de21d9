/**
 * `npm run bench [-- --quick] [-- --json] [-- --only a,b] [-- --repeat N] [-- --profile DIR]`
 *
 * One run measures raw JetStream, raw Piscina, jetbatch end to end and BullMQ on the same batches and the same
 * handler work, and prints figures and the ratios the performance issue sets targets for. Everything runs on
 * 127.0.0.1: a private nats-server it starts and stops, and the local Redis (started if nothing answers).
 * `--only` takes step-id prefixes (e.g. `jetbatch:128b`, `raw-js`, `latency`); `--profile DIR` writes a CPU
 * profile of the daemon's main thread during the jetbatch 128 B run, with a summary.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { JetbatchClient } from '../../src/client/client.js';
import { openContext } from '../../src/context.js';
import { encodeValue } from '../../src/protocol.js';
import { bullmqThroughput } from './bullmq.js';
import { medianRun, round, throughput, type Throughput } from './figures.js';
import { burn, nowMs } from './handlers/work.js';
import { createRawStream, ensureRedis, startNats } from './infra.js';
import { HANDLERS, jetbatchThroughput, startBenchDaemon, type JetbatchEnv } from './jetbatch.js';
import { jetbatchLatency, rawLatency } from './latency.js';
import { machine } from './machine.js';
import { Marks } from './marks.js';
import { KiB, LARGEST_BATCH, recordBatch, sizedBatch, type BatchShape } from './payloads.js';
import { formatSummary, Profiler, summarise } from './profile.js';
import { rawConsume, rawPublish, type RawEnv } from './raw-jetstream.js';
import { rawPiscina } from './raw-piscina.js';
import { computeRatios, formatReport, type Results, type System } from './report.js';
import { jetbatchRss, rawRss } from './rss.js';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    only: { type: 'string' },
    repeat: { type: 'string' },
    profile: { type: 'string' },
  },
});
const quick = args.quick === true;
const repeat = Math.max(1, Number(args.repeat ?? (quick ? 1 : 3)));
const only = args.only?.split(',').map((s) => s.trim()).filter(Boolean);
const pick = <T>(full: T, q: T): T => (quick ? q : full);
const log = (msg: string): void => void process.stderr.write(`[bench ${((nowMs() - started) / 1000).toFixed(1)}s] ${msg}\n`);
const started = nowMs();

interface SizeScenario {
  id: string;
  shape: BatchShape;
  n: number;
  /** Also run BullMQ on it (JSON data of the same size). */
  bullmq: boolean;
}

const sizes: SizeScenario[] = [
  { id: '128b', shape: sizedBatch(128), n: pick(60_000, 15_000), bullmq: true },
  { id: '16k', shape: sizedBatch(16 * KiB), n: pick(20_000, 5_000), bullmq: !quick },
  { id: '1m', shape: sizedBatch(LARGEST_BATCH), n: pick(400, 120), bullmq: false },
  { id: 'rec100', shape: recordBatch(100), n: pick(10_000, 3_000), bullmq: false },
];
const CPU_MS = 3;
const cpuBatches = pick(1_000, 300);
const bullmqN = (id: string): number => (id === '128b' ? pick(20_000, 5_000) : 5_000);
const submitItems = pick(100_000, 20_000);
const latencyRate = 1000;
const latencySeconds = pick(10, 4);
const rssBatches = pick(20_000, 5_000);

interface Step {
  id: string;
  run: () => Promise<void>;
}

function selected(id: string): boolean {
  return only === undefined || only.some((p) => id === p || id.startsWith(`${p}:`) || id.startsWith(p));
}

async function main(): Promise<void> {
  const server = await startNats();
  const redisNeeded = [...sizes.map((s) => `bullmq:${s.id}`), 'bullmq:cpu-2t'].some(selected);
  const redis = redisNeeded ? await ensureRedis() : { started: false, stop: async () => undefined };
  const nc = await connect({ servers: server.url, name: 'jetbatch-bench' });
  const marks = new Marks();
  let client: JetbatchClient | undefined;
  const results: Omit<Results, 'ratios'> = {
    mode: quick ? 'quick' : 'full',
    repeat,
    machine: machine(),
    throughput: {},
    jetbatchSubmitSeconds: {},
    cpu: null,
    submission: { items: submitItems },
    latency: { rate: latencyRate },
    rss: {},
    errors: [],
    durationSeconds: 0,
  };
  try {
    const raw: RawEnv = { nc, js: jetstream(nc), jsm: await jetstreamManager(nc) };
    await createRawStream(raw.jsm);
    // The first daemon provisions jetbatch's streams and buckets, which the client needs.
    await (await startBenchDaemon(server.url, { name: 'b-provision', project: HANDLERS.noop, threads: 1 })).close();
    const jb = await JetbatchClient.connect({ servers: [server.url] });
    client = jb;
    const profiler = args.profile === undefined ? undefined : new Profiler();
    const env = (profile: boolean): JetbatchEnv => {
      const e: JetbatchEnv = { url: server.url, client: jb, marks };
      if (profile && profiler !== undefined && args.profile !== undefined) {
        const dir = args.profile;
        mkdirSync(dir, { recursive: true });
        e.onMeasure = {
          start: () => profiler.start(),
          stop: async () => {
            const file = join(dir, 'jetbatch-128b-main.cpuprofile');
            const summary = formatSummary(summarise(await profiler.stop(file)));
            writeFileSync(join(dir, 'jetbatch-128b-main.summary.txt'), summary + '\n');
            log(`profile written to ${file}\n${summary}`);
          },
        };
      }
      return e;
    };
    const put = (scenario: string, sys: System, f: Throughput): void => {
      (results.throughput[scenario] ??= {})[sys] = f;
    };
    const repeated = async (scenario: string, sys: System, once: (i: number) => Promise<Throughput>): Promise<void> => {
      const runs: Throughput[] = [];
      for (let i = 0; i < repeat; i++) runs.push(await once(i));
      const m = medianRun(runs);
      put(scenario, sys, m);
      log(`${scenario} ${sys}: ${m.batchesPerSec} batches/s, ${m.mibPerSec} MiB/s${repeat > 1 ? ` (runs: ${runs.map((r) => r.batchesPerSec).join(', ')})` : ''}`);
    };

    // Fixed CPU work, calibrated once on this machine's main thread.
    burn(2_000_000);
    const t0 = nowMs();
    burn(2_000_000);
    const iterations = Math.round((2_000_000 * CPU_MS) / Math.max(0.01, nowMs() - t0));
    const t1 = nowMs();
    burn(iterations);
    results.cpu = { iterations, msPerBatch: round(nowMs() - t1, 2) };

    const steps: Step[] = [];
    for (const s of sizes) {
      const items = s.shape.items.length;
      const bytes = s.shape.bytes.byteLength;
      steps.push({ id: `raw-js:${s.id}`, run: () => repeated(s.id, 'rawJetStream', () => rawConsume(raw, s.id, s.shape.bytes, items, s.n)) });
      steps.push({ id: `raw-piscina:${s.id}`, run: () => repeated(s.id, 'rawPiscina', () => rawPiscina(s.shape.bytes, items, s.n, 2, 0)) });
      steps.push({
        id: `jetbatch:${s.id}`,
        run: () =>
          repeated(s.id, 'jetbatch', async (i) => {
            const r = await jetbatchThroughput(env(s.id === '128b' && i === 0), { name: `b-${s.id}`, project: HANDLERS.noop, threads: 2 }, s.shape.items, bytes, s.n);
            results.jetbatchSubmitSeconds[s.id] = r.submitSeconds;
            return r.run;
          }),
      });
      if (s.bullmq) steps.push({ id: `bullmq:${s.id}`, run: () => repeated(s.id, 'bullmq', () => bullmqThroughput(bytes, bullmqN(s.id), 0)) });
    }
    const cpuShape = sizedBatch(128);
    for (const threads of [1, 2]) {
      const id = `cpu-${threads}t`;
      steps.push({ id: `cpu:raw-piscina:${threads}t`, run: () => repeated(id, 'rawPiscina', () => rawPiscina(cpuShape.bytes, 1, cpuBatches, threads, iterations)) });
      steps.push({
        id: `cpu:jetbatch:${threads}t`,
        run: () =>
          repeated(id, 'jetbatch', async () => {
            const r = await jetbatchThroughput(env(false), { name: `b-cpu-${threads}`, project: HANDLERS.cpu, threads, config: { iterations } }, cpuShape.items, 128, cpuBatches);
            return r.run;
          }),
      });
    }
    if (!quick) steps.push({ id: 'bullmq:cpu-2t', run: () => repeated('cpu-2t', 'bullmq', () => bullmqThroughput(128, cpuBatches, iterations)) });
    steps.push({
      id: 'submit:raw',
      run: async () => {
        // The very batches jetbatch submits below: one record each, MessagePack-encoded.
        const prepared = Array.from({ length: submitItems }, (_, i) => encodeValue([record(i)]));
        results.submission.raw = await rawPublish(raw, prepared, 1);
        log(`submission raw: ${results.submission.raw.batchesPerSec} msg/s`);
      },
    });
    steps.push({
      id: 'submit:jetbatch',
      run: async () => {
        // No daemon serves b-submit after its registration, so only the publisher's work is timed.
        await (await startBenchDaemon(server.url, { name: 'b-submit', project: HANDLERS.noop, threads: 1 })).close();
        const items = Array.from({ length: submitItems }, (_, i) => record(i));
        const t = nowMs();
        const rec = await jb.submit({ api_name: 'b-submit', items, batch_size: 1, workers: 1 });
        const seconds = (nowMs() - t) / 1000;
        results.submission.jetbatch = throughput(rec.total_batch_count, 1, encodeValue([record(0)]).byteLength, seconds);
        log(`submission jetbatch: ${results.submission.jetbatch.batchesPerSec} batches/s`);
        await jb.stop(rec.job_id);
      },
    });
    steps.push({
      id: 'latency:raw',
      run: async () => {
        results.latency.raw = await rawLatency(raw, latencyRate, latencySeconds);
        log(`latency raw: p50 ${results.latency.raw.p50} ms, p99 ${results.latency.raw.p99} ms`);
      },
    });
    steps.push({
      id: 'latency:jetbatch',
      run: async () => {
        results.latency.jetbatch = await jetbatchLatency(server.url, jb, await openContext(nc), marks, latencyRate, latencySeconds);
        log(`latency jetbatch: p50 ${results.latency.jetbatch.p50} ms, p99 ${results.latency.jetbatch.p99} ms`);
      },
    });
    steps.push({
      id: 'rss:raw',
      run: async () => {
        results.rss.raw = await rawRss(server.url, raw, rssBatches);
        log(`rss raw: idle ${results.rss.raw.idleMiB} MiB, busy ${results.rss.raw.busyMiB} MiB`);
      },
    });
    steps.push({
      id: 'rss:jetbatch',
      run: async () => {
        results.rss.jetbatch = await jetbatchRss(server.url, jb, rssBatches);
        log(`rss jetbatch: idle ${results.rss.jetbatch.idleMiB} MiB, busy ${results.rss.jetbatch.busyMiB} MiB`);
      },
    });

    for (const step of steps) {
      if (!selected(step.id)) continue;
      log(`${step.id} …`);
      try {
        await step.run();
      } catch (err) {
        const msg = `${step.id}: ${(err as Error).stack ?? String(err)}`;
        results.errors.push(msg);
        log(`FAILED ${msg}`);
      }
    }
  } finally {
    await client?.close();
    marks.close();
    await nc.drain().catch(() => nc.close());
    await server.dispose();
    await redis.stop();
  }
  results.durationSeconds = round((nowMs() - started) / 1000, 1);
  const final: Results = { ...results, ratios: computeRatios(results) };
  console.log(formatReport(final));
  if (args.json === true) console.log(JSON.stringify(final));
  if (final.errors.length > 0) process.exitCode = 1;
}

function record(i: number): Record<string, unknown> {
  return { id: i, name: `rec-${i}`, score: i * 0.5, ok: i % 2 === 0 };
}

await main();
