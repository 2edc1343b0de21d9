/**
 * Client calls from Python (`jetbatch.client()`), answered with the thread's JetbatchClient (ctx.client()): a Python
 * handler submits and follows jobs through the daemon's own NATS settings, with no NATS package in Python.
 */
import { ErrorCodes, toErrorInfo } from '../../errors.js';
import type { HandlerContext } from '../../handler.js';
import type { SubmissionInput } from '../../fleet/submission.js';

/** `[true, value]` or `[false, {name, code, message}]`: the tail of a `reply` frame. */
export type CallAnswer = [true, unknown] | [false, { name: string; code: string; message: string }];

export async function answerCall(ctx: HandlerContext | undefined, method: unknown, args: unknown): Promise<CallAnswer> {
  try {
    if (ctx === undefined) throw new Error('jetbatch.client() can only be used while the handler runs (__init__, handle_batch, on_job_complete)');
    const a = Array.isArray(args) ? args : [];
    const client = await ctx.client();
    switch (method) {
      case 'submit':
        return [true, await client.submit(a[0] as SubmissionInput)];
      case 'status':
        return [true, await client.status(String(a[0]))];
      case 'wait': {
        const timeoutS = typeof a[1] === 'number' ? a[1] : undefined;
        return [true, await client.wait(String(a[0]), { intervalMs: 200, ...(timeoutS === undefined ? {} : { timeoutMs: timeoutS * 1000 }) })];
      }
      case 'results': {
        const out: unknown[] = [];
        for await (const r of client.results(String(a[0]), { order: 'batch' })) out.push(r);
        return [true, out];
      }
      case 'stop':
        return [true, await client.stop(String(a[0]))];
      default:
        throw new Error(`unknown client method ${String(method)}`);
    }
  } catch (err) {
    const info = toErrorInfo(err);
    return [false, { name: info.name, code: info.code ?? ErrorCodes.INTERNAL, message: info.message }];
  }
}
