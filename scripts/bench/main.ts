/**
 * `npm run bench [-- --quick] [-- --json] [-- --only a,b] [-- --repeat N] [-- --profile DIR]`
 *
 * One run measures raw JetStream, raw Piscina, jetbatch end to end and BullMQ on the same batches and the same
 * handler work, and prints figures and the ratios the performance issue sets targets for. Everything runs on
 * 127.0.0.1: a private nats-server it starts and stops, and the local Redis (started if nothing answers).
 * Throughput steps run in rounds (every system once per round, so a busy moment of the shared machine hits all
 * of them) and report the median round. `--only` takes step-id prefixes (`jetbatch:128b`, `raw-js`, `latency`…);
 * `--profile DIR` writes a CPU profile of the daemon's main thread during the first round of each jetbatch size and CPU scenario.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { JetbatchClient } from '../../src/client/client.js';
import { openContext } from '../../src/fleet/context.js';
import { encodeValue } from '../../src/fleet/protocol.js';
import { openThreadedInput } from '../../src/cli/threaded-input.js';
import { bullmqThroughput } from './bullmq.js';
import { medianRun, round, throughput, type Throughput } from './figures.js';
import { burn, nowMs } from './handlers/work.js';
import { createRawStream, ensureRedis, startNats } from './infra.js';
import { HANDLERS, jetbatchThroughput, startBenchDaemon, type JetbatchEnv } from './jetbatch.js';
import { floorLatency, jetbatchLatency, LATENCY_REPEATS, medianRepeat, rawLatency, type Latency } from './latency.js';
import { machine, sourceState } from './machine.js';
import { Marks } from './marks.js';
import { KiB, LARGEST_BATCH, recordBatch, sizedBatch, type BatchShape } from './payloads.js';
import { formatSummary, Profiler, summarise } from './profile.js';
import { rawConsume, rawPublish, type RawEnv } from './raw-jetstream.js';
import { rawFilePublish } from './raw-file.js';
import { rawPiscina } from './raw-piscina.js';
import { rawHost } from './raw-host.js';
import { calibratePython, FileMarks, pythonInterpreter, type PythonInfo } from './python.js';
import { pythonChannel } from './python-channel.js';
import { rawPipe } from './raw-pipe.js';
import { computeRatios, formatReport, type LatencySystem, type Results, type System } from './report.js';
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
const started = nowMs();
const log = (msg: string): void => void process.stderr.write(`[bench ${((nowMs() - started) / 1000).toFixed(1)}s] ${msg}\n`);

interface SizeScenario {
  id: string;
  shape: BatchShape;
  n: number;
  /** BullMQ jobs of the same size (JSON data), or 0 to skip BullMQ. */
  bullmq: number;
  /**
   * consume() buffer of the raw reference. With 1 MiB messages the default (100) and even 64 stall at ~6 MiB/s
   * (each pull then waits for its 30 s expiry: buffering ≥ 64 MiB seems to trip the server's 64 MB per-connection
   * max_pending), while 32 runs at full speed; so large messages get 32.
   */
  rawBuffer?: number;
}

const sizes: SizeScenario[] = [
  { id: '128b', shape: sizedBatch(128), n: pick(60_000, 30_000), bullmq: pick(20_000, 5_000) },
  { id: '16k', shape: sizedBatch(16 * KiB), n: pick(20_000, 10_000), bullmq: pick(5_000, 0) },
  { id: '1m', shape: sizedBatch(LARGEST_BATCH), n: pick(1_200, 300), bullmq: 0, rawBuffer: 32 },
  { id: 'rec100', shape: recordBatch(100), n: pick(40_000, 3_000), bullmq: 0 },
];
/** Target duration of the fixed CPU work of one batch, calibrated on the main thread. */
const CPU_MS = 3;
const cpuBatches = pick(1_500, 800);
const submitItems = pick(100_000, 20_000);
/** Records of the submission-from-a-file scenario (100 per batch). */
const fileItems = pick(1_000_000, 200_000);
const latencyRate = 1000;
const latencySeconds = pick(10, 3);
const rssBatches = pick(20_000, 5_000);
/** Python channel scenarios (`python:*`): batches per size, on the JS no-op's sizes; fixed CPU work in Python. */
const pythonBatches: Record<string, number> = { '128b': pick(30_000, 10_000), rec100: pick(10_000, 3_000), '1m': pick(400, 300) };
const pythonCpuBatches = pick(1_500, 800);

/** A measurement; `rounds` steps run once per round, the others once. */
interface Step {
  id: string;
  rounds: boolean;
  run: (round: number) => Promise<void>;
}

function selected(id: string): boolean {
  return only === undefined || only.some((p) => id.startsWith(p));
}

let itemsFilePath: string | undefined;
/** The submission-from-a-file scenario's input: fileItems records as JSON Lines, written once per run. */
function itemsFile(): string {
  if (itemsFilePath !== undefined) return itemsFilePath;
  const dir = mkdtempSync(join(tmpdir(), 'jetbatch-bench-file-'));
  itemsFilePath = join(dir, 'items.jsonl');
  writeFileSync(itemsFilePath, Array.from({ length: fileItems }, (_, i) => JSON.stringify(record(i))).join('\n') + '\n');
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return itemsFilePath;
}

let fileBatchesMemo: Uint8Array[] | undefined;
/** The batches of the file scenario, MessagePack-encoded: what every publisher of the file puts on the stream. */
function fileBatches(): Uint8Array[] {
  fileBatchesMemo ??= Array.from({ length: fileItems / 100 }, (_, b) => encodeValue(Array.from({ length: 100 }, (_, i) => record(b * 100 + i))));
  return fileBatchesMemo;
}

function record(i: number): Record<string, unknown> {
  return { id: i, name: `rec-${i}`, score: i * 0.5, ok: i % 2 === 0 };
}

/** Iterations of burn() taking CPU_MS on this machine: the fastest of several timings (the machine is shared). */
function calibrate(): { iterations: number; msPerBatch: number } {
  const probe = 2_000_000;
  let best = Infinity;
  for (let i = 0; i < 7; i++) {
    const t = nowMs();
    burn(probe);
    best = Math.min(best, nowMs() - t);
  }
  const iterations = Math.round((probe * CPU_MS) / Math.max(0.01, best));
  return { iterations, msPerBatch: round((best * iterations) / probe, 2) };
}

async function main(): Promise<void> {
  const server = await startNats();
  const redisNeeded = sizes.some((s) => s.bullmq > 0 && selected(`bullmq:${s.id}`)) || (!quick && selected('bullmq:cpu-2t'));
  const redis = redisNeeded ? await ensureRedis() : { started: false, stop: async () => undefined };
  const nc = await connect({ servers: server.url, name: 'jetbatch-bench' });
  const marks = new Marks();
  let client: JetbatchClient | undefined;
  /** Cleanups of what steps created on demand. */
  const closers: Array<() => void> = [];
  const runs = new Map<string, Map<System, Throughput[]>>();
  const results: Omit<Results, 'ratios'> = {
    mode: quick ? 'quick' : 'full',
    repeat,
    machine: machine(),
    throughput: {},
    jetbatchSubmitSeconds: {},
    jetbatchStartLagMs: {},
    cpu: calibrate(),
    submission: { items: submitItems },
    latency: { rate: latencyRate, repeats: { floor: [], raw: [], jetbatch: [] } },
    rss: {},
    errors: [],
    durationSeconds: 0,
  };
  const iterations = results.cpu?.iterations ?? 0;
  // Code under test that crashes the process (an uncaught exception in the in-process daemon) still gets a report
  // of what was measured, with the crash as an error, and a non-zero exit.
  process.once('uncaughtException', (err: Error) => {
    results.errors.push(`uncaught exception (the run stopped here): ${err.stack ?? String(err)}`);
    log(`FAILED ${err.stack ?? String(err)}`);
    report(results, runs);
    // Our nats-server (and Redis, if we started it) must not outlive us.
    setTimeout(() => process.exit(1), 10_000).unref();
    void server
      .dispose()
      .then(() => redis.stop())
      .finally(() => process.exit(1));
  });
  const add = (scenario: string, sys: System, f: Throughput): void => {
    let bySys = runs.get(scenario);
    if (bySys === undefined) runs.set(scenario, (bySys = new Map()));
    bySys.set(sys, [...(bySys.get(sys) ?? []), f]);
    log(`${scenario} ${sys}: ${f.batchesPerSec} batches/s, ${f.mibPerSec} MiB/s`);
  };
  try {
    const raw: RawEnv = { nc, js: jetstream(nc), jsm: await jetstreamManager(nc) };
    await createRawStream(raw.jsm);
    // The first daemon provisions jetbatch's streams and buckets, which the client needs.
    await (await startBenchDaemon(server.url, { name: 'b-provision', project: HANDLERS.noop, threads: 1 })).close();
    const jb = await JetbatchClient.connect({ servers: [server.url] });
    client = jb;
    const env = (profile: boolean, scenario = '128b'): JetbatchEnv => {
      const e: JetbatchEnv = { url: server.url, client: jb, marks, log, natsPid: server.pid };
      const dir = args.profile;
      if (profile && dir !== undefined) {
        const profiler = new Profiler();
        e.onMeasure = {
          start: () => profiler.start(),
          stop: async () => {
            mkdirSync(dir, { recursive: true });
            const file = join(dir, `jetbatch-${scenario}-main.cpuprofile`);
            const summary = formatSummary(summarise(await profiler.stop(file)));
            writeFileSync(join(dir, `jetbatch-${scenario}-main.summary.txt`), summary + '\n');
            log(`profile written to ${file}\n${summary}`);
          },
        };
      }
      return e;
    };

    const steps: Step[] = [];
    for (const s of sizes) {
      const items = s.shape.items.length;
      const bytes = s.shape.bytes.byteLength;
      steps.push({ id: `raw-js:${s.id}`, rounds: true, run: async () => add(s.id, 'rawJetStream', await rawConsume(raw, s.id, s.shape.bytes, items, s.n, s.rawBuffer, server.pid)) });
      steps.push({ id: `raw-piscina:${s.id}`, rounds: true, run: async () => add(s.id, 'rawPiscina', await rawPiscina(s.shape.bytes, items, s.n, 2, 0)) });
      if (s.id === 'rec100') steps.push({ id: `raw-host:${s.id}`, rounds: true, run: async () => add(s.id, 'rawHost', await rawHost(raw, s.id, s.shape.bytes, items, s.n, 2, server.pid)) });
      steps.push({
        id: `jetbatch:${s.id}`,
        rounds: true,
        run: async (r) => {
          const api = { name: `b-${s.id}`, project: HANDLERS.noop, threads: 2 };
          const x = await jetbatchThroughput(env(r === 0, s.id), api, s.shape.items, bytes, s.n);
          results.jetbatchSubmitSeconds[s.id] = round(x.submitSeconds, 3);
          results.jetbatchStartLagMs[s.id] = Math.max(results.jetbatchStartLagMs[s.id] ?? 0, x.startLagMs);
          add(s.id, 'jetbatch', x.run);
          add(s.id, 'jetbatchComplete', x.complete);
        },
      });
      if (s.bullmq > 0) steps.push({ id: `bullmq:${s.id}`, rounds: true, run: async () => add(s.id, 'bullmq', await bullmqThroughput(bytes, s.bullmq, 0)) });
    }
    const cpuShape = sizedBatch(128);
    for (const threads of [1, 2]) {
      const id = `cpu-${threads}t`;
      steps.push({ id: `cpu:raw-piscina:${threads}t`, rounds: true, run: async () => add(id, 'rawPiscina', await rawPiscina(cpuShape.bytes, 1, cpuBatches, threads, iterations)) });
      steps.push({
        id: `cpu:jetbatch:${threads}t`,
        rounds: true,
        run: async (r) => {
          const api = { name: `b-cpu-${threads}`, project: HANDLERS.cpu, threads, config: { iterations } };
          const x = await jetbatchThroughput(env(r === 0, id), api, cpuShape.items, 128, cpuBatches);
          add(id, 'jetbatch', x.run);
          add(id, 'jetbatchComplete', x.complete);
        },
      });
    }
    // Python handlers (issue 15 item 6): a no-op handler.py through jetbatch against the same bytes through bare
    // Python loops on the same kind of pipes (2 processes, as 2 threads), and CPU-bound Python on 1 and 2 threads.
    let py: { info: PythonInfo; marks: FileMarks } | undefined;
    const python = (): { info: PythonInfo; marks: FileMarks } => {
      if (py === undefined) {
        py = { info: pythonInterpreter(), marks: new FileMarks() };
        results.python = { interpreter: py.info.path, version: py.info.version };
      }
      return py;
    };
    closers.push(() => py?.marks.close());
    const pyEnv = (): JetbatchEnv => ({ ...env(false), first: (job) => python().marks.first(job) });
    for (const s of sizes) {
      const n = pythonBatches[s.id];
      if (n === undefined) continue;
      const items = s.shape.items.length;
      const bytes = s.shape.bytes.byteLength;
      steps.push({ id: `python:raw-pipe:${s.id}`, rounds: true, run: async () => add(s.id, 'rawPipe', await rawPipe(s.shape.bytes, items, n, { python: python().info.path, threads: 2, iterations: 0 })) });
      steps.push({ id: `python:channel:${s.id}`, rounds: true, run: async () => add(s.id, 'pythonChannel', await pythonChannel(s.shape.bytes, items, n, { python: python().info.path, project: HANDLERS.python, threads: 2 })) });
      steps.push({
        id: `python:jetbatch:${s.id}`,
        rounds: true,
        run: async () => {
          const p = python();
          const api = { name: `b-py-${s.id}`, project: HANDLERS.python, threads: 2, python: p.info.path, config: { marks_dir: p.marks.dir } };
          const x = await jetbatchThroughput(pyEnv(), api, s.shape.items, bytes, n);
          add(s.id, 'python', x.run);
          add(s.id, 'pythonComplete', x.complete);
        },
      });
    }
    const pyIterations = (): number => {
      const p = python();
      const r = results.python!;
      r.cpu ??= calibratePython(p.info.path, CPU_MS);
      return r.cpu.iterations;
    };
    for (const threads of [1, 2]) {
      const id = `pycpu-${threads}t`;
      steps.push({ id: `python:cpu:raw-pipe:${threads}t`, rounds: true, run: async () => add(id, 'rawPipe', await rawPipe(cpuShape.bytes, 1, pythonCpuBatches, { python: python().info.path, threads, iterations: pyIterations() })) });
      steps.push({
        id: `python:cpu:jetbatch:${threads}t`,
        rounds: true,
        run: async () => {
          const p = python();
          const api = { name: `b-pycpu-${threads}`, project: HANDLERS.python, threads, python: p.info.path, config: { marks_dir: p.marks.dir, iterations: pyIterations() } };
          const x = await jetbatchThroughput(pyEnv(), api, cpuShape.items, 128, pythonCpuBatches);
          add(id, 'python', x.run);
          add(id, 'pythonComplete', x.complete);
        },
      });
    }
    if (!quick) steps.push({ id: 'bullmq:cpu-2t', rounds: true, run: async () => add('cpu-2t', 'bullmq', await bullmqThroughput(128, cpuBatches, iterations)) });
    steps.push({
      id: 'submit:raw',
      rounds: true,
      run: async () => {
        // The very batches jetbatch submits below: one record each, MessagePack-encoded.
        const prepared = Array.from({ length: submitItems }, (_, i) => encodeValue([record(i)]));
        add('submit', 'rawJetStream', await rawPublish(raw, prepared, 1));
      },
    });
    steps.push({
      id: 'submit:jetbatch',
      rounds: true,
      run: async () => {
        // Registered once, then no daemon serves b-submit: only the publisher's work is timed.
        await (await startBenchDaemon(server.url, { name: 'b-submit', project: HANDLERS.noop, threads: 1 })).close();
        const items = Array.from({ length: submitItems }, (_, i) => record(i));
        const t = nowMs();
        const rec = await jb.submit({ api_name: 'b-submit', items, batch_size: 1, workers: 1 });
        add('submit', 'jetbatch', throughput(rec.total_batch_count, 1, encodeValue([record(0)]).byteLength, (nowMs() - t) / 1000));
        await jb.stop(rec.job_id);
      },
    });
    // Submission from a JSON Lines file (issue 16): jetbatch streams the file (read, parse, batch, encode, publish,
    // checkpoints); the reference publishes the same batches, already encoded in memory, with the same window.
    steps.push({
      id: 'submit-file:raw',
      rounds: true,
      run: async () => {
        add('submit-file', 'rawJetStream', await rawPublish(raw, fileBatches(), 100));
      },
    });
    steps.push({
      id: 'submit-file:raw-file',
      rounds: true,
      run: async () => add('submit-file', 'rawFile', await rawFilePublish(raw, itemsFile(), 100)),
    });
    steps.push({
      id: 'submit-file:jetbatch',
      rounds: true,
      run: async () => {
        await (await startBenchDaemon(server.url, { name: 'b-submit', project: HANDLERS.noop, threads: 1 })).close();
        const file = itemsFile();
        const t = nowMs();
        // As `jetbatch submit --items FILE` reads it: on a thread of its own, batches encoded there.
        const reader = await openThreadedInput(file, { batches: false, strict: true, maxBadLines: null }, 100);
        const rec = await jb.submitStream({ api_name: 'b-submit', batch_size: 100, workers: 1 }, reader.batches, { grouped: true });
        const seconds = (nowMs() - t) / 1000;
        const batches = fileBatches();
        add('submit-file', 'jetbatch', throughput(rec.total_batch_count, 100, batches.reduce((n, b) => n + b.byteLength, 0) / batches.length, seconds));
        await jb.stop(rec.job_id);
      },
    });
    // Latency repeats LATENCY_REPEATS times, floor, raw and jetbatch interleaved (floor, raw, jetbatch, floor, ...) so a
    // busy moment of the shared machine hits all three; the headline of each is its median repeat by p99. Once per run, not per round.
    let latencyCtx: Awaited<ReturnType<typeof openContext>> | undefined;
    const repeats = results.latency.repeats!;
    const latencyStep = (system: LatencySystem, k: number, measure: () => Promise<Latency>): Step => ({
      id: `latency:${system}`,
      rounds: false,
      run: async () => {
        const x = await measure();
        repeats[system].push(x);
        results.latency[system] = medianRepeat(repeats[system]);
        log(`latency ${system} (repeat ${k}/${LATENCY_REPEATS}): p50 ${x.p50} ms, p99 ${x.p99} ms, max ${x.max} ms (first second: p99 ${x.warmup?.p99} ms, max ${x.warmup?.max} ms)`);
      },
    });
    for (let k = 1; k <= LATENCY_REPEATS; k++) {
      steps.push(latencyStep('floor', k, () => floorLatency(raw, latencyRate, latencySeconds)));
      steps.push(latencyStep('raw', k, () => rawLatency(raw, latencyRate, latencySeconds)));
      steps.push(latencyStep('jetbatch', k, async () => {
        latencyCtx ??= await openContext(nc);
        return jetbatchLatency(server.url, jb, latencyCtx, marks, latencyRate, latencySeconds);
      }));
    }
    steps.push({
      id: 'rss:raw',
      rounds: false,
      run: async () => {
        results.rss.raw = await rawRss(server.url, raw, rssBatches);
        log(`rss raw: idle ${results.rss.raw.idleMiB} MiB, busy ${results.rss.raw.busyMiB} MiB`);
      },
    });
    steps.push({
      id: 'rss:jetbatch',
      rounds: false,
      run: async () => {
        results.rss.jetbatch = await jetbatchRss(server.url, jb, rssBatches);
        log(`rss jetbatch: idle ${results.rss.jetbatch.idleMiB} MiB, busy ${results.rss.jetbatch.busyMiB} MiB`);
      },
    });

    const failed = new Set<string>();
    for (let r = 0; r < repeat; r++) {
      for (const step of steps) {
        if (!selected(step.id) || failed.has(step.id) || (r > 0 && !step.rounds)) continue;
        log(`${step.id}${step.rounds && repeat > 1 ? ` (round ${r + 1}/${repeat})` : ''} …`);
        try {
          await step.run(r);
        } catch (err) {
          failed.add(step.id);
          const msg = `${step.id}: ${(err as Error).stack ?? String(err)}`;
          results.errors.push(msg);
          log(`FAILED ${msg}`);
        }
      }
    }
  } finally {
    for (const close of closers) close();
    await client?.close();
    marks.close();
    await nc.drain().catch(() => nc.close());
    await server.dispose();
    await redis.stop();
  }
  report(results, runs);
}

/** Prints the report (and the JSON line) from whatever has been measured so far. */
function report(results: Omit<Results, 'ratios'>, runs: Map<string, Map<System, Throughput[]>>): void {
  for (const [scenario, bySys] of runs) {
    for (const [sys, list] of bySys) {
      if (scenario === 'submit') {
        if (sys === 'jetbatch') results.submission.jetbatch = medianRun(list);
        else results.submission.raw = medianRun(list);
      } else {
        (results.throughput[scenario] ??= {})[sys] = medianRun(list);
      }
    }
  }
  results.machine.loadAvg.after = Math.round((loadavg()[0] ?? 0) * 100) / 100;
  results.machine.source.dirtySrcAtEnd = sourceState().dirtySrc;
  results.durationSeconds = round((nowMs() - started) / 1000, 1);
  const final: Results = { ...results, ratios: computeRatios(results) };
  process.stdout.write(formatReport(final) + '\n');
  if (args.json === true) process.stdout.write(JSON.stringify(final) + '\n');
  if (final.errors.length > 0) process.exitCode = 1;
}

// stdout carries only the report: NATS.js prints some internal errors with console.log (the idle-heartbeat monitor
// of an ordered push consumer - a KV watch or key listing - still running on a closed connection), sent to stderr.
console.log = (...data: unknown[]): void => console.error(...data);
await main();
// Such a consumer's heartbeat timer keeps retrying on its closed connection and would keep this process alive
// (seen after long runs with many daemons started and closed): say so and exit once the report is out.
setTimeout(() => {
  process.stderr.write('bench: handles still open after the run (an ordered consumer on a closed connection?); exiting\n');
  process.exit();
}, 1000).unref();
