/** The two errors every store raises, with the URL and the store's own error in the message. */
import { ErrorCodes, JetbatchError } from '../errors.js';

export function storeNotFound(url: string, what: string, cause?: unknown): JetbatchError {
  return new JetbatchError(ErrorCodes.STORE_NOT_FOUND, `${url}: ${what}`, cause === undefined ? {} : { cause });
}

/** `verb`: what was being done (`list`, `open`, `write`). A JetbatchError passes through unchanged. */
export function storeFailed(url: string, verb: string, cause: unknown): JetbatchError {
  if (cause instanceof JetbatchError) return cause;
  const e = cause as { code?: unknown; name?: unknown; message?: unknown };
  const code = typeof e?.code === 'string' ? `${e.code} ` : typeof e?.name === 'string' && e.name !== 'Error' ? `${e.name} ` : '';
  const message = typeof e?.message === 'string' ? e.message : String(cause);
  return new JetbatchError(ErrorCodes.STORE_FAILED, `cannot ${verb} ${url}: ${code}${message}`, { cause });
}

export function notAnObject(url: string): JetbatchError {
  return new JetbatchError(ErrorCodes.INVALID_STORE_URL, `bad store URL "${url}": it ends in / (a prefix), an object URL is needed here`);
}
