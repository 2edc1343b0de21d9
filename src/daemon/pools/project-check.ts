/**
 * Checks a handler project before any job needs it: the folder exists and its handler module imports and has a
 * usable default export. A daemon runs the check for every pool it creates (local projects at start and on SIGHUP,
 * deployed versions when fetched), logs what fails and reports the API unhealthy in /readyz, its heartbeat and
 * `jetbatch apis`: a broken project is seen at start, not when the first job fails.
 */
import { statSync } from 'node:fs';
import { Piscina } from 'piscina';
import { ErrorCodes, toErrorInfo } from '../../errors.js';
import type { ErrorInfo } from '../../types.js';
import type { ProbeTask } from '../../worker/probe.js';
import { threadEntry } from '../../worker/thread-entry.js';
import { resolveHandlerPath } from '../../worker/load-handler.js';

export type ProjectHealth = { state: 'checking' } | { state: 'ok' } | { state: 'unhealthy'; error: ErrorInfo };

/** An import that takes longer than this is reported as a failure (a module waiting forever at top level). */
const IMPORT_LIMIT_MS = 60_000;

export interface CheckInput {
  projectDir: string;
  handlerPath: string | undefined;
  env: Record<string, string>;
}

export async function checkProject(input: CheckInput): Promise<ErrorInfo | null> {
  const missing = folderProblem(input.projectDir);
  if (missing !== null) return { name: 'Error', code: ErrorCodes.HANDLER_LOAD_FAILED, message: missing };
  let handler: string;
  try {
    handler = resolveHandlerPath(input.projectDir, input.handlerPath);
  } catch (err) {
    return toErrorInfo(err, ErrorCodes.HANDLER_LOAD_FAILED);
  }
  // A Python handler is imported by its own interpreter, in the pool's child processes.
  if (handler.endsWith('.py')) return null;
  return probeImport(input);
}

function folderProblem(dir: string): string | null {
  try {
    return statSync(dir).isDirectory() ? null : `project ${dir} is not a folder`;
  } catch {
    return `project folder ${dir} does not exist`;
  }
}

/**
 * Imports the handler in a throwaway one-thread pool (see worker/probe.ts), destroyed either way. A Piscina pool
 * rather than a bare Worker: its thread entry loads a TypeScript task file under tsx the way the API pools do.
 */
async function probeImport(input: CheckInput): Promise<ErrorInfo | null> {
  const entry = threadEntry('probe');
  const pool = new Piscina({ filename: entry.url.href, minThreads: 1, maxThreads: 1, execArgv: entry.execArgv, env: input.env, idleTimeout: Infinity });
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), IMPORT_LIMIT_MS);
  timer.unref();
  const task: ProbeTask = { projectDir: input.projectDir, handlerPath: input.handlerPath };
  try {
    return (await pool.run(task, { signal: ac.signal })) as ErrorInfo | null;
  } catch (err) {
    if (ac.signal.aborted) return { name: 'TimeoutError', code: ErrorCodes.HANDLER_LOAD_FAILED, message: `importing the handler of ${input.projectDir} did not finish within ${IMPORT_LIMIT_MS / 1000} s` };
    // The module ended its thread (process.exit, a crash) while importing.
    const info = toErrorInfo(err, ErrorCodes.HANDLER_LOAD_FAILED);
    return { ...info, code: ErrorCodes.HANDLER_LOAD_FAILED, message: `the handler of ${input.projectDir} ended its thread while importing: ${info.message}` };
  } finally {
    clearTimeout(timer);
    await pool.destroy().catch(() => undefined);
  }
}
