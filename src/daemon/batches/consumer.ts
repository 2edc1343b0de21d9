/**
 * Each job has one durable pull consumer on JETBATCH_BATCHES, filtered to the job's subject. Its max_ack_pending
 * is the job's `workers`, which is what caps the job's concurrency across the whole fleet.
 */
import { AckPolicy, DeliverPolicy, type Consumer } from '@nats-io/jetstream';
import type { FleetContext } from '../../fleet/context.js';
import { Streams, Subjects, consumerName } from '../../fleet/protocol.js';
import { getJob } from '../../fleet/registry.js';
import { isTerminal, type JobRecord } from '../../types.js';

/**
 * Binds to the job's consumer, creating it if no daemon has yet. `leaseMs` becomes its ack wait. Null when the
 * consumer is gone because the job is completing or ended: its completer removes the queue before the job ends, and
 * a runner still pulling must not bring it back (a replay reopens the ended job at once, and its consumer must then
 * start from the replayed batches, not from a leftover made by a runner that had not stopped yet).
 */
export async function bindJobConsumer(ctx: FleetContext, record: JobRecord, leaseMs: number): Promise<Consumer | null> {
  const name = consumerName(record.job_id);
  try {
    await ctx.jsm.consumers.info(Streams.batches, name);
  } catch {
    const current = await getJob(ctx.jobs, record.job_id);
    if (current === null || current.record.status === 'completing' || isTerminal(current.record.status)) return null;
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
