/** What `jetbatch status` prints below a job's line: pure formatting of a status object, no server. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { statusDetails } from '../src/cli/format.js';
import type { JobStatus } from '../src/types.js';

function status(over: Partial<JobStatus>): JobStatus {
  return {
    job_id: 'j1', api_name: 'api', status: 'running', workers: 1, priority: 0, paused_at: null, total_batch_count: 10,
    batches_in_queue: 4, running_batches: 2, running_daemons: 1, batch_metrics: { succeeded: 4, failed: 0, avg_time_per_batch: 0.1 },
    start_time: '2026-12-01T00:00:00.000Z', end_time: null, timeout: null, max_attempts: null, batch_timeout: null, backoff: null,
    from_api_config: [], config: {}, output: null, results_stored: null, enqueue: null, ...over,
  };
}

describe('status details', () => {
  test('a stored-data job enqueuing: who enqueues it, how far, and the malformed lines skipped so far', () => {
    const s = status({ status: 'enqueuing', enqueue: { batches: 1200, bad_lines: 3, owner: 'gpu-7-1234-ab12cd', done: false } });
    assert.deepEqual(statusDetails(s), [
      'enqueuing by daemon gpu-7-1234-ab12cd: 1200 batches published so far',
      'input: 3 malformed lines skipped',
      'running now: 2 batches on 1 daemon',
    ]);
    const unclaimed = status({ status: 'enqueuing', enqueue: { batches: 0, bad_lines: 0, owner: null, done: false } });
    assert.equal(statusDetails(unclaimed)[0], 'enqueuing: 0 batches published so far');
  });

  test('an ended job: how many results are stored and where, and the input lines it skipped', () => {
    const done = status({ status: 'succeeded', end_time: '2026-12-01T00:01:00.000Z', results_stored: 10, enqueue: { batches: 10, bad_lines: 1, owner: null, done: true } });
    assert.deepEqual(statusDetails(done), ['input: 1 malformed line skipped', 'results: 10 stored in the results stream (jetbatch results j1)']);
    const out = status({ status: 'completed_with_failures', end_time: '2026-12-01T00:01:00.000Z', results_stored: 9, output: 's3://bucket/out/' });
    assert.deepEqual(statusDetails(out), ['results: 9 stored under s3://bucket/out/j1/ (jetbatch results j1)', 'see: jetbatch dlq j1'], 'the dlq hint last');
    const stopped = status({ status: 'stopped', end_time: '2026-12-01T00:01:00.000Z', output: 'file:///data/out/' });
    assert.deepEqual(statusDetails(stopped), ['output: file:///data/out/']);
  });
});
