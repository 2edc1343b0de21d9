/**
 * What the Python process sends while a request runs, besides its reply: log lines, lease extensions, metrics, and
 * calls (calls.ts), each for the context of the request it belongs to. With no such context (no request running, or
 * one the thread gave up), a log line goes to the thread's logger, a lease or a metric is dropped, and a call is
 * answered with an error.
 */
import type { Logger } from 'pino';
import type { HandlerContext } from '../../handler.js';
import { answerCall } from './calls.js';
import type { Frame } from './frames.js';
import type { OpenReads } from './reads.js';

const LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal']);

export interface SideFrameDeps {
  /** The thread's logger, for a log line with no context. */
  log: Logger;
  /** What calls opened with jetbatch.open() (reads.ts). */
  reads: OpenReads;
  /** Sends a call's answer to the process that asked (a `reply` frame). */
  reply(frame: unknown[]): void;
}

export function onSideFrame(frame: Frame, ctx: HandlerContext | undefined, deps: SideFrameDeps): void {
  const [kind] = frame.header;
  if (kind === 'log') {
    const [, level, msg, fields] = frame.header as [string, string, string, Record<string, unknown> | null];
    const log = ctx?.log ?? deps.log;
    (LEVELS.has(level) ? log[level as 'info'] : log.info).call(log, fields ?? {}, String(msg));
    return;
  }
  if (kind === 'lease') {
    ctx?.extendLease();
    return;
  }
  if (kind === 'metric') {
    const [, method, name, value, labels] = frame.header as [string, string, string, number, Record<string, string> | null];
    const metrics = ctx?.metrics;
    if (metrics !== undefined && (method === 'increment' || method === 'gauge' || method === 'observe')) metrics[method](String(name), Number(value), labels ?? {});
    return;
  }
  if (kind === 'call') {
    const seq = frame.header[1];
    void answerCall(ctx, deps.reads, frame.header[2], frame.header[3]).then((answer) => deps.reply(['reply', seq, ...answer]));
  }
}
