/** Runs the `jetbatch` CLI from source in a child process, as a person runs it, and reports what they would see. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './daemon.js';

export interface CliResult {
  /** The exit code; -1 when the child was killed (its signal is appended to stderr). */
  code: number;
  stdout: string;
  stderr: string;
}

/** `jetbatch ARGS --server SERVER`, with a time limit (default 60 s). */
export function runCli(args: readonly string[], server: string, timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), ...args, '--server', server], { cwd: ROOT, timeout: timeoutMs }, (err, stdout, stderr) =>
      resolve({
        code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1,
        stdout,
        stderr: err?.signal ? `${stderr}\n(killed by ${err.signal} after ${timeoutMs / 1000} s)` : stderr,
      }),
    );
  });
}
