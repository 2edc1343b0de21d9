import { deepMerge } from '../util/merge.js';
import type { JobRecord, JobSpec } from '../types.js';
import type { ApiOptions } from './config.js';

/** What a handler is told about its job: the record's fields with the API's defaults and config merged in. */
export function jobSpecOf(record: JobRecord, api: ApiOptions): JobSpec {
  return {
    job_id: record.job_id,
    api_name: record.api_name,
    config: deepMerge(api.config as Record<string, unknown>, record.config),
    workers: record.workers,
    priority: record.priority ?? 0,
    total_batch_count: record.total_batch_count,
    start_time: record.start_time,
    timeout: record.timeout,
    batch_timeout: record.batch_timeout ?? api.batchTimeoutMs / 1000,
    max_attempts: record.max_attempts ?? api.maxAttempts,
  };
}
