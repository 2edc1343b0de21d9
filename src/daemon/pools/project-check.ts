/**
 * Checks a handler project before any job needs it: the folder exists and its handler module imports and has a
 * usable default export. A daemon runs the check for every pool it creates (local projects at start and on SIGHUP,
 * deployed versions when fetched), logs what fails and reports the API unhealthy in /readyz, its heartbeat and
 * `jetbatch apis`: a broken project is seen at start, not when the first job fails.
 */
import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { Piscina } from 'piscina';
import { ErrorCodes, toErrorInfo } from '../../errors.js';
import type { ErrorInfo } from '../../types.js';
import type { ProbeTask } from '../../worker/probe.js';
import { threadEntry } from '../../worker/thread-entry.js';
import { resolveHandlerPath } from '../../worker/load-handler.js';
import { modulePath } from '../../worker/python/python-runtime.js';

export type ProjectHealth = { state: 'checking' } | { state: 'ok' } | { state: 'unhealthy'; error: ErrorInfo };

/** An import that takes longer than this is reported as a failure (a module waiting forever at top level). */
const IMPORT_LIMIT_MS = 60_000;

export interface CheckInput {
  projectDir: string;
  handlerPath: string | undefined;
  env: Record<string, string>;
  /** Interpreter of a Python handler (apis[].python, resolved). */
  python: string;
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
  return handler.endsWith('.py') ? probePython(input, handler) : probeImport(input);
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

/**
 * Imports handler.py with the API's interpreter, as a pool's process would (`jetbatch._runner` in check mode, same
 * PYTHONPATH, cwd and environment), and reads its verdict: the last stdout line, `null` or the error.
 */
function probePython(input: CheckInput, handler: string): Promise<ErrorInfo | null> {
  const fail = (message: string, stack?: string): ErrorInfo => ({ name: 'Error', code: ErrorCodes.HANDLER_LOAD_FAILED, message, ...(stack === undefined ? {} : { stack }) });
  return new Promise((resolve) => {
    const pythonPath = input.env.PYTHONPATH ? `${modulePath()}:${input.env.PYTHONPATH}` : modulePath();
    const settings = JSON.stringify({ check: true, handler });
    execFile(input.python, ['-m', 'jetbatch._runner', settings], { cwd: input.projectDir, env: { ...input.env, PYTHONPATH: pythonPath }, timeout: IMPORT_LIMIT_MS, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const spawnError = err as (Error & { code?: unknown; killed?: boolean }) | null;
      if (spawnError?.code === 'ENOENT') return resolve(fail(`the Python interpreter ${input.python} was not found (apis[].python)`));
      if (spawnError?.killed === true) return resolve(fail(`importing ${handler} did not finish within ${IMPORT_LIMIT_MS / 1000} s`));
      const last = stdout.trimEnd().split('\n').pop() ?? '';
      try {
        const verdict = JSON.parse(last) as { name: string; message: string; stack?: string; code?: string | null } | null;
        if (verdict === null) return resolve(null);
        return resolve({ name: verdict.name, code: ErrorCodes.HANDLER_LOAD_FAILED, message: verdict.message, ...(verdict.stack === undefined ? {} : { stack: verdict.stack }) });
      } catch {
        // no verdict: the interpreter failed before it could give one (no msgpack, a crash while importing)
      }
      const said = stderr.trim().split('\n').slice(-5).join('\n');
      resolve(fail(`${input.python} could not check ${handler}${said ? `: ${said}` : ` (exit ${String(spawnError?.code ?? 'unknown')})`}`));
    });
  });
}
