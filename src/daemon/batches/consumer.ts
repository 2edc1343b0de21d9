/**
 * Each job has one durable pull consumer on JETBATCH_BATCHES, filtered to the job's subject. Its max_ack_pending
 * is the job's `workers`, which is what caps the job's concurrency across the whole fleet.
 */
import { AckPolicy, DeliverPolicy, type Consumer } from '@nats-io/jetstream';
import type { FleetContext } from '../../fleet/context.js';
import { Streams, Subjects, consumerName } from '../../fleet/protocol.js';
import type { JobRecord } from '../../types.js';

/** Binds to the job's consumer, creating it if no daemon has yet. `leaseMs` becomes its ack wait. */
export async function bindJobConsumer(ctx: FleetContext, record: JobRecord, leaseMs: number): Promise<Consumer> {
  const name = consumerName(record.job_id);
  try {
    await ctx.jsm.consumers.info(Streams.batches, name);
  } catch {
    // First daemon to see the job creates its consumer; a concurrent identical add is harmless, and a lost race
    // with a different config (another daemon's lease) is resolved by binding to whatever exists.
    await ctx.jsm.consumers
      .add(Streams.batches, {
        durable_name: name,
        filter_subject: Subjects.batch(record.api_name, record.job_id),
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        max_ack_pending: record.workers,
        ack_wait: leaseMs * 1_000_000,
        max_deliver: -1,
        max_waiting: 4096,
      })
      .catch(() => ctx.jsm.consumers.info(Streams.batches, name));
  }
  return ctx.js.consumers.get(Streams.batches, name);
}
