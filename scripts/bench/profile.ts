/**
 * CPU profile of the benchmark process's main thread (where the in-process daemon runs) over a measured
 * interval, through the inspector, and a summary of where the time went: top functions by self time and the
 * share of each package. Also usable on any .cpuprofile: `node --import tsx scripts/bench/profile.ts FILE`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

export interface CpuProfile {
  nodes: Array<{ id: number; callFrame: CallFrame }>;
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileSummary {
  totalMs: number;
  top: Array<{ fn: string; where: string; selfMs: number; pct: number }>;
  byPackage: Array<{ pkg: string; selfMs: number; pct: number }>;
}

export class Profiler {
  readonly #session = new Session();

  async start(): Promise<void> {
    this.#session.connect();
    await this.#session.post('Profiler.enable');
    await this.#session.post('Profiler.setSamplingInterval', { interval: 200 });
    await this.#session.post('Profiler.start');
  }

  async stop(file: string): Promise<CpuProfile> {
    const { profile } = (await this.#session.post('Profiler.stop')) as unknown as { profile: CpuProfile };
    this.#session.disconnect();
    writeFileSync(file, JSON.stringify(profile));
    return profile;
  }
}

const root = fileURLToPath(new URL('../..', import.meta.url));

function packageOf(url: string, fn: string): string {
  if (url === '') return fn.startsWith('(') ? fn : '(native)';
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m?.[1] !== undefined) return m[1];
  if (url.startsWith('node:')) return 'node';
  if (url.includes('/src/')) return 'jetbatch';
  if (url.includes('/scripts/bench/')) return 'bench';
  return 'other';
}

export function summarise(profile: CpuProfile, topN = 25): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const self = new Map<string, { fn: string; where: string; us: number }>();
  const pkgs = new Map<string, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  let total = 0;
  for (let i = 0; i < samples.length; i++) {
    const cf = byId.get(samples[i] ?? -1);
    // Each delta is the time before sample i; attribute the interval after it to sample i.
    const us = deltas[i + 1] ?? 0;
    if (cf === undefined) continue;
    total += us;
    const where = cf.url === '' ? '' : `${cf.url.startsWith('file://') ? relative(root, fileURLToPath(cf.url)) : cf.url}:${cf.lineNumber + 1}`;
    const fn = cf.functionName || '(anonymous)';
    const key = `${fn} ${where}`;
    const e = self.get(key) ?? { fn, where, us: 0 };
    e.us += us;
    self.set(key, e);
    const pkg = packageOf(cf.url, fn);
    pkgs.set(pkg, (pkgs.get(pkg) ?? 0) + us);
  }
  const pct = (us: number): number => Math.round((1000 * us) / Math.max(1, total)) / 10;
  return {
    totalMs: Math.round(total / 1000),
    top: [...self.values()].sort((a, b) => b.us - a.us).slice(0, topN).map((e) => ({ fn: e.fn, where: e.where, selfMs: Math.round(e.us / 100) / 10, pct: pct(e.us) })),
    byPackage: [...pkgs.entries()].sort((a, b) => b[1] - a[1]).map(([pkg, us]) => ({ pkg, selfMs: Math.round(us / 100) / 10, pct: pct(us) })),
  };
}

export function formatSummary(s: ProfileSummary, label = 'main thread'): string {
  const lines = [`${label}, ${s.totalMs} ms sampled`, '', 'by package:'];
  for (const p of s.byPackage) lines.push(`  ${p.pct.toFixed(1).padStart(5)} %  ${p.selfMs.toFixed(1).padStart(8)} ms  ${p.pkg}`);
  lines.push('', 'top functions by self time:');
  for (const t of s.top) lines.push(`  ${t.pct.toFixed(1).padStart(5)} %  ${t.selfMs.toFixed(1).padStart(8)} ms  ${t.fn}  ${t.where}`);
  return lines.join('\n');
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2];
  if (file === undefined) throw new Error('usage: profile.ts FILE.cpuprofile');
  console.log(formatSummary(summarise(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile), file));
}
