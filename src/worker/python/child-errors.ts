/**
 * A failure as the Python process reports it (src/python/jetbatch/_runner.py, error_info), and as the thread throws it:
 * an Error whose stack is the Python traceback.
 */
import type { Frame } from './frames.js';

/** What the child reports for a failure (src/python/jetbatch/_runner.py, error_info). */
export interface ChildErrorInfo {
  name: string;
  message: string;
  stack?: string;
  code?: string | null;
  permanent?: boolean;
  oom?: boolean;
}

/** The report of an `error` reply (never missing from a well-behaved runner). */
export function errorOf(reply: Frame): ChildErrorInfo {
  const info = reply.header[2] as ChildErrorInfo | null | undefined;
  return info ?? { name: 'Error', message: `the Python process answered ${String(reply.header[1])} without details` };
}

/** An Error carrying the child's report: the Python traceback is its stack. */
export function toError(info: ChildErrorInfo): Error {
  const err = new Error(info.message);
  err.name = info.name;
  if (typeof info.stack === 'string') err.stack = info.stack;
  return Object.assign(err, {
    ...(typeof info.code === 'string' ? { code: info.code } : {}),
    permanent: info.permanent === true,
  });
}
