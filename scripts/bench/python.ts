/**
 * What the Python channel scenarios need: the interpreter (scripts/ensure-python.sh: msgpack and numpy, Debian's
 * python3 unless JETBATCH_PYTHON or JETBATCH_TEST_PYTHON names one), the fixed CPU work calibrated in Python, and the
 * first-batch marks the Python bench handler writes to files (handlers/python/handler.py; a Python process cannot
 * post on the BroadcastChannel the JS handlers use).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const WORK = fileURLToPath(new URL('./handlers/python/bench_work.py', import.meta.url));

export interface PythonInfo {
  path: string;
  version: string;
}

/** The interpreter of the Python scenarios (installs Debian's when none is found, like the test suite). */
export function pythonInterpreter(): PythonInfo {
  const wanted = process.env.JETBATCH_PYTHON ?? process.env.JETBATCH_TEST_PYTHON ?? '';
  const path = execFileSync('bash', [join(root, 'scripts', 'ensure-python.sh')], {
    env: { ...process.env, JETBATCH_PYTHON: wanted },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
  const version = execFileSync(path, ['-c', 'import sys, msgpack; print("%d.%d.%d, msgpack %s" % (sys.version_info[:3] + (".".join(map(str, msgpack.version)),)))'], { encoding: 'utf8' }).trim();
  return { path, version };
}

/** bench_work.burn iterations taking `ms` in one Python process here (the fastest of 7 timings). */
export function calibratePython(python: string, ms: number): { iterations: number; msPerBatch: number } {
  return JSON.parse(execFileSync(python, [WORK, String(ms)], { encoding: 'utf8' })) as { iterations: number; msPerBatch: number };
}

/** Where the Python bench handler writes `<job id>.<pid>` with the epoch ms of its first batch. */
export class FileMarks {
  readonly dir = mkdtempSync(join(tmpdir(), 'jetbatch-bench-marks-'));

  /** The earliest first-batch time of the job's processes, if one has written it. */
  first(job: string): number | undefined {
    let first: number | undefined;
    for (const name of readdirSync(this.dir)) {
      if (!name.startsWith(`${job}.`)) continue;
      const t = Number(readFileSync(join(this.dir, name), 'utf8'));
      if (Number.isFinite(t) && (first === undefined || t < first)) first = t;
    }
    return first;
  }

  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
