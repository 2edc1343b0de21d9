/** Python handler tests: the interpreter (scripts/ensure-python.sh exports it) and the runner processes alive. */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES } from './daemon.js';

/** An interpreter that can import msgpack and numpy (`python3` on PATH may be a build without them). */
export const PYTHON = process.env.JETBATCH_TEST_PYTHON ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');

export const fastBackoff = { initial: '20ms', factor: 2, max: '200ms', jitter: 0.1 };

/** An API serving test/fixtures/<name> with the test interpreter. */
export function pythonApi(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> & { name: string } {
  return { name, project: join(FIXTURES, name), python: PYTHON, threads: 1, max_attempts: 3, backoff: fastBackoff, ...extra };
}

/**
 * Pids of the Python handler processes of worker threads (jetbatch._runner) whose parent is `parent` (default: this
 * test process). A daemon's project check (project-check.ts) runs the same module for a moment, in check mode, from
 * its main thread: it is not one of them. (Counted as one, it made a test take its pid for a thread's process while
 * the threads were still booting on a loaded machine.)
 */
export function runnerPids(parent: number = process.pid): number[] {
  let listing: string;
  try {
    listing = execFileSync('pgrep', ['-a', '-P', String(parent), '-f', 'jetbatch._runner'], { encoding: 'utf8' });
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
  return listing
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.includes('"check":true'))
    .map((line) => Number(line.trim().split(' ')[0]));
}
