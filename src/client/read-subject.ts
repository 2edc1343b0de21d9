/** Reading back everything a stream holds under one subject (results, dead letters), oldest first, then stopping. */
import { DeliverPolicy } from '@nats-io/jetstream';
import type { FleetContext } from '../fleet/context.js';
import { countSubject } from '../fleet/progress.js';

/** How long to wait for the next message before asking the server whether any is left to deliver. */
const IDLE_MS = 1000;

export interface ReadOptions {
  /** Deliver each message's headers without its body (`data` empty, `msgId` set): for counting, not reading. */
  headersOnly?: boolean;
}

export async function* readSubject(ctx: FleetContext, stream: string, subject: string, options: ReadOptions = {}): AsyncGenerator<{ seq: number; data: Uint8Array; msgId?: string }> {
  const config = { filter_subjects: subject, deliver_policy: DeliverPolicy.All, ...(options.headersOnly === true ? { headers_only: true } : {}) };
  let consumer = await ctx.js.consumers.get(stream, config);
  let pending = (await consumer.info()).num_pending;
  // In a cluster, a consumer made just after a node came back can report nothing pending for a stream that holds
  // messages (seen once in the chaos test: 0 of 1,484 results read). The stream's own count decides; a few retries.
  for (let attempt = 0; pending === 0 && attempt < 5 && (await countSubject(ctx, stream, subject)) > 0; attempt++) {
    await new Promise((r) => setTimeout(r, 200));
    consumer = await ctx.js.consumers.get(stream, config);
    pending = (await consumer.info()).num_pending;
  }
  if (pending === 0) return;
  const messages = await consumer.consume();
  const it = messages[Symbol.asyncIterator]();
  let read = 0;
  try {
    let next = it.next();
    for (;;) {
      let timer: NodeJS.Timeout | undefined;
      const idle = new Promise<'idle'>((resolve) => (timer = setTimeout(() => resolve('idle'), IDLE_MS)));
      const r = await Promise.race([next, idle]);
      clearTimeout(timer);
      if (r === 'idle') {
        // Messages counted at the start can be removed before they are delivered (a dead letter replayed or aged
        // out meanwhile): with nothing left to deliver, the read is over instead of waiting forever.
        if ((await consumer.info()).num_pending === 0) return;
        continue;
      }
      if (r.done === true) return;
      const m = r.value;
      read++;
      yield options.headersOnly === true ? { seq: m.seq, data: m.data, msgId: m.headers?.get('Nats-Msg-Id') ?? '' } : { seq: m.seq, data: m.data };
      // What was stored when we started; later messages belong to a later read.
      if (read >= pending || m.info.pending === 0) return;
      next = it.next();
    }
  } finally {
    // Stop first: a next() still waiting for a message would hold up return() until the iterator stops.
    const closed = messages.close();
    await it.return?.();
    await closed;
  }
}
