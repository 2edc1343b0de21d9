/** Metrics over real HTTP, valid exposition, and logs from worker threads with protected metadata. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { JetbatchClient } from '../src/client/client.js';
import type { Daemon } from '../src/daemon/daemon.js';
import { DaemonProcess, FIXTURES, startDaemon } from './helpers/daemon.js';
import { NatsServer } from './helpers/nats-server.js';
import { parseExposition, valueOf, type Exposition } from './helpers/prometheus.js';
import { waitUntil } from './helpers/wait.js';

async function scrape(daemon: Daemon): Promise<Exposition> {
  const a = daemon.metricsAddress!;
  const res = await fetch(`http://${a.host}:${a.port}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
  return parseExposition(await res.text());
}

describe('metrics and health endpoints', () => {
  let server: NatsServer;
  let daemon: Daemon;
  let client: JetbatchClient;

  before(async () => {
    server = await NatsServer.start();
    daemon = await startDaemon(server.url, [
      { name: 'always-throws', project: join(FIXTURES, 'always-throws'), threads: 2, max_attempts: 3, backoff: { initial: '20ms', factor: 1, max: '20ms', jitter: 0 } },
      { name: 'recorder', project: join(FIXTURES, 'recorder'), threads: 2 },
    ]);
    client = await JetbatchClient.connect({ servers: [server.url] });
  });

  after(async () => {
    await client?.close();
    await daemon?.close();
    await server?.dispose();
  });

  test('/healthz and /readyz answer; unknown paths 404', async () => {
    const a = daemon.metricsAddress!;
    assert.equal(a.host, '127.0.0.1', 'loopback by default in tests');
    assert.equal((await fetch(`http://${a.host}:${a.port}/healthz`)).status, 200);
    // Ready once a thread of every pool has loaded its task loop; until then 503, for that reason only.
    const before: string[] = [];
    await waitUntil('/readyz to answer 200', async () => {
      const res = await fetch(`http://${a.host}:${a.port}/readyz`);
      const body = (await res.json()) as { ready: boolean; reasons: string[] };
      if (res.status === 200) {
        assert.deepEqual(body, { ready: true, reasons: [] });
        return true;
      }
      assert.equal(res.status, 503);
      before.push(...body.reasons);
      return false;
    }, { timeoutMs: 30_000, intervalMs: 20 });
    for (const reason of before) assert.match(reason, /^pool (always-throws|recorder) has no threads$/);
    assert.equal((await fetch(`http://${a.host}:${a.port}/nope`)).status, 404);
  });

  test('counts, types and labels match what the job did, during and after it', async () => {
    const dir = (await import('node:fs')).mkdtempSync(join((await import('node:os')).tmpdir(), 'obs-'));
    const slow = await client.submit({ api_name: 'recorder', items: Array.from({ length: 12 }, (_, i) => i), batch_size: 1, workers: 2, config: { record_dir: dir, delay_ms: 300 } });
    // The job reaches the metrics asynchronously: the queue depth is polled in the background (every check interval, at
    // least 1 s) and job statuses follow the registry. Wait for a scrape in which both lanes run, the poll has seen the
    // job (the recorder API has no other batches) and the job shows as running. No scrape ever shows more in flight.
    let seen = 'no scrape yet';
    const during = await waitUntil('a scrape showing the job running, in the queue depth, with 2 batches in flight', async () => {
      const exp = await scrape(daemon);
      const inFlight = valueOf(exp, 'jetbatch_batches_in_flight', { api_name: 'recorder' });
      const queued = valueOf(exp, 'jetbatch_queue_depth', { api_name: 'recorder' });
      const running = valueOf(exp, 'jetbatch_jobs', { api_name: 'recorder', status: 'running' });
      seen = `in flight ${inFlight}, queue depth ${queued}, jobs{running} ${running}`;
      assert.ok((inFlight ?? 0) <= 2, `never more than workers=2 batches in flight: ${seen}`);
      return inFlight === 2 && (queued ?? 0) > 0 && (running ?? 0) >= 1 ? exp : undefined;
    }, { timeoutMs: 10_000, detail: () => `last scrape: ${seen}` });
    assert.equal(valueOf(during, 'jetbatch_batches_in_flight', { api_name: 'recorder' }), 2, 'two batches in flight (workers=2)');
    const depth = valueOf(during, 'jetbatch_queue_depth', { api_name: 'recorder' }) ?? -1;
    assert.ok(depth > 2 && depth <= 12, `queue depth ${depth}`);
    assert.ok((valueOf(during, 'jetbatch_jobs', { api_name: 'recorder', status: 'running' }) ?? 0) >= 1);
    await client.wait(slow.job_id, { intervalMs: 100, timeoutMs: 30_000 });

    const job = await client.submit({ api_name: 'always-throws', batches: Array.from({ length: 8 }, (_, i) => [i]), workers: 4, config: { fail: ['2', '5'] } });
    const final = await client.wait(job.job_id, { intervalMs: 100, timeoutMs: 30_000 });
    assert.equal(final.status, 'completed_with_failures');
    // The job's end reaches the metrics asynchronously: the registry watch (jetbatch_jobs) and the queue-depth poll (at
    // least every 1 s). Wait until a scrape shows the ended job, nothing in flight and an empty queue.
    let last = 'no scrape yet';
    const exp = await waitUntil('a scrape showing the job ended, nothing in flight and no queue', async () => {
      const e = await scrape(daemon);
      const figures = [
        valueOf(e, 'jetbatch_jobs', { api_name: 'always-throws', status: 'completed_with_failures' }),
        valueOf(e, 'jetbatch_batches_in_flight', { api_name: 'always-throws' }),
        valueOf(e, 'jetbatch_queue_depth', { api_name: 'always-throws' }),
      ];
      last = `jobs{completed_with_failures} ${figures[0]}, in flight ${figures[1]}, queue depth ${figures[2]}`;
      return figures[0] === 1 && figures[1] === 0 && figures[2] === 0 ? e : undefined;
    }, { timeoutMs: 10_000, detail: () => `last scrape: ${last}` });
    assert.equal(valueOf(exp, 'jetbatch_ready'), 1);
    assert.equal(exp.types.get('jetbatch_batches_total'), 'counter');
    assert.equal(exp.types.get('jetbatch_batch_duration_seconds'), 'histogram');
    assert.equal(exp.types.get('jetbatch_batches_in_flight'), 'gauge');
    const api = { api_name: 'always-throws' };
    assert.equal(valueOf(exp, 'jetbatch_batches_total', { ...api, outcome: 'succeeded' }), 6);
    assert.equal(valueOf(exp, 'jetbatch_batches_total', { ...api, outcome: 'retried' }), 4, '2 batches × 2 retried attempts');
    assert.equal(valueOf(exp, 'jetbatch_batches_total', { ...api, outcome: 'dead_lettered' }), 2);
    assert.equal(valueOf(exp, 'jetbatch_batch_duration_seconds_count', api), 12, 'every attempt timed');
    assert.equal(valueOf(exp, 'jetbatch_batch_duration_seconds_bucket', { ...api, le: '+Inf' }), 12);
    assert.equal(valueOf(exp, 'jetbatch_redeliveries_total', api), 4);
    assert.equal(valueOf(exp, 'jetbatch_batches_in_flight', api), 0);
    assert.equal(valueOf(exp, 'jetbatch_queue_depth', api), 0);
    assert.equal(valueOf(exp, 'jetbatch_jobs', { ...api, status: 'completed_with_failures' }), 1);
    assert.equal(valueOf(exp, 'jetbatch_pool_threads', api), 2);
    assert.ok((valueOf(exp, 'jetbatch_handler_init_seconds_count', api) ?? 0) >= 1);
    assert.equal(valueOf(exp, 'jetbatch_nats_connected'), 1);
    assert.ok(exp.types.has('process_cpu_user_seconds_total'), 'Node default metrics');
    const labelNames = new Set(exp.samples.filter((s) => s.name.startsWith('jetbatch_')).flatMap((s) => Object.keys(s.labels)));
    for (const l of labelNames) assert.ok(['api_name', 'outcome', 'status', 'reason', 'le', 'kind'].includes(l), `bounded label set, found ${l}`);
    assert.ok(!exp.samples.some((s) => Object.values(s.labels).includes(job.job_id)), 'no job ids in labels');
  });
});

describe('logs from worker threads', () => {
  let server: NatsServer;
  let daemon: DaemonProcess | undefined;
  let client: JetbatchClient;
  const token = 'nats-token-s3cr3t-4242';

  before(async () => {
    server = await NatsServer.start({ config: `authorization { token: "${token}" }` });
    daemon = await DaemonProcess.spawn(`nats://${token}@127.0.0.1:${server.port}`, [
      { name: 'logger', project: join(FIXTURES, 'logger'), threads: 2, batch_timeout: '1s', max_attempts: 1 },
    ], { nats: { servers: [`nats://127.0.0.1:${server.port}`], token }, log_max_line_bytes: 100_000 });
    client = await JetbatchClient.connect({ servers: [server.url], token });
  });

  after(async () => {
    await client?.close();
    if (daemon) assert.equal(await daemon.kill('SIGTERM'), 0, daemon.output);
    await server?.dispose();
  });

  test('handler lines carry api_name, job_id, batch_id, worker and host that the handler cannot overwrite', async () => {
    const job = await client.submit({ api_name: 'logger', batches: [[1], [2, 3], [4]], workers: 3 });
    const final = await client.wait(job.job_id, { intervalMs: 100, timeoutMs: 30_000 });
    assert.equal(final.status, 'completed_with_failures', 'batch 2 times out');
    await daemon!.waitFor(/about to spin/, 5000);
    const lines = daemon!.output.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    const hello = lines.filter((l) => l.msg === 'hello from the handler');
    assert.equal(hello.length, 3);
    for (const l of hello) {
      assert.equal(l.api_name, 'logger');
      assert.equal(l.job_id, job.job_id);
      assert.ok(['0', '1', '2'].includes(l.batch_id as string));
      assert.equal(typeof l.worker, 'number');
      assert.notEqual(l.worker, 999);
      assert.notEqual(l.host, 'evil');
      assert.equal(l.custom, 'kept');
    }
    const child = lines.filter((l) => l.msg === 'from a child logger');
    assert.equal(child.length, 3);
    for (const l of child) {
      assert.equal(l.job_id, job.job_id);
      assert.equal(l.extra, 'child-binding');
    }
    const raw = daemon!.output;
    assert.ok(!/"job_id":"evil/.test(raw), 'reserved keys never appear with the handler’s values, not even as duplicates');
    const init = lines.find((l) => l.msg === 'constructed');
    assert.equal(init?.job_id, job.job_id);
    assert.equal(init?.batch_id, undefined);
    const spun = lines.find((l) => l.msg === 'about to spin');
    assert.equal(spun?.batch_id, '2', 'a line logged just before the thread was terminated is not lost');
    const daemonLine = lines.find((l) => l.msg === 'daemon started');
    assert.equal(daemonLine?.worker, 'main');
    assert.equal(typeof daemonLine?.host, 'string');
  });

  test('an oversized line is replaced by a warning and nothing blocks', async () => {
    const lines = daemon!.output.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    const dropped = lines.find((l) => typeof l.msg === 'string' && (l.msg as string).startsWith('log line dropped'));
    assert.ok(dropped, 'a warning replaces the oversized line');
    assert.equal(dropped.level, 40);
    assert.equal(dropped.batch_id, '1');
    assert.equal(dropped.original_msg, 'oversized');
    assert.ok((dropped.dropped_bytes as number) > 300_000);
    assert.ok(!lines.some((l) => typeof l.blob === 'string'));
    const again = await client.submit({ api_name: 'logger', batches: [[1]] });
    assert.equal((await client.wait(again.job_id, { intervalMs: 100, timeoutMs: 30_000 })).status, 'succeeded');
  });

  test('secrets from .env and NATS credentials never appear in logs; handler metrics reach /metrics', async () => {
    assert.ok(!daemon!.output.includes(token), 'NATS token not logged');
    assert.ok(!daemon!.output.includes('s3cr3t-dotenv-value'), '.env values not logged');
    const started = daemon!.output.split('\n').find((l) => l.includes('"daemon started"'));
    const port = (JSON.parse(started!) as { metrics: { port: number } }).metrics.port;
    const exp = parseExposition(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
    assert.equal(exp.types.get('jetbatch_handler_items_seen'), 'counter');
    // Batches 0, 1 and the second job's batch record 1 + 2 + 1 items; batch 2's update was posted right before its
    // thread spun and was terminated, so it may or may not have left the thread (documented).
    const seen = valueOf(exp, 'jetbatch_handler_items_seen', { api_name: 'logger', kind: 'test' });
    assert.ok(seen === 4 || seen === 5, `items_seen ${seen}`);
    const observed = valueOf(exp, 'jetbatch_handler_batch_size_count', { api_name: 'logger' });
    assert.ok(observed === 3 || observed === 4, `batch_size count ${observed}`);
    assert.ok(!exp.samples.some((s) => s.name.includes('Bad')), 'an invalid name is dropped');
    assert.ok(daemon!.output.includes('handler metric dropped'));
    assert.ok(!(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).includes(token));
  });
});

describe('metrics disabled', () => {
  let server: NatsServer;
  let daemon: Daemon | undefined;

  before(async () => {
    server = await NatsServer.start();
  });

  after(async () => {
    await daemon?.close();
    await server?.dispose();
  });

  test("collects jetbatch's own metrics but not the process ones, whose event-loop monitor wakes the main thread every 10 ms", async () => {
    daemon = await startDaemon(server.url, [{ name: 'quiet', project: join(FIXTURES, 'recorder'), threads: 1 }], { metrics: { enabled: false } });
    assert.equal(daemon.metricsAddress, undefined, 'no endpoint');
    const registry = daemon.metrics.registry;
    assert.ok(registry.getSingleMetric('jetbatch_batches_total') !== undefined, 'its own metrics stay');
    for (const name of ['nodejs_eventloop_lag_p99_seconds', 'nodejs_gc_duration_seconds', 'process_cpu_user_seconds_total']) {
      assert.equal(registry.getSingleMetric(name), undefined, `${name} not collected`);
    }
  });
});
