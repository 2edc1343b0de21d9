/** Reading back everything a stream holds under one subject (results, dead letters), oldest first, then stopping. */
import { DeliverPolicy } from '@nats-io/jetstream';
import type { FleetContext } from '../context.js';

export async function* readSubject(ctx: FleetContext, stream: string, subject: string): AsyncGenerator<{ seq: number; data: Uint8Array }> {
  const consumer = await ctx.js.consumers.get(stream, { filter_subjects: subject, deliver_policy: DeliverPolicy.All });
  const pending = (await consumer.info()).num_pending;
  if (pending === 0) return;
  const messages = await consumer.consume();
  let read = 0;
  try {
    for await (const m of messages) {
      read++;
      yield { seq: m.seq, data: m.data };
      // What was stored when we started; later messages belong to a later read.
      if (read >= pending || m.info.pending === 0) break;
    }
  } finally {
    await messages.close();
  }
}
