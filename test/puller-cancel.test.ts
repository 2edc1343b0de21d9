/**
 * A job runner's pulls when its job ends or is stopped (Puller deps.cancelled), on a real nats-server: they end at
 * once and give their slots back. Before, the last pull of an ended job stayed at the server for its whole expiry, and
 * the slots it held kept the next job on the pool waiting (the latency bench's ~1 s stalls at a job's start).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { JsMsg } from '@nats-io/jetstream';
import pino from 'pino';
import { Puller } from '../src/daemon/batches/puller.js';
import { Slots } from '../src/daemon/pools/slots.js';
import type { FleetContext } from '../src/fleet/context.js';
import { encodeValue, Subjects } from '../src/fleet/protocol.js';
import { createJob } from '../src/fleet/registry.js';
import type { JobRecord } from '../src/types.js';
import { provisionedFleet, type ProvisionedFleet } from './helpers/fleet.js';
import { waitUntil } from './helpers/wait.js';

function jobRecord(jobId: string): JobRecord {
  const now = new Date().toISOString();
  return {
    job_id: jobId, api_name: 'pulls', status: 'pending', workers: 8, total_batch_count: 3, config: {}, timeout: null, batch_timeout: null,
    max_attempts: null, backoff: null, spec_hash: jobId, start_time: now, end_time: null, enqueue_deadline: now, error: null,
    batch_metrics: null, batches_in_queue: null, completion: null,
  };
}

describe('puller: pulls of an ended job', () => {
  let fleet: ProvisionedFleet;
  let ctx: FleetContext;

  before(async () => {
    fleet = await provisionedFleet();
    ({ ctx } = fleet);
  });

  after(async () => {
    await fleet?.close();
  });

  /** A puller of `record` on a pool of 2 lanes whose batches settle as soon as they are received. */
  function pullerOf(record: JobRecord, slots: Slots, cancel: AbortController, received: JsMsg[]): Puller {
    return new Puller({
      ctx,
      record,
      leaseMs: 30_000,
      slots,
      claimant: slots.claimant(0),
      cap: () => 8,
      paused: () => false,
      whenResumed: async () => undefined,
      log: pino({ level: 'silent' }),
      inFlight: () => 0,
      whenOneSettles: (signal) => new Promise((r) => signal.addEventListener('abort', () => r(), { once: true })),
      dispatch: (msg) => {
        received.push(msg);
        msg.ack();
        slots.release(1);
      },
      cancelled: cancel.signal,
    });
  }

  async function queued(record: JobRecord, n: number): Promise<void> {
    assert.ok(await createJob(ctx.jobs, record));
    for (let i = 0; i < n; i++) await ctx.js.publish(Subjects.batch(record.api_name, record.job_id), encodeValue([i]));
  }

  test('once a pull has found the queue empty, no pull waits at the server on reserved slots', async () => {
    const record = jobRecord('drained');
    await queued(record, 3);
    const slots = new Slots(2);
    const stop = new AbortController();
    const received: JsMsg[] = [];
    const running = pullerOf(record, slots, new AbortController(), received).run(stop.signal);
    await waitUntil('the three batches', () => received.length === 3, { timeoutMs: 10_000 });
    // A pull that was told of a backlog by the pull before it, on slots released by the pull that found the queue
    // empty, would hold them here for its whole expiry (1 s).
    const used: number[] = [];
    for (const until = Date.now() + 800; Date.now() < until; ) {
      used.push(slots.used);
      await new Promise((r) => setTimeout(r, 10));
    }
    stop.abort();
    await running;
    assert.equal(Math.max(...used.slice(5)), 0, `slots in use after the last batch: ${used.join(' ')}`);
  });

  test('cancelled (the job ended), its pull waiting at the server ends at once and gives its lane back', async () => {
    const record = jobRecord('cancelled');
    await queued(record, 3);
    const slots = new Slots(2);
    const stop = new AbortController();
    const cancel = new AbortController();
    const received: JsMsg[] = [];
    const running = pullerOf(record, slots, cancel, received).run(stop.signal);
    await waitUntil('the three batches', () => received.length === 3, { timeoutMs: 10_000 });
    // The queue is empty: the puller keeps a standby pull waiting at the server for the next batch.
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    stop.abort();
    cancel.abort();
    await running;
    const took = Date.now() - t0;
    assert.ok(took < 500, `the puller stopped ${took} ms after it was cancelled (a pull expires after 1 s)`);
    assert.equal(slots.used, 0);
    assert.ok(slots.canStandby(), 'no standby pull is left');
  });
});
