/**
 * Chaos: three daemon processes on a three-node JetStream cluster (replicas 3). During one job, daemons are killed
 * with SIGKILL and restarted, and a NATS node is killed and restarted. The invariants are checked exactly.
 * Size: CHAOS_BATCHES (default 1,500 in `npm test`; `npm run test:chaos` uses 5,000).
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { JetbatchClient } from '../src/client/client.js';
import { DaemonProcess, FIXTURES, tempDir, type TestApi } from './helpers/daemon.js';
import { NatsCluster } from './helpers/nats-cluster.js';
import { parseExposition, valueOf } from './helpers/prometheus.js';
import { waitUntil } from './helpers/wait.js';

const BATCHES = Number(process.env.CHAOS_BATCHES ?? 1500);
const ALWAYS = 97;
const THREADS = 2;

describe(`chaos: ${BATCHES} batches, 3 daemons, 3-node cluster`, () => {
  let cluster: NatsCluster;
  const daemons: DaemonProcess[] = [];
  /** Every daemon process of the run, killed ones included, so a failure can show their logs. */
  const everyDaemon: DaemonProcess[] = [];
  let client: JetbatchClient;
  const recordDir = tempDir('jetbatch-chaos-');
  let api: TestApi;

  const spawn = (i: number): Promise<DaemonProcess> => {
    // Each daemon lists the nodes in a different order, so connections spread over the cluster.
    const servers = [...cluster.urls.slice(i % 3), ...cluster.urls.slice(0, i % 3)];
    return DaemonProcess.spawn(servers[0]!, [api], { nats: { servers }, replicas: 3 }).then((d) => {
      everyDaemon.push(d);
      return d;
    });
  };

  before(async () => {
    cluster = await NatsCluster.start();
    api = {
      name: 'chaos',
      project: join(FIXTURES, 'chaos'),
      threads: THREADS,
      max_attempts: 3,
      backoff: { initial: '20ms', factor: 2, max: '200ms', jitter: 0.2 },
      config: { record_dir: recordDir, always_fail_mod: ALWAYS, fail_once_mod: 10, delay_ms: 2 },
    };
    for (let i = 0; i < 3; i++) daemons.push(await spawn(i));
    client = await JetbatchClient.connect({ servers: cluster.urls });
  });

  after(async () => {
    await client?.close();
    for (const d of daemons) await d.kill('SIGKILL');
    await cluster?.dispose();
  });

  test('every batch succeeds or is dead-lettered exactly; onJobComplete once; no leaks', async () => {
    const started = Date.now();
    const job = await client.submit({ api_name: 'chaos', items: Array.from({ length: BATCHES * 2 }, (_, i) => i), batch_size: 2, workers: 6 });
    const events: string[] = [];
    const progress = async (): Promise<number> => {
      const s = await client.status(job.job_id).catch(() => null);
      return s === null ? 0 : (s.batch_metrics.succeeded + s.batch_metrics.failed) / BATCHES;
    };
    let last = 0;
    const until = async (fraction: number): Promise<void> => {
      await waitUntil(`the job to reach ${fraction} of its batches`, async () => (last = await progress()) >= fraction, {
        timeoutMs: 120_000,
        intervalMs: 200,
        detail: () => `at ${last.toFixed(2)}; events: ${events.join(', ')}`,
      });
    };
    const killAndRestart = async (i: number): Promise<void> => {
      const at = await progress();
      await daemons[i]!.kill('SIGKILL');
      events.push(`kill -9 daemon ${i} at ${at.toFixed(2)}`);
      // Not a synchronization: the fleet runs without this daemon for a while (part of the chaos), then it comes back.
      await new Promise((r) => setTimeout(r, 500));
      daemons[i] = await spawn(i);
    };
    await until(0.15);
    await killAndRestart(0);
    await until(0.35);
    const before = await progress();
    await cluster.nodes[1]!.stop('SIGKILL');
    events.push(`NATS node 2 killed at ${before.toFixed(2)}`);
    // Not a synchronization: a 2 s outage of one node is the chaos under test.
    await new Promise((r) => setTimeout(r, 2000));
    await cluster.nodes[1]!.restart();
    events.push('NATS node 2 restarted');
    await until(0.55);
    await killAndRestart(1);

    const final = await client.wait(job.job_id, { intervalMs: 250, timeoutMs: 600_000 });
    const seconds = (Date.now() - started) / 1000;

    const expectedFailed = new Set(Array.from({ length: BATCHES }, (_, i) => i).filter((i) => i % ALWAYS === 3).map(String));
    const letters = await client.deadLetters(job.job_id);
    const letterIds = letters.map((l) => l.batch_id);
    const resultIds = new Set<string>();
    for await (const r of client.results(job.job_id)) resultIds.add(r.batch_id);
    const hooks = readFileSync(join(recordDir, 'complete.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { ev: string; pid: number; attempt: number; rerun: boolean });

    const metrics = [];
    for (const d of daemons) {
      const line = d.output.split('\n').find((l) => l.includes('"daemon started"'));
      const port = line === undefined ? undefined : (JSON.parse(line) as { metrics: { port: number } }).metrics.port;
      if (port === undefined) continue;
      // A thread replaced near the end counts once it has loaded (a few hundred ms): wait for it, up to 15 s.
      const scrape = async () => parseExposition(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
      let exp = await scrape();
      for (const deadline = Date.now() + 15_000; valueOf(exp, 'jetbatch_pool_threads', { api_name: 'chaos' }) !== THREADS && Date.now() < deadline;) {
        await new Promise((r) => setTimeout(r, 100));
        exp = await scrape();
      }
      metrics.push({
        threads: valueOf(exp, 'jetbatch_pool_threads', { api_name: 'chaos' }),
        in_flight: valueOf(exp, 'jetbatch_batches_in_flight', { api_name: 'chaos' }),
        rss_mib: Math.round((valueOf(exp, 'process_resident_memory_bytes') ?? 0) / 1048576),
      });
    }
    const figures = {
      batches: BATCHES,
      seconds: Number(seconds.toFixed(1)),
      status: final.status,
      succeeded: final.batch_metrics.succeeded,
      failed: final.batch_metrics.failed,
      expected_failed: expectedFailed.size,
      dead_letters: letters.length,
      distinct_results: resultIds.size,
      on_job_complete_runs: hooks.filter((h) => h.ev === 'hook-end').length,
      hooks: hooks.map((h) => `${h.ev} pid ${h.pid} attempt ${h.attempt}${h.rerun ? ' rerun' : ''}`),
      claim: final.status === 'completed_with_failures' ? (await client.record(job.job_id)).completion : null,
      events,
      daemons: metrics,
    };
    console.log(`chaos figures: ${JSON.stringify(figures)}`);
    // A failure explains itself: CHAOS_LOG_DIR keeps every daemon's log; the assertion below shows the completion.
    if (process.env.CHAOS_LOG_DIR !== undefined) {
      everyDaemon.forEach((d, i) => writeFileSync(join(process.env.CHAOS_LOG_DIR!, `daemon-${i}.log`), d.output));
    }
    const completionLog = everyDaemon
      .flatMap((d) => d.output.split('\n'))
      .filter((l) => l.includes(job.job_id) && /"claim_attempt"|job check failed/.test(l))
      .join('\n');

    assert.equal(final.status, 'completed_with_failures');
    assert.equal(final.batch_metrics.succeeded + final.batch_metrics.failed, BATCHES);
    assert.equal(final.batch_metrics.failed, expectedFailed.size);
    assert.equal(letters.length, expectedFailed.size, 'one dead letter per failed batch, no duplicates');
    assert.deepEqual(new Set(letterIds), expectedFailed);
    assert.equal(resultIds.size, BATCHES - expectedFailed.size);
    for (const id of expectedFailed) assert.ok(!resultIds.has(id), `failed batch ${id} has no result`);
    assert.equal(hooks.filter((h) => h.ev === 'hook-end').length, 1, `onJobComplete ran once; the completion as the daemons logged it:\n${completionLog}`);
    for (const m of metrics) {
      assert.equal(m.threads, THREADS, 'threads replaced, none leaked');
      assert.equal(m.in_flight, 0);
      assert.ok(m.rss_mib < 1024, `daemon RSS ${m.rss_mib} MiB`);
    }
  });
});
