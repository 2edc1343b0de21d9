/** Starts daemons for tests: in-process (fast) or as child processes (so they can be killed). */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/daemon/config.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { waitUntil } from './wait.js';

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const FIXTURES = join(ROOT, 'test', 'fixtures');

export interface TestApi {
  name: string;
  project?: string;
  threads?: number;
  config?: Record<string, unknown>;
  [key: string]: unknown;
}

export function daemonConfig(url: string, apis: TestApi[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { nats: { servers: [url] }, apis, metrics: { listen: '127.0.0.1:0' }, log_level: 'warn', shutdown_grace: '5s', lease: '3s', presence_timeout: '6s', check_interval: '300ms', ...extra };
}

export async function startDaemon(url: string, apis: TestApi[], extra: Record<string, unknown> = {}): Promise<Daemon> {
  const options = parseConfig(daemonConfig(url, apis, extra), join(ROOT, 'config', 'test.yaml'));
  return Daemon.start(options);
}

/**
 * Waits until every pool of `daemon` has all its threads loaded (jetbatch_pool_threads = apis[].threads): a job
 * submitted before then waits for threads still booting, which is not what a test of timing or scheduling measures.
 */
export async function threadsLoaded(daemon: Daemon, timeoutMs = 30_000): Promise<void> {
  const expected = new Map(daemon.options.apis.map((a) => [a.name, a.threads]));
  await waitUntil('every pool thread loaded', async () => {
    const gauge = daemon.metrics.registry.getSingleMetric('jetbatch_pool_threads');
    const values = gauge === undefined ? [] : (await gauge.get()).values;
    return [...expected].every(([api, n]) => values.some((v) => v.labels.api_name === api && v.value === n));
  }, { timeoutMs });
}

export function tempDir(prefix = 'jetbatch-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A daemon in its own process (`jetbatch start`), for kill -9 and signal tests. */
export class DaemonProcess {
  readonly proc: ChildProcess;
  output = '';

  private constructor(proc: ChildProcess) {
    this.proc = proc;
    proc.stdout?.on('data', (d: Buffer) => (this.output += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (this.output += d.toString()));
  }

  static async spawn(url: string, apis: TestApi[], extra: Record<string, unknown> = {}, env: Record<string, string> = {}): Promise<DaemonProcess> {
    const dir = tempDir('jetbatch-daemon-');
    const file = join(dir, 'jetbatch.yaml');
    writeFileSync(file, stringify(daemonConfig(url, apis, { log_level: 'info', ...extra })));
    const proc = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), 'start', '--config', file], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const d = new DaemonProcess(proc);
    try {
      await d.waitFor(/daemon started/, 30_000);
    } catch (err) {
      await d.kill('SIGKILL');
      throw err;
    }
    return d;
  }

  /** Waits for a line matching `pattern` in the daemon's output; fails at once if the daemon exits first. */
  async waitFor(pattern: RegExp, timeoutMs: number): Promise<void> {
    await waitUntil(`${pattern} in the daemon's output`, () => {
      if (pattern.test(this.output)) return true;
      if (this.proc.exitCode !== null) throw new Error(`daemon exited (${this.proc.exitCode}) before ${pattern}:\n${this.output}`);
      return false;
    }, { timeoutMs, detail: () => `output:\n${this.output}` });
  }

  /** Sends a signal and resolves with the exit code (or the signal name). */
  async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | string> {
    if (this.proc.exitCode !== null) return this.proc.exitCode;
    if (this.proc.signalCode !== null) return this.proc.signalCode;
    return new Promise((resolve) => {
      this.proc.once('exit', (code, sig) => resolve(code ?? sig ?? -1));
      this.proc.kill(signal);
    });
  }
}

/** Every JSON line the recorder fixture wrote into `dir`. */
export function readRecords(dir: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const f of readdirSync(dir)) {
    if (!f.endsWith('.jsonl')) continue;
    for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) if (line) out.push(JSON.parse(line) as Record<string, unknown>);
  }
  return out;
}

/** Largest number of [start, end] intervals open at once (an end at the same ms as a start closes first). */
export function maxConcurrency(records: Array<Record<string, unknown>>, job: string): number {
  const events: Array<[number, number]> = [];
  for (const r of records) {
    if (r.job !== job) continue;
    if (r.ev === 'start') events.push([r.t as number, 1]);
    if (r.ev === 'end') events.push([r.t as number, -1]);
  }
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let cur = 0;
  let max = 0;
  for (const [, d] of events) {
    cur += d;
    max = Math.max(max, cur);
  }
  return max;
}
