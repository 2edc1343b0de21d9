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
import { FIXTURES, readRecords, startDaemon, tempDir, threadsLoaded } from './helpers/daemon.js';
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
    // The first test times the first wave: it must not race the threads' boot.
    await Promise.all(daemons.map((d) => threadsLoaded(d)));
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
    // The first wave starts together; after it, each batch starts as soon as a thread of its daemon is free.
    const starts = list.map((i) => i.start).sort((a, b) => a - b);
    assert.ok(starts[3]! - starts[0]! < 500, `the first 4 batches started within ${starts[3]! - starts[0]!} ms`);
    const gaps = list.slice(4).map((i) => i.start - Math.max(...list.filter((j) => j.daemon === i.daemon && j.end <= i.start).map((j) => j.end)));
    assert.ok(Math.max(...gaps) < 150, `a thread waited up to ${Math.max(...gaps)} ms for its next batch (${gaps.join(', ')})`);
    const spent = timeAtConcurrency(list);
    const span = spent.reduce((a, b) => a + b, 0);
    assert.ok(span < 6000, `job span ${span} ms (5 s of work at 4 at once)`);
    assert.ok((spent[4] ?? 0) / span > 0.8, `4 at once for ${Math.round(((spent[4] ?? 0) / span) * 100)} % of the span (${JSON.stringify(spent)})`);
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

  test('fair share: a 50-batch job submitted behind a 5,000-batch job of the same API finishes within about 3x its time alone', async () => {
    const small = { api_name: 'sched', items: range(50), batch_size: 1, workers: 4, config: { delay_ms: 20 } };
    const t0 = Date.now();
    const alone = await client.submit(small);
    assert.equal((await client.wait(alone.job_id, { intervalMs: 50, timeoutMs: 60_000 })).status, 'succeeded');
    const aloneMs = Date.now() - t0;

    const big = await client.submit({ api_name: 'sched', items: range(5000), batch_size: 1, workers: 4, config: { delay_ms: 20 } });
    await waitUntil('the big job to be well under way', () => intervals(readRecords(recordDir), big.job_id).length >= 100, { timeoutMs: 20_000 });
    const t1 = Date.now();
    const shared = await client.submit(small);
    assert.equal((await client.wait(shared.job_id, { intervalMs: 50, timeoutMs: 60_000 })).status, 'succeeded');
    const sharedMs = Date.now() - t1;
    const bigStatus = await client.status(big.job_id);
    await client.stop(big.job_id);
    assert.ok(bigStatus.batches_in_queue > 500, `the big job still had a backlog (${bigStatus.batches_in_queue}) when the small one finished`);
    assert.ok(sharedMs <= 3 * aloneMs + 500, `alone ${aloneMs} ms, next to a 5,000-batch job ${sharedMs} ms`);
    // Both jobs ran side by side while the small one had work: the threads were shared, not handed over.
    const smallList = intervals(readRecords(recordDir), shared.job_id);
    const from = Math.min(...smallList.map((i) => i.start));
    const to = Math.max(...smallList.map((i) => i.end));
    const bigDuring = intervals(readRecords(recordDir), big.job_id).filter((i) => i.start >= from && i.start < to).length;
    assert.ok(bigDuring > 0, 'the big job kept running while the small one ran');
  });

  test('priority: a priority-10 job starts within 1 s behind a 2,000-batch backlog, and the backlog still progresses on the threads it cannot use', async () => {
    const low = await client.submit({ api_name: 'sched', items: range(2000), batch_size: 1, workers: 8, config: { delay_ms: 20 } });
    await waitUntil('the backlog to be running', () => intervals(readRecords(recordDir), low.job_id).length >= 100, { timeoutMs: 20_000 });
    const submitted = Date.now();
    const high = await client.submit({ api_name: 'sched', items: range(10), batch_size: 1, workers: 1, priority: 10, config: { delay_ms: 200 } });
    const returned = Date.now();
    const final = await client.wait(high.job_id, { intervalMs: 50, timeoutMs: 60_000 });
    const lowStatus = await client.status(low.job_id);
    await client.stop(low.job_id);
    assert.equal(final.status, 'succeeded');
    assert.equal(final.priority, 10);
    const highList = intervals(readRecords(recordDir), high.job_id);
    const first = Math.min(...highList.map((i) => i.start));
    assert.ok(first - returned < 1000, `first priority-10 batch started ${first - returned} ms after submit returned (${returned - submitted} ms to submit)`);
    assert.equal(peak(highList), 1, 'its workers cap of 1 holds');
    // Its 10 batches of 200 ms ran back to back: each next one started as soon as a thread was free, ahead of the
    // backlog's batches waiting there (TaskGate). When tasks waited in Piscina's own queue instead, later ones passed
    // them: gaps of 0.3-0.9 s were common (10 x 200 ms took 2.2-3.7 s), one of 6.5 s was seen.
    const last = Math.max(...highList.map((i) => i.end));
    const sorted = [...highList].sort((a, b) => a.start - b.start);
    const gaps = sorted.slice(1).map((i, k) => i.start - sorted[k]!.end);
    assert.ok(last - first < 10 * 200 + 700, `10 x 200 ms took ${last - first} ms (gaps ${gaps.join(', ')} ms)`);
    // The priority-0 job kept the 3 threads the priority-10 job could not use.
    const lowList = intervals(readRecords(recordDir), low.job_id);
    const lowDuring = timeAtConcurrency(lowList, first, last);
    const busy = lowDuring.reduce((sum, ms, k) => sum + ms * k, 0) / (last - first);
    assert.ok(busy >= 2, `the backlog ran ${busy.toFixed(2)} batches at once on average meanwhile (${JSON.stringify(lowDuring)})`);
    assert.ok(lowStatus.batches_in_queue > 0, 'the backlog was still there when the priority job finished');
  });

  test('onJobComplete takes a lane like a batch: no batch is pulled to wait behind a long hook', async () => {
    const hooked = await client.submit({ api_name: 'sched', items: [0], batch_size: 1, workers: 1, config: { hook_ms: 3000 } });
    await waitUntil('the hook to start', () => readRecords(recordDir).some((r) => r.job === hooked.job_id && r.ev === 'hook-start'), { timeoutMs: 20_000 });
    const job = await client.submit({ api_name: 'sched', items: range(6), batch_size: 1, workers: 3, config: { delay_ms: 1000 } });
    assert.equal((await client.wait(job.job_id, { intervalMs: 100, timeoutMs: 60_000 })).status, 'succeeded');
    assert.equal((await client.wait(hooked.job_id, { intervalMs: 100, timeoutMs: 60_000 })).status, 'succeeded');
    const records = readRecords(recordDir);
    const hook = records.find((r) => r.job === hooked.job_id && r.ev === 'hook-start')!;
    const hookEnd = records.find((r) => r.job === hooked.job_id && r.ev === 'complete')!.t as number;
    const list = intervals(records, job.job_id);
    const starts = list.map((i) => i.start).sort((a, b) => a - b);
    assert.ok(starts[2]! < hookEnd, 'the job ran 3 at once while the hook still ran');
    assert.ok(peak(list) === 3, `the job ran 3 at once (saw ${peak(list)})`);
    // On the hook's daemon only one lane was free: it never ran two of the job's batches at once meanwhile.
    const onHookDaemon = list.filter((i) => i.daemon === String(hook.tag) && i.start < hookEnd);
    assert.ok(peak(onHookDaemon) <= 1, `the hook's daemon ran ${peak(onHookDaemon)} at once beside its hook`);
    // 6 batches at 3 at once: two waves, the second starting as the first ends (none waited behind the hook).
    assert.ok(starts[5]! - starts[0]! < 1500, `the last batch started ${starts[5]! - starts[0]!} ms after the first`);
  });
});
