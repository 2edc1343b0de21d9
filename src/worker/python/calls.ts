/**
 * Calls from Python, answered by the worker thread for the request running: client calls (`jetbatch.client()`),
 * answered with the thread's JetbatchClient (ctx.client()), so a Python handler submits and follows jobs through the
 * daemon's own NATS settings with no NATS package in Python; and stored-object reads (`jetbatch.open(url)`), through
 * ctx.open (reads.ts).
 */
import { ErrorCodes, toErrorInfo } from '../../errors.js';
import type { HandlerContext } from '../../handler.js';
import type { SubmissionInput } from '../../fleet/submission.js';
import type { OpenReads } from './reads.js';

/** `[true, value]` or `[false, {name, code, message}]`: the tail of a `reply` frame. */
export type CallAnswer = [true, unknown] | [false, { name: string; code: string; message: string }];

export async function answerCall(ctx: HandlerContext | undefined, reads: OpenReads, method: unknown, args: unknown): Promise<CallAnswer> {
  try {
    if (ctx === undefined) throw new Error('jetbatch.client() and jetbatch.open() can only be used while the handler runs (__init__, handle_batch, on_job_complete)');
    const a = Array.isArray(args) ? args : [];
    switch (method) {
      case 'open':
        return [true, await reads.open(ctx, a[0])];
      case 'read':
        return [true, await reads.read(a[0], a[1])];
      case 'close':
        reads.close(a[0]);
        return [true, null];
      default:
        return [true, await clientCall(ctx, method, a)];
    }
  } catch (err) {
    const info = toErrorInfo(err);
    return [false, { name: info.name, code: info.code ?? ErrorCodes.INTERNAL, message: info.message }];
  }
}

async function clientCall(ctx: HandlerContext, method: unknown, a: unknown[]): Promise<unknown> {
  const client = await ctx.client();
  switch (method) {
    case 'submit':
      return client.submit(a[0] as SubmissionInput);
    case 'status':
      return client.status(String(a[0]));
    case 'wait': {
      const timeoutS = typeof a[1] === 'number' ? a[1] : undefined;
      return client.wait(String(a[0]), { intervalMs: 200, ...(timeoutS === undefined ? {} : { timeoutMs: timeoutS * 1000 }) });
    }
    case 'results': {
      const out: unknown[] = [];
      for await (const r of client.results(String(a[0]), { order: 'batch' })) out.push(r);
      return out;
    }
    case 'stop':
      return client.stop(String(a[0]));
    default:
      throw new Error(`unknown call ${String(method)}`);
  }
}
