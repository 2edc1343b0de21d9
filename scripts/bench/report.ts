/** The results of one run: figures, the ratios the performance issue sets targets for, the text and JSON reports. */
import type { Throughput } from './figures.js';
import { round } from './figures.js';
import type { Latency } from './latency.js';
import type { Rss } from './rss.js';

/** The latency measurements: the floor (publish → receipt), the raw pipeline (→ Piscina task) and jetbatch. */
export type LatencySystem = 'floor' | 'raw' | 'jetbatch';

export type System = 'rawJetStream' | 'rawPiscina' | 'jetbatch' | 'jetbatchComplete' | 'bullmq' | 'python' | 'pythonComplete' | 'rawPipe' | 'pythonChannel' | 'rawHost' | 'rawFile';
export const systemLabels: Record<System, string> = {
  rawJetStream: 'raw JetStream consume+ack',
  rawPiscina: 'raw Piscina dispatch',
  jetbatch: 'jetbatch, to every batch acked',
  jetbatchComplete: 'jetbatch, to job complete',
  bullmq: 'BullMQ sandboxed (worker threads)',
  python: 'jetbatch Python, every batch acked',
  pythonComplete: 'jetbatch Python, to job complete',
  rawPipe: 'raw pipe → bare Python loop',
  pythonChannel: 'jetbatch pool → Python channel (no NATS)',
  rawHost: 'raw host: consume → 2 threads decode → ack',
  rawFile: 'raw file publisher: read, JSON.parse, encode, publish',
};

export interface Machine {
  nproc: number;
  cpu: string;
  memoryGiB: number;
  os: string;
  /** 1-minute load average before and after the run: the machine is shared, so this shows how quiet it was. */
  loadAvg: { before: number; after: number };
  node: string;
  natsServer: string;
  redis: string;
  packages: Record<string, string>;
  /** What was measured: the commit and any files under src/ modified in the work tree (at start and at end). */
  source: { commit: string; dirtySrc: string[]; dirtySrcAtEnd?: string[] };
}

export interface Results {
  mode: 'full' | 'quick';
  repeat: number;
  machine: Machine;
  /** scenario → system → median figure. */
  throughput: Record<string, Partial<Record<System, Throughput>>>;
  /** How long `client.submit` took for each measured jetbatch job, in seconds. */
  jetbatchSubmitSeconds: Record<string, number>;
  /** Longest time from a measured daemon's start to its first handler call, per scenario, in ms. */
  jetbatchStartLagMs: Record<string, number>;
  cpu: { iterations: number; msPerBatch: number } | null;
  /** The Python scenarios' interpreter and fixed CPU work (bench_work.burn), when they ran. */
  python?: { interpreter: string; version: string; cpu?: { iterations: number; msPerBatch: number } };
  submission: { items: number; raw?: Throughput; jetbatch?: Throughput };
  /**
   * Handler-start latency, measured in repeats (floor, raw and jetbatch interleaved); `raw` / `jetbatch` are each system's
   * median repeat by p99, the headline figures. `floor`: publish → receipt on the consumer's main thread, which
   * every pipeline shares (latency.ts floorLatency).
   */
  latency: { rate: number; jetbatch?: Latency; raw?: Latency; floor?: Latency; repeats?: Record<LatencySystem, Latency[]> };
  rss: { jetbatch?: Rss; raw?: Rss };
  ratios: Ratio[];
  errors: string[];
  durationSeconds: number;
}

export interface Ratio {
  id: string;
  label: string;
  value: number | null;
  /** e.g. ">= 0.5"; null for figures reported without a target. */
  target: string | null;
  pass: boolean | null;
}

function ratio(a: number | undefined, b: number | undefined): number | null {
  return a === undefined || b === undefined || b === 0 ? null : round(a / b, 3);
}

function check(id: string, label: string, value: number | null, op: '>=' | '<=' | null, bound: number): Ratio {
  if (op === null) return { id, label, value, target: null, pass: null };
  const pass = value === null ? null : op === '>=' ? value >= bound : value <= bound;
  return { id, label, value, target: `${op} ${bound}`, pass };
}

/** "3 repeats" (or how many ran) of a system's latency measurement, for the labels. */
function latencyRepeats(r: Pick<Results, 'latency'>, sys: LatencySystem): string {
  const n = r.latency.repeats?.[sys].length ?? (r.latency[sys] === undefined ? 0 : 1);
  return n === 0 ? 'repeats' : n === 1 ? '1 repeat' : `${n} repeats`;
}

function bothRepeats(r: Pick<Results, 'latency'>): string {
  const [j, w] = [latencyRepeats(r, 'jetbatch'), latencyRepeats(r, 'raw')];
  return j === w ? `${j} each` : `${j} / ${w}`;
}

/** Every ratio: the issues' targets first, then informative ones. */
export function computeRatios(r: Omit<Results, 'ratios'>): Ratio[] {
  const t = r.throughput;
  const bps = (s: string, sys: System): number | undefined => t[s]?.[sys]?.batchesPerSec;
  const mib = (s: string, sys: System): number | undefined => t[s]?.[sys]?.mibPerSec;
  const out: Ratio[] = [
    check('jetbatch_raw_js_128b', 'jetbatch / raw JetStream, 128 B no-op (batches/s)', ratio(bps('128b', 'jetbatch'), bps('128b', 'rawJetStream')), '>=', 0.5),
    check('jetbatch_raw_js_16k', 'jetbatch / raw JetStream, 16 KiB no-op (batches/s)', ratio(bps('16k', 'jetbatch'), bps('16k', 'rawJetStream')), '>=', 0.7),
    check('jetbatch_raw_js_1m', 'jetbatch / raw JetStream, 1 MiB no-op (MiB/s)', ratio(mib('1m', 'jetbatch'), mib('1m', 'rawJetStream')), '>=', 0.8),
    check('jetbatch_bullmq_128b', 'jetbatch / BullMQ sandboxed, 128 B no-op', ratio(bps('128b', 'jetbatch'), bps('128b', 'bullmq')), '>=', 5),
    check('cpu_scaling_2_vs_1', 'jetbatch CPU-bound handler, 2 threads / 1 thread', ratio(bps('cpu-2t', 'jetbatch'), bps('cpu-1t', 'jetbatch')), '>=', 1.8),
    check('submission_jetbatch_raw', 'submission: jetbatch submit / raw async publish (msg ids, 256 in flight)', ratio(r.submission.jetbatch?.batchesPerSec, r.submission.raw?.batchesPerSec), '>=', 0.8),
    check('submission_file_jetbatch_raw', 'submission from a JSON Lines file (100 per batch): jetbatch / raw file publisher (read, parse, encode, publish)', ratio(bps('submit-file', 'jetbatch'), bps('submit-file', 'rawFile')), '>=', 0.8),
    check('latency_p99_ms', `jetbatch handler-start latency p99 at ${r.latency.rate}/s, median of ${latencyRepeats(r, 'jetbatch')} (ms)`, r.latency.jetbatch?.p99 ?? null, '<=', 5),
    check('latency_p99_vs_raw', `handler-start latency p99, jetbatch / raw consume → Piscina (medians of ${bothRepeats(r)})`, ratio(r.latency.jetbatch?.p99, r.latency.raw?.p99), '<=', 1.1),
    check('rss_idle_ratio', 'idle RSS: jetbatch daemon / raw NATS + 2-thread Piscina', ratio(r.rss.jetbatch?.idleMiB, r.rss.raw?.idleMiB), '<=', 1.2),
  ];
  for (const s of ['128b', '16k', '1m', 'rec100']) {
    out.push(check(`jetbatch_raw_piscina_${s}`, `jetbatch / raw Piscina, ${s}`, ratio(bps(s, 'jetbatch'), bps(s, 'rawPiscina')), null, 0));
  }
  out.push(check('submission_file_jetbatch_encoded', 'submission from a JSON Lines file: jetbatch / raw publish of the same batches already encoded in memory', ratio(bps('submit-file', 'jetbatch'), bps('submit-file', 'rawJetStream')), null, 0));
  out.push(check('jetbatch_raw_js_rec100', 'jetbatch / raw JetStream, 100-record batches', ratio(bps('rec100', 'jetbatch'), bps('rec100', 'rawJetStream')), null, 0));
  out.push(check('jetbatch_raw_host_rec100', 'jetbatch / raw host (consume, decode on 2 threads, ack), 100-record batches', ratio(bps('rec100', 'jetbatch'), bps('rec100', 'rawHost')), '>=', 0.8));
  out.push(check('jetbatch_bullmq_16k', 'jetbatch / BullMQ, 16 KiB no-op', ratio(bps('16k', 'jetbatch'), bps('16k', 'bullmq')), null, 0));
  out.push(check('jetbatch_bullmq_cpu', 'jetbatch / BullMQ, CPU-bound on 2 threads', ratio(bps('cpu-2t', 'jetbatch'), bps('cpu-2t', 'bullmq')), null, 0));
  out.push(check('raw_piscina_cpu_scaling', 'raw Piscina CPU-bound, 2 threads / 1 thread (the ceiling here)', ratio(bps('cpu-2t', 'rawPiscina'), bps('cpu-1t', 'rawPiscina')), null, 0));
  // Python handlers (issue 15 item 6): the channel (jetbatch's pool, task loop, runtime and runner, no NATS) against
  // a bare Python loop on the same pipes; then the whole daemon (NATS too) against the same loop, and against JS.
  for (const s of ['128b', 'rec100', '1m']) {
    out.push(check(`python_channel_raw_pipe_${s}`, `jetbatch Python channel / raw pipe + bare Python loop, ${s} no-op`, ratio(bps(s, 'pythonChannel'), bps(s, 'rawPipe')), '>=', 0.7));
  }
  for (const s of ['128b', 'rec100', '1m']) {
    out.push(check(`python_raw_pipe_${s}`, `jetbatch Python daemon (with NATS) / raw pipe + bare Python loop, ${s}`, ratio(bps(s, 'python'), bps(s, 'rawPipe')), null, 0));
  }
  out.push(check('python_cpu_scaling_2_vs_1', 'jetbatch Python CPU-bound handler, 2 threads / 1 thread', ratio(bps('pycpu-2t', 'python'), bps('pycpu-1t', 'python')), '>=', 1.8));
  for (const s of ['128b', 'rec100', '1m']) {
    out.push(check(`python_js_${s}`, `jetbatch Python / jetbatch JS handler, ${s} no-op`, ratio(bps(s, 'python'), bps(s, 'jetbatch')), null, 0));
  }
  out.push(check('raw_pipe_cpu_scaling', 'raw pipe + Python CPU-bound, 2 processes / 1 (the ceiling here)', ratio(bps('pycpu-2t', 'rawPipe'), bps('pycpu-1t', 'rawPipe')), null, 0));
  out.push(check('latency_p99_floor_ms', `raw JetStream publish → consume() receipt p99, the floor of both (no thread), median of ${latencyRepeats(r, 'floor')} (ms)`, r.latency.floor?.p99 ?? null, null, 0));
  out.push(check('latency_p99_raw_ms', `raw consume → Piscina handler-start latency p99, median of ${latencyRepeats(r, 'raw')} (ms)`, r.latency.raw?.p99 ?? null, null, 0));
  out.push(check('rss_busy_ratio', 'busy (peak) RSS: jetbatch / raw (issue 17)', ratio(r.rss.jetbatch?.busyMiB, r.rss.raw?.busyMiB), '<=', 1.2));
  return out;
}

const pad = (s: string, n: number): string => s.padEnd(n);
const num = (x: number | undefined, digits = 0): string => (x === undefined ? '-' : x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));

export function formatReport(r: Results): string {
  const m = r.machine;
  const lines: string[] = [];
  lines.push(`jetbatch benchmark (${r.mode}, median of ${r.repeat}) in ${r.durationSeconds} s`);
  lines.push(`machine: ${m.nproc} CPUs (${m.cpu}), ${m.memoryGiB} GiB, ${m.os}; node ${m.node}, nats-server ${m.natsServer}, redis ${m.redis}`);
  lines.push(`load average (1 min): ${m.loadAvg.before} before, ${m.loadAvg.after} after`);
  const dirty = (l: string[] | undefined): string => (l === undefined || l.length === 0 ? 'clean' : `modified ${l.join(' ')}`);
  lines.push(`source: ${m.source.commit}, src/ ${dirty(m.source.dirtySrc)} at start, ${dirty(m.source.dirtySrcAtEnd)} at end`);
  lines.push(`packages: ${Object.entries(m.packages).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  if (r.cpu !== null) lines.push(`fixed CPU work: ${r.cpu.iterations.toLocaleString('en-US')} xorshift rounds ≈ ${r.cpu.msPerBatch} ms per batch`);
  const py = r.python;
  if (py !== undefined) {
    const work = py.cpu === undefined ? '' : `; fixed CPU work in Python (pycpu): ${py.cpu.iterations.toLocaleString('en-US')} xorshift rounds ≈ ${py.cpu.msPerBatch} ms per batch`;
    lines.push(`python: ${py.interpreter} (${py.version})${work}`);
  }
  lines.push('');
  lines.push(`${pad('scenario', 10)}${pad('system', 36)}${'batches'.padStart(8)}${'batches/s'.padStart(12)}${'items/s'.padStart(12)}${'MiB/s'.padStart(10)}`);
  for (const [scenario, bySystem] of Object.entries(r.throughput)) {
    for (const [sys, f] of Object.entries(bySystem) as Array<[System, Throughput]>) {
      lines.push(`${pad(scenario, 10)}${pad(systemLabels[sys], 36)}${num(f.batches).padStart(8)}${num(f.batchesPerSec).padStart(12)}${num(f.itemsPerSec).padStart(12)}${num(f.mibPerSec, 1).padStart(10)}`);
    }
  }
  for (const [scenario, bySystem] of Object.entries(r.throughput)) {
    const parts = (Object.entries(bySystem) as Array<[System, Throughput]>).filter(([, f]) => f.cpu !== undefined);
    if (parts.length === 0) continue;
    lines.push(`CPU per batch (µs) over the measured interval of the median round, ${scenario}: main thread + worker threads + V8/libuv helper threads + nats-server = total`);
    for (const [sys, f] of parts) {
      const c = f.cpu!;
      lines.push(`  ${pad(systemLabels[sys], 46)}${c.main} + ${c.threads} + ${c.helpers} + ${c.nats} = ${c.total}`);
    }
  }
  const lags = Object.entries(r.jetbatchStartLagMs);
  if (lags.length > 0) lines.push(`jetbatch daemon start → first handler call (longest, ms): ${lags.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  const s = r.submission;
  if (s.raw !== undefined || s.jetbatch !== undefined) {
    lines.push('');
    lines.push(`submission of ${s.items.toLocaleString('en-US')} items (1 per batch): raw publish ${num(s.raw?.batchesPerSec)} msg/s, jetbatch submit ${num(s.jetbatch?.batchesPerSec)} batches/s`);
  }
  const l = r.latency;
  for (const [name, sys] of [['raw publish→receipt (floor)', 'floor'], ['raw consume→Piscina', 'raw'], ['jetbatch', 'jetbatch']] as const) {
    const list = l.repeats?.[sys] ?? [];
    const median = l[sys];
    if (list.length === 0 || median === undefined) continue;
    const warmup = list.some((x) => x.warmup !== undefined) ? `; first second, dropped: max ${list.map((x) => x.warmup?.max ?? '-').join(' / ')} ms` : '';
    lines.push(`handler-start latency p99 over ${latencyRepeats(r, sys)}, ${name}: ${list.map((x) => x.p99).join(' / ')} ms (median ${median.p99}${warmup})`);
  }
  for (const [name, v] of [['jetbatch', l.jetbatch], ['raw consume→Piscina', l.raw], ['raw publish→receipt (floor)', l.floor]] as const) {
    if (v !== undefined) lines.push(`handler-start latency at ${l.rate}/s, ${name}, median repeat: p50 ${v.p50} ms, p99 ${v.p99} ms, max ${v.max} ms (${v.samples} samples)`);
  }
  for (const [name, v] of [['jetbatch daemon', r.rss.jetbatch], ['raw NATS + Piscina', r.rss.raw]] as const) {
    if (v !== undefined) lines.push(`RSS ${name}: idle ${v.idleMiB} MiB, busy peak ${v.busyMiB} MiB`);
  }
  lines.push('');
  lines.push(`${pad('ratio', 78)}${'value'.padStart(9)}  ${pad('target', 8)} result`);
  for (const x of r.ratios) {
    const verdict = x.pass === null ? (x.target === null ? '' : 'n/a') : x.pass ? 'PASS' : 'MISS';
    lines.push(`${pad(x.label, 78)}${(x.value === null ? 'n/a' : String(x.value)).padStart(9)}  ${pad(x.target ?? '', 8)} ${verdict}`);
  }
  if (r.errors.length > 0) lines.push('', 'errors:', ...r.errors.map((e) => `  ${e}`));
  return lines.join('\n');
}
