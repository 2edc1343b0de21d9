/**
 * Scheduling across the fleet (issue #13): `workers` is how many batches of a job run at once across all daemons,
 * never more, and as many as that whenever the fleet has the threads; a daemon joining mid-job takes a share.
 * Several daemons run in this process, each tagging what its handler records; concurrency is measured from those
 * records (test/helpers/timeline.ts), not from the daemons' counters.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { JetbatchClient } from '../src/client/client.js';
import type { Daemon } from '../src/daemon/daemon.js';
import { FIXTURES, readRecords, startDaemon, tempDir } from './helpers/daemon.js';
import { NatsServer } from './helpers/nats-server.js';
import { daemonsOf, intervals, peak, timeAtConcurrency } from './helpers/timeline.js';
import { waitUntil } from './helpers/wait.js';

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

describe('scheduling: workers across daemons', () => {
  let server: NatsServer;
  let client: JetbatchClient;
  const daemons: Daemon[] = [];
  const recordDir = tempDir();
  const api = (tag: string, threads = 2) => ({ name: 'sched', project: join(FIXTURES, 'recorder'), threads, config: { record_dir: recordDir, tag } });
  const start = async (tag: string): Promise<Daemon> => {
    const d = await startDaemon(server.url, [api(tag)]);
    daemons.push(d);
    return d;
  };

  before(async () => {
    server = await NatsServer.start();
    await start('A');
    await start('B');
    client = await JetbatchClient.connect({ servers: [server.url] });
  });

  after(async () => {
    await client?.close();
    await Promise.all(daemons.map((d) => d.close()));
    await server?.dispose();
  });

  test('workers 4 on two daemons of 2 threads: 4 batches of 1 s at once, on both daemons, for the whole job', async () => {
    const rec = await client.submit({ api_name: 'sched', items: range(20), batch_size: 1, workers: 4, config: { delay_ms: 1000 } });
    const final = await client.wait(rec.job_id, { intervalMs: 100, timeoutMs: 60_000 });
    assert.equal(final.status, 'succeeded');
    const list = intervals(readRecords(recordDir), rec.job_id);
    assert.equal(list.length, 20, 'one attempt per batch');
    assert.equal(peak(list), 4, 'never more than 4 at once, and 4 reached');
    assert.deepEqual([...daemonsOf(list)].sort(), ['A', 'B']);
    for (const d of ['A', 'B']) assert.equal(peak(list.filter((i) => i.daemon === d)), 2, `daemon ${d} ran 2 at once`);
    const spent = timeAtConcurrency(list);
    const span = spent.reduce((a, b) => a + b, 0);
    // 5 waves of 1 s; a wave starts within one batch-start latency of the last one ending.
    assert.ok(span < 6000, `job span ${span} ms (5 s of work at 4 at once)`);
    assert.ok((spent[4] ?? 0) / span > 0.9, `4 at once for ${Math.round(((spent[4] ?? 0) / span) * 100)} % of the span (${JSON.stringify(spent)})`);
  });

  test('workers 3 with 5 ms batches: never more than 3 at once, and both daemons take part', async () => {
    const rec = await client.submit({ api_name: 'sched', items: range(100), batch_size: 1, workers: 3, config: { delay_ms: 5 } });
    const final = await client.wait(rec.job_id, { intervalMs: 100, timeoutMs: 60_000 });
    assert.equal(final.status, 'succeeded');
    const list = intervals(readRecords(recordDir), rec.job_id);
    assert.equal(list.length, 100);
    assert.ok(peak(list) <= 3, `at most 3 at once, saw ${peak(list)}`);
    assert.equal(peak(list), 3, 'the cap is reached');
    const per = new Map([...daemonsOf(list)].map((d) => [d, list.filter((i) => i.daemon === d).length]));
    assert.equal(per.size, 2, `both daemons ran batches: ${JSON.stringify([...per])}`);
    // Neither daemon held the whole cap: each runs at most its 2 threads' worth.
    for (const d of per.keys()) assert.ok(peak(list.filter((i) => i.daemon === d)) <= 2, `daemon ${d} ran at most 2 at once`);
  });

  test('a daemon that joins mid-job takes a share at once; the cap still holds', async () => {
    // B and any third daemon leave; A runs the job alone (2 at a time) until C joins.
    const b = daemons.splice(1, 1)[0]!;
    await b.close();
    const rec = await client.submit({ api_name: 'sched', items: range(24), batch_size: 1, workers: 4, config: { delay_ms: 1000 } });
    await waitUntil('the job to start on A', () => intervals(readRecords(recordDir), rec.job_id).length >= 2, { timeoutMs: 20_000 });
    const joined = Date.now();
    await start('C');
    const final = await client.wait(rec.job_id, { intervalMs: 100, timeoutMs: 60_000 });
    assert.equal(final.status, 'succeeded');
    const list = intervals(readRecords(recordDir), rec.job_id);
    assert.equal(list.length, 24);
    assert.ok(peak(list) <= 4, `at most 4 at once, saw ${peak(list)}`);
    const onC = list.filter((i) => i.daemon === 'C');
    assert.ok(onC.length >= 4, `the new daemon ran ${onC.length} batches`);
    const firstOnC = Math.min(...onC.map((i) => i.start));
    assert.ok(firstOnC - joined < 2500, `the new daemon started its first batch ${firstOnC - joined} ms after it was started`);
    // From the join on, the job runs 4 at once but for its last, partial wave.
    const after = timeAtConcurrency(list, firstOnC);
    const span = after.reduce((a, b) => a + b, 0);
    assert.ok((after[4] ?? 0) / span >= 0.7, `4 at once after the join for ${after[4] ?? 0} ms of ${span} (${JSON.stringify(after)})`);
  });
});
