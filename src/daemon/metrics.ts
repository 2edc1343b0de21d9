/**
 * Prometheus metrics of one daemon. Labels are bounded: api_name (from the config), outcome and status (fixed
 * vocabularies); never job or batch ids. docs/operations.md explains each metric.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class DaemonMetrics {
  readonly registry = new Registry();
  readonly batches = new Counter({
    name: 'jetbatch_batches_total',
    help: 'Batch attempts by outcome: succeeded, retried (failed, will be retried), dead_lettered.',
    labelNames: ['api_name', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'jetbatch_batch_duration_seconds',
    help: 'Wall time of handleBatch attempts, in seconds.',
    labelNames: ['api_name'] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800],
    registers: [this.registry],
  });
  readonly inFlight = new Gauge({
    name: 'jetbatch_batches_in_flight',
    help: 'Batches pulled by this daemon and not yet settled.',
    labelNames: ['api_name'] as const,
    registers: [this.registry],
  });
  readonly timeouts = new Counter({
    name: 'jetbatch_batch_timeouts_total',
    help: 'Batch attempts aborted at their batch timeout.',
    labelNames: ['api_name'] as const,
    registers: [this.registry],
  });
  readonly redeliveries = new Counter({
    name: 'jetbatch_redeliveries_total',
    help: 'Batches received with a delivery count above 1.',
    labelNames: ['api_name'] as const,
    registers: [this.registry],
  });
  readonly workerDeaths = new Counter({
    name: 'jetbatch_worker_restarts_total',
    help: 'Worker threads that died (crash, memory cap, timeout termination) and were replaced.',
    labelNames: ['api_name', 'reason'] as const,
    registers: [this.registry],
  });
  readonly activeJobs = new Gauge({
    name: 'jetbatch_jobs_active',
    help: 'Jobs this daemon is currently running.',
    labelNames: ['api_name'] as const,
    registers: [this.registry],
  });
  readonly natsConnected = new Gauge({
    name: 'jetbatch_nats_connected',
    help: '1 while connected to NATS, else 0.',
    registers: [this.registry],
  });
  readonly natsReconnects = new Counter({
    name: 'jetbatch_nats_reconnects_total',
    help: 'Reconnections to NATS.',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }
}
