/** Load: 200 small jobs and 3 large ones across 3 APIs on two daemons: exact counts, workers caps, fairness. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { JetbatchClient } from '../src/client/client.js';
import type { Daemon } from '../src/daemon/daemon.js';
import type { JobStatus } from '../src/types.js';
import { FIXTURES, maxConcurrency, readRecords, startDaemon, tempDir } from './helpers/daemon.js';
import { NatsServer } from './helpers/nats-server.js';

const APIS = ['load-a', 'load-b', 'load-c'];

describe('load: 203 jobs at once', () => {
  let server: NatsServer;
  const daemons: Daemon[] = [];
  let client: JetbatchClient;
  const recordDir = tempDir();

  before(async () => {
    server = await NatsServer.start();
    const apis = APIS.map((name) => ({ name, project: join(FIXTURES, 'recorder'), threads: 2, config: { record_dir: recordDir } }));
    daemons.push(await startDaemon(server.url, apis), await startDaemon(server.url, apis));
    client = await JetbatchClient.connect({ servers: [server.url] });
  });

  after(async () => {
    await client?.close();
    for (const d of daemons) await d.close();
    await server?.dispose();
  });

  test('every job finishes with exact counts; caps hold; small jobs are not starved by large ones', async () => {
    const large = await Promise.all(
      APIS.map((api) => client.submit({ api_name: api, items: Array.from({ length: 300 }, (_, i) => i), batch_size: 1, workers: 2, config: { delay_ms: 10 } })),
    );
    const small = [];
    for (let i = 0; i < 200; i++) {
      small.push(client.submit({ api_name: APIS[i % 3]!, items: [i, i + 1, i + 2], batch_size: 1, workers: 1, config: { delay_ms: 5 } }));
    }
    const smallJobs = await Promise.all(small);
    const finals: JobStatus[] = [];
    const deadline = Date.now() + 240_000;
    for (const j of [...large, ...smallJobs]) finals.push(await client.wait(j.job_id, { intervalMs: 200, timeoutMs: Math.max(1000, deadline - Date.now()) }));
    for (const f of finals) {
      assert.equal(f.status, 'succeeded', f.job_id);
      assert.equal(f.batch_metrics.failed, 0);
      assert.equal(f.batch_metrics.succeeded, f.total_batch_count);
    }
    const records = readRecords(recordDir);
    for (const j of large) assert.ok(maxConcurrency(records, j.job_id) <= 2, `large job ${j.job_id} over its cap`);
    for (const j of smallJobs) assert.ok(maxConcurrency(records, j.job_id) <= 1, `small job ${j.job_id} over its cap`);
    const ends = records.filter((r) => r.ev === 'end');
    const distinct = new Set(ends.map((r) => `${String(r.job)}/${String(r.batch)}`));
    assert.equal(distinct.size, 3 * 300 + 200 * 3, 'every batch ran');
    // At-least-once: a batch whose lease (3 s here) lapsed on a starved machine may run twice; never many.
    assert.ok(ends.length - distinct.size <= 15, `${ends.length - distinct.size} batches ran twice`);
    const completes = records.filter((r) => r.ev === 'complete');
    assert.equal(completes.length, 203, 'onJobComplete once per job');
    // Fairness: most small jobs end while the large jobs are still running.
    const endOf = new Map(finals.map((f) => [f.job_id, Date.parse(f.end_time!)]));
    const lastLarge = Math.max(...large.map((j) => endOf.get(j.job_id)!));
    const smallEnds = smallJobs.map((j) => endOf.get(j.job_id)!).sort((a, b) => a - b);
    const median = smallEnds[Math.floor(smallEnds.length / 2)]!;
    console.log(`load figures: ${JSON.stringify({ jobs: finals.length, batches: distinct.size, ran_twice: ends.length - distinct.size, median_small_end_before_last_large_ms: lastLarge - median })}`);
    assert.ok(median < lastLarge, 'the median small job ended before the large jobs did');
  });
});
