/**
 * Outputs at scale (issue #16, item 3), on a real nats-server and real worker threads: a job with `output` writes
 * one part per batch and a manifest before its final status, over file:// and obj://; a result far above NATS'
 * max_payload; `jetbatch results` (child process) reading either source, `--per-item` in input order; the final
 * status's `results_stored` for both sources; a failing write retried until it lands.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { text } from 'node:stream/consumers';
import { JetbatchClient } from '../src/client/client.js';
import type { Daemon } from '../src/daemon/daemon.js';
import { JetbatchError } from '../src/errors.js';
import { countSubject } from '../src/fleet/progress.js';
import { openContext } from '../src/fleet/context.js';
import { Streams, Subjects, encodeValue, resultBatchOf, resultMsgId } from '../src/fleet/protocol.js';
import { OutputWriter } from '../src/daemon/batches/output-writer.js';
import { writeFailure } from '../src/daemon/batches/settle.js';
import { normalizeOutput, partName, resultLine, type ManifestRecord } from '../src/fleet/output.js';
import { perItem } from '../src/client/results.js';
import { resultViews } from '../src/ui/details.js';
import type { BatchResult, JobRecord, JobSummary } from '../src/types.js';
import { storeFor } from '../src/stores/index.js';
import type { JobStatus } from '../src/types.js';
import { FIXTURES, startDaemon, tempDir } from './helpers/daemon.js';
import { runCli } from './helpers/cli.js';
import { NatsServer } from './helpers/nats-server.js';
import { waitUntil } from './helpers/wait.js';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { S3Server } from './helpers/s3-server.js';

const PART = (n: number): string => `part-${String(n).padStart(12, '0')}.jsonl`;

describe('outputs, offline: names, values, per item', () => {
  test('part names are the batch id zero-padded to 12 digits, so byte order is batch order', () => {
    assert.equal(partName('0'), 'part-000000000000.jsonl');
    assert.equal(partName('42'), 'part-000000000042.jsonl');
    assert.equal(partName('999999'), 'part-000000999999.jsonl');
    assert.equal(partName('seq-7'), null);
    const names = ['10', '9', '100', '2'].map((id) => partName(id)!);
    assert.deepEqual([...names].sort(), ['2', '9', '10', '100'].map((id) => partName(id)!));
  });

  test('an output is stored as a prefix; other URLs are refused', () => {
    assert.equal(normalizeOutput('file:///data/out'), 'file:///data/out/');
    assert.equal(normalizeOutput('obj://B/p'), 'obj://B/p/');
    assert.equal(normalizeOutput('s3://bucket/'), 's3://bucket/');
    for (const bad of ['http://x/y/', 'file://host/x/', 'obj://B/../x/', 's3://UP/x/']) assert.throws(() => normalizeOutput(bad), { code: 'JB_INVALID_STORE_URL' });
  });

  test('a batch id with no part name fails for good (JB_INVALID_SUBMISSION); a store failure is retried', async () => {
    const writer = new OutputWriter('file:///nonexistent-jetbatch-out/', {});
    const id = { apiName: 'a', jobId: 'j', batchId: 'seq-7', generation: 0 };
    const err = await writer.write(id, 1, 5, encodeValue([1])).then(() => null, (e: unknown) => e);
    assert.ok(err instanceof JetbatchError && err.code === 'JB_INVALID_SUBMISSION', String(err));
    assert.equal(writeFailure(5, err).error.permanent, true);
    const missing = await writer.write({ ...id, batchId: '7' }, 1, 5, encodeValue([1])).then(() => null, (e: unknown) => e);
    assert.ok(missing instanceof JetbatchError && missing.code === 'JB_STORE_NOT_FOUND', String(missing));
    assert.equal(writeFailure(5, missing).error.permanent, false);
    await writer.close();
  });

  test('the batch id of a result\'s Nats-Msg-Id: one parser for every reader', () => {
    assert.deepEqual(resultBatchOf(resultMsgId('job-1', '42', 0)), { batchId: '42', index: 42 });
    assert.deepEqual(resultBatchOf(resultMsgId('job-1', '7', 3)), { batchId: '7', index: 7 });
    assert.deepEqual(resultBatchOf(resultMsgId('j', 'a:b', 1)), { batchId: 'a:b', index: null });
    assert.deepEqual(resultBatchOf(resultMsgId('j', '1234567890123456', 0)), { batchId: '1234567890123456', index: null });
    for (const bad of ['', 'j', 'j:1', ':1:0', 'j::0', 'j:1:x']) assert.equal(resultBatchOf(bad), null, bad);
  });

  test('result lines are JSON: big integers as strings, binary as base64', () => {
    const line = resultLine({ a: 2n ** 60n, b: 7n, c: new Uint8Array([1, 2, 255]) });
    assert.deepEqual(JSON.parse(line), { a: '1152921504606846976', b: 7, c: { $binary: 'AQL/' } });
    assert.ok(line.endsWith('\n'));
  });

  test('per item: indices from batch id × batch_size; refused without a fixed batch size or one value per item', async () => {
    const record = { job_id: 'j', batch_size: 3, total_batch_count: 3 } as JobRecord;
    const of = async function* (rs: Array<[string, unknown]>): AsyncGenerator<BatchResult> {
      for (const [batch_id, result] of rs) yield { job_id: 'j', batch_id, result, duration_ms: 1, attempt: 1 };
    };
    const collect = async (rec: JobRecord, rs: Array<[string, unknown]>): Promise<unknown[]> => {
      const out: unknown[] = [];
      for await (const v of perItem(rec, of(rs))) out.push([v.item_index, v.result]);
      return out;
    };
    assert.deepEqual(await collect(record, [['0', ['a', 'b', 'c']], ['2', ['g']]]), [[0, 'a'], [1, 'b'], [2, 'c'], [6, 'g']]);
    await assert.rejects(collect(record, [['0', ['a', 'b']]]), { code: 'JB_PER_ITEM_UNAVAILABLE' });
    await assert.rejects(collect(record, [['2', 'not an array']]), { code: 'JB_PER_ITEM_UNAVAILABLE' });
    await assert.rejects(collect({ ...record, batch_size: null }, [['0', [1]]]), { code: 'JB_PER_ITEM_UNAVAILABLE' });
  });
});

describe('outputs: results written to stores', () => {
  let server: NatsServer;
  let daemon: Daemon;
  let client: JetbatchClient;
  let nc: NatsConnection;
  let s3: S3Server;
  const dirs: string[] = [];
  const savedEnv = { ...process.env };

  before(async () => {
    [server, s3] = await Promise.all([NatsServer.start(), S3Server.start(['results'])]);
    // The daemon gets the S3 server from its config; the CLI children from the AWS environment variables.
    Object.assign(process.env, s3.env);
    daemon = await startDaemon(server.url, [{ name: 'outputs', project: join(FIXTURES, 'outputs'), threads: 2 }], {
      s3: { endpoint: s3.endpoint, access_key_id: 'S3RVER', secret_access_key: 'S3RVER' },
    });
    client = await JetbatchClient.connect({ servers: [server.url] });
    nc = await connect({ servers: server.url });
  });

  after(async () => {
    await client?.close();
    await nc?.close();
    await daemon?.close();
    await server?.dispose();
    await s3?.dispose();
    for (const k of Object.keys(process.env)) if (!(k in savedEnv)) delete process.env[k];
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  function outDir(): { dir: string; url: string } {
    const dir = tempDir('jetbatch-out-');
    dirs.push(dir);
    return { dir, url: pathToFileURL(dir).href + '/' };
  }

  async function finished(jobId: string): Promise<JobStatus> {
    return client.wait(jobId, { timeoutMs: 120_000, intervalMs: 100 });
  }

  async function resultsInStream(api: string, jobId: string): Promise<number> {
    return countSubject(await openContext(nc), Streams.results, Subjects.result(api, jobId));
  }

  test('file://: one part per batch, named in batch order, and an exact manifest; nothing in the results stream', async () => {
    const { dir, url } = outDir();
    const items = Array.from({ length: 1000 }, (_, i) => i);
    const summaries = tempDir();
    const record = await client.submit({ api_name: 'outputs', items, batch_size: 7, workers: 4, output: url, config: { summary_dir: summaries } });
    assert.equal(record.output, url);
    assert.equal(record.batch_size, 7);
    const status = await finished(record.job_id);
    assert.equal(status.status, 'succeeded');
    assert.equal(status.results_stored, 143);
    assert.equal(status.output, url);
    // onJobComplete ran after the manifest was written, and its summary says where the results are and how many.
    const hook = JSON.parse(readFileSync(join(summaries, `${record.job_id}.json`), 'utf8')) as { summary: JobSummary; manifest_written: boolean };
    assert.deepEqual([hook.summary.output, hook.summary.results_stored, hook.manifest_written], [url, 143, true]);

    const jobDir = join(dir, record.job_id);
    const names = readdirSync(jobDir).sort();
    const parts = Array.from({ length: 143 }, (_, n) => PART(n));
    assert.deepEqual(names, [...parts, 'manifest.json'].sort());
    for (let n = 0; n < 143; n++) {
      const lines = readFileSync(join(jobDir, PART(n)), 'utf8').split('\n');
      assert.equal(lines.length, 2, 'one line per part, newline-terminated');
      const r = JSON.parse(lines[0]!) as { job_id: string; batch_id: string; result: number[]; attempt: number };
      assert.equal(r.job_id, record.job_id);
      assert.equal(r.batch_id, String(n));
      assert.deepEqual(r.result, items.slice(n * 7, n * 7 + 7).map((x) => x * 2));
    }
    const manifest = JSON.parse(readFileSync(join(jobDir, 'manifest.json'), 'utf8')) as ManifestRecord;
    assert.equal(manifest.job_id, record.job_id);
    assert.equal(manifest.status, 'succeeded');
    assert.equal(manifest.total_batch_count, 143);
    assert.deepEqual(manifest.batch_metrics, { succeeded: 143, failed: 0 });
    assert.equal(manifest.dead_letters, 0);
    assert.equal(manifest.results_stored, 143);
    assert.deepEqual(manifest.parts, parts);
    assert.equal(manifest.batch_size, 7);
    assert.equal(await resultsInStream('outputs', record.job_id), 0);

    // The CLI reads the parts back in batch order, and per item in input order with indices.
    const cli = await runCli(['results', record.job_id], server.url);
    assert.equal(cli.code, 0, cli.stderr);
    const lines = cli.stdout.trim().split('\n').map((l) => JSON.parse(l) as { batch_id: string });
    assert.deepEqual(lines.map((l) => l.batch_id), parts.map((_, n) => String(n)));
    const perItem = await runCli(['results', record.job_id, '--per-item'], server.url);
    assert.equal(perItem.code, 0, perItem.stderr);
    const itemLines = perItem.stdout.trim().split('\n').map((l) => JSON.parse(l) as { item_index: number; batch_id: string; result: number });
    assert.equal(itemLines.length, 1000);
    itemLines.forEach((l, i) => {
      assert.equal(l.item_index, i);
      assert.equal(l.batch_id, String(Math.floor(i / 7)));
      assert.equal(l.result, i * 2);
    });
  });

  test('obj://: parts and manifest in the NATS Object Store, read back by the CLI', async () => {
    const url = 'obj://jetbatch-test-out/nightly/';
    const items = Array.from({ length: 50 }, (_, i) => i);
    const record = await client.submit({ api_name: 'outputs', items, batch_size: 4, workers: 2, output: url });
    const status = await finished(record.job_id);
    assert.equal(status.status, 'succeeded');
    assert.equal(status.results_stored, 13);
    const store = await storeFor(url, { js: (await openContext(nc)).js });
    try {
      const listed: string[] = [];
      for await (const o of store.list(`${url}${record.job_id}/`)) listed.push(o.url.slice(o.url.lastIndexOf('/') + 1));
      const parts = Array.from({ length: 13 }, (_, n) => PART(n));
      assert.deepEqual(listed, ['manifest.json', ...parts].sort());
      const manifest = JSON.parse(await text(await store.open(`${url}${record.job_id}/manifest.json`))) as ManifestRecord;
      assert.equal(manifest.results_stored, 13);
      assert.deepEqual(manifest.parts, parts);
      assert.equal(manifest.dead_letters, 0);
    } finally {
      await store.close();
    }
    const perItem = await runCli(['results', record.job_id, '--per-item'], server.url);
    assert.equal(perItem.code, 0, perItem.stderr);
    const values = perItem.stdout.trim().split('\n').map((l) => JSON.parse(l) as { item_index: number; result: number });
    assert.deepEqual(values.map((v) => v.item_index), items);
    assert.deepEqual(values.map((v) => v.result), items.map((x) => x * 2));
  });

  test('s3://: parts and manifest in a local S3 server, read back by the CLI', async () => {
    const url = 's3://results/nightly/';
    const items = Array.from({ length: 30 }, (_, i) => i);
    const record = await client.submit({ api_name: 'outputs', items, batch_size: 8, workers: 2, output: url });
    const status = await finished(record.job_id);
    assert.equal(status.status, 'succeeded', JSON.stringify(status.error));
    assert.equal(status.results_stored, 4);
    const store = await storeFor(url, { s3: { endpoint: s3.endpoint, access_key_id: 'S3RVER', secret_access_key: 'S3RVER' } });
    try {
      const manifest = JSON.parse(await text(await store.open(`${url}${record.job_id}/manifest.json`))) as ManifestRecord;
      assert.deepEqual(manifest.parts, [0, 1, 2, 3].map(PART));
      assert.equal(manifest.results_stored, 4);
    } finally {
      await store.close();
    }
    const perItem = await runCli(['results', record.job_id, '--per-item'], server.url);
    assert.equal(perItem.code, 0, perItem.stderr);
    const values = perItem.stdout.trim().split('\n').map((l) => JSON.parse(l) as { item_index: number; result: number });
    assert.deepEqual(values.map((v) => v.item_index), items);
    assert.deepEqual(values.map((v) => v.result), items.map((x) => x * 2));
  });

  test('a 6 MB result (above max_payload) is written to the output and read back whole', async () => {
    const { dir, url } = outDir();
    const big = 6 * 1024 * 1024;
    const record = await client.submit({ api_name: 'outputs', batches: [[{ big }], [1, 2]], output: url });
    const status = await finished(record.job_id);
    assert.equal(status.status, 'succeeded', JSON.stringify(status.error));
    assert.equal(status.results_stored, 2);
    assert.ok(statSync(join(dir, record.job_id, PART(0))).size > big);
    const seen: Array<{ batch_id: string; size: number }> = [];
    for await (const r of client.results(record.job_id)) seen.push({ batch_id: r.batch_id, size: JSON.stringify(r.result).length });
    assert.deepEqual(seen.map((s) => s.batch_id), ['0', '1']);
    assert.equal(seen[0]!.size, big + 4); // ["xxx…"]
    // Ready-made batches have no fixed batch size: --per-item says why instead of guessing indices.
    const perItem = await runCli(['results', record.job_id, '--per-item'], server.url);
    assert.equal(perItem.code, 2, perItem.stderr);
    assert.match(perItem.stderr, /JB_PER_ITEM_UNAVAILABLE/);
  });

  test('results stream: results_stored counts distinct batches; --per-item and --sort read in batch order', async () => {
    const items = Array.from({ length: 95 }, (_, i) => i);
    const record = await client.submit({ api_name: 'outputs', items, batch_size: 10, workers: 4 });
    assert.equal(record.output, null);
    const status = await finished(record.job_id);
    assert.equal(status.status, 'succeeded');
    assert.equal(status.results_stored, 10);
    assert.equal(status.output, null);
    const sorted = await runCli(['results', record.job_id, '--sort'], server.url);
    assert.equal(sorted.code, 0, sorted.stderr);
    assert.deepEqual(sorted.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { batch_id: string }).batch_id), Array.from({ length: 10 }, (_, n) => String(n)));
    const perItem = await runCli(['results', record.job_id, '--per-item'], server.url);
    assert.equal(perItem.code, 0, perItem.stderr);
    const values = perItem.stdout.trim().split('\n').map((l) => JSON.parse(l) as { item_index: number; result: number });
    assert.deepEqual(values.map((v) => v.item_index), items);
    assert.deepEqual(values.map((v) => v.result), items.map((x) => x * 2));

    // A batch that returns nothing stores nothing, and the count says so.
    const none = await client.submit({ api_name: 'outputs', batches: [[1], [{ none: true }], [3]] });
    const noneStatus = await finished(none.job_id);
    assert.equal(noneStatus.results_stored, 2);
  });

  test('a dead-lettered batch: no part, counted in the manifest; --per-item leaves its items out', async () => {
    const { dir, url } = outDir();
    const items = [0, 1, 2, -3, 4, 5, 6];
    const record = await client.submit({ api_name: 'outputs', items, batch_size: 2, output: url });
    const status = await finished(record.job_id);
    assert.equal(status.status, 'completed_with_failures');
    assert.equal(status.results_stored, 3);
    const manifest = JSON.parse(readFileSync(join(dir, record.job_id, 'manifest.json'), 'utf8')) as ManifestRecord;
    assert.equal(manifest.status, 'completed_with_failures');
    assert.deepEqual(manifest.batch_metrics, { succeeded: 3, failed: 1 });
    assert.equal(manifest.dead_letters, 1);
    assert.deepEqual(manifest.parts, [0, 2, 3].map(PART));
    const values: Array<{ item_index: number; result: number }> = [];
    for await (const v of client.itemResults(record.job_id)) values.push(v as { item_index: number; result: number });
    assert.deepEqual(values.map((v) => v.item_index), [0, 1, 4, 5, 6]);
    assert.deepEqual(values.map((v) => v.result), [0, 2, 8, 10, 12]);
    // The web page's job view reads the parts too.
    const views = await resultViews(await openContext(nc), await client.record(record.job_id));
    assert.equal(views.total, 3);
    assert.deepEqual(views.results.map((r) => r.batch_id), ['0', '2', '3']);
  });

  test('jetbatch submit --items FILE --output URL (streamed) and the one-request JSON both take the output', async () => {
    const { dir, url } = outDir();
    const file = join(dir, 'items.jsonl');
    writeFileSync(file, Array.from({ length: 25 }, (_, i) => JSON.stringify(i)).join('\n') + '\n');
    const submitted = await runCli(['submit', 'outputs', '--items', file, '--batch-size', '4', '--output', url, '--wait', '--json'], server.url);
    assert.equal(submitted.code, 0, submitted.stderr);
    const final = JSON.parse(submitted.stdout) as JobStatus;
    assert.equal(final.output, url);
    assert.equal(final.results_stored, 7);
    const perItem = await runCli(['results', final.job_id, '--per-item'], server.url);
    assert.equal(perItem.code, 0, perItem.stderr);
    assert.deepEqual(perItem.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { item_index: number }).item_index), Array.from({ length: 25 }, (_, i) => i));

    const body = JSON.stringify({ api_name: 'outputs', items: [1, 2, 3], batch_size: 2, output: url.replace(/\/$/, '') });
    const reply = JSON.parse(new TextDecoder().decode((await nc.request(Subjects.request.submit, new TextEncoder().encode(body), { timeout: 30_000 })).data)) as { ok: boolean; job: { job_id: string; output: string; batch_size: number } };
    assert.equal(reply.ok, true, JSON.stringify(reply));
    assert.equal(reply.job.output, url, 'stored as a prefix, with its trailing /');
    assert.equal(reply.job.batch_size, 2);
    assert.equal((await finished(reply.job.job_id)).results_stored, 2);
    assert.deepEqual(readdirSync(join(dir, reply.job.job_id)).sort(), ['manifest.json', PART(0), PART(1)]);
  });

  test('a part that cannot be written is a failed attempt: retried until the store takes it, never acked without it', async () => {
    const { dir, url } = outDir();
    const jobId = `out-retry-${Date.now()}`;
    // A file where the job's folder must go: every part write fails (root ignores permissions, not this).
    writeFileSync(join(dir, jobId), 'in the way');
    const retried = async (): Promise<number> => {
      const m = await daemon.metrics.registry.getSingleMetric('jetbatch_batches_total')!.get();
      return m.values.filter((v) => v.labels.outcome === 'retried' && v.labels.api_name === 'outputs').reduce((a, v) => a + v.value, 0);
    };
    const before = await retried();
    const record = await client.submit({
      api_name: 'outputs',
      job_id: jobId,
      items: [1, 2, 3, 4],
      batch_size: 2,
      output: url,
      max_attempts: 1000,
      backoff: { initial_ms: 50, factor: 1, max_ms: 50, jitter: 0 },
    });
    await waitUntil('two failed part writes', async () => (await retried()) >= before + 2, { timeoutMs: 60_000 });
    const during = await client.status(jobId);
    assert.ok(during.status === 'pending' || during.status === 'running', during.status);
    assert.equal(during.batch_metrics.succeeded, 0, 'nothing acked without its part');
    rmSync(join(dir, jobId));
    mkdirSync(join(dir, jobId));
    const status = await finished(record.job_id);
    assert.equal(status.status, 'succeeded');
    assert.equal(status.results_stored, 2);
    assert.deepEqual(readdirSync(join(dir, jobId)).sort(), ['manifest.json', PART(0), PART(1)]);
    assert.ok(existsSync(join(dir, jobId, 'manifest.json')));
  });

  test('file:// output whose folder does not exist on the host (a volume not mounted): no part acked, nothing created', async () => {
    const { dir } = outDir();
    const missing = join(dir, 'not-mounted');
    const url = pathToFileURL(missing).href + '/';
    const record = await client.submit({
      api_name: 'outputs',
      items: [1, 2, 3, 4, 5],
      batch_size: 2,
      output: url,
      max_attempts: 2,
      backoff: { initial_ms: 50, factor: 1, max_ms: 50, jitter: 0 },
    });
    const status = await client.wait(record.job_id, { timeoutMs: 120_000, intervalMs: 100 });
    assert.equal(status.status, 'completed_with_failures');
    assert.equal(status.batch_metrics.succeeded, 0, 'nothing acked without its part');
    assert.equal(status.batch_metrics.failed, 3);
    const letters = await client.deadLetters(record.job_id);
    assert.equal(letters.length, 3);
    for (const l of letters) {
      assert.equal(l.error.code, 'JB_STORE_NOT_FOUND');
      assert.ok(l.error.message.includes(missing), l.error.message);
      assert.equal(l.attempts, 2, 'retried up to max_attempts');
    }
    // The manifest is not written locally either: the job completes with the store's error and no count.
    assert.equal(status.results_stored, null);
    assert.equal(status.error?.code, 'JB_STORE_NOT_FOUND');
    assert.equal(existsSync(missing), false, 'the output folder was not created on this host');
  });

  test('output URLs are validated with the submission, and the spec hash includes the output', async () => {
    await assert.rejects(client.submit({ api_name: 'outputs', items: [1], batch_size: 1, output: 'ftp://host/x/' }), (err: unknown) => err instanceof JetbatchError && err.code === 'JB_INVALID_SUBMISSION' && /output/.test(err.message));
    await assert.rejects(client.submit({ api_name: 'outputs', items: [1], batch_size: 1, output: 'file://relative/dir/' }), (err: unknown) => err instanceof JetbatchError && err.code === 'JB_INVALID_SUBMISSION');
    const { url } = outDir();
    const jobId = `out-hash-${Date.now()}`;
    await client.submit({ api_name: 'outputs', job_id: jobId, items: [1], batch_size: 1, output: url });
    await assert.rejects(client.submit({ api_name: 'outputs', job_id: jobId, items: [1], batch_size: 1 }), (err: unknown) => err instanceof JetbatchError && err.code === 'JB_JOB_CONFLICT');
    await finished(jobId);
  });
});
