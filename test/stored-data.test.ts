/**
 * Jobs over stored data (issue #16 item 2): `delimited_files` and `file_path_lister` jobs, listed and enqueued by the
 * fleet, against a real nats-server and real daemons. Every item runs exactly once (by id), globs select the files,
 * gzip is read by name and by magic bytes, an empty listing ends the job `enqueue_failed`, the CLI and the
 * one-request API submit such jobs, and a daemon killed while enqueuing is replaced by another that resumes without
 * duplicates.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createWriteStream, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { storeFor } from '../src/stores/index.js';
import { RETRY_FOR_MS, RetryBudget } from '../src/daemon/enqueue/retry-budget.js';
import { S3Server } from './helpers/s3-server.js';
import { JetbatchClient } from '../src/client/client.js';
import type { Daemon } from '../src/daemon/daemon.js';
import type { JobStatus } from '../src/types.js';
import { DaemonProcess, FIXTURES, startDaemon, tempDir } from './helpers/daemon.js';
import { runCli } from './helpers/cli.js';
import { NatsServer } from './helpers/nats-server.js';
import { waitUntil } from './helpers/wait.js';
import { PYTHON, pythonApi } from './helpers/python.js';

const project = join(FIXTURES, 'stored-data');
const lines = (from: number, to: number): string => Array.from({ length: to - from }, (_, i) => JSON.stringify({ id: from + i })).join('\n') + '\n';
const dirUrl = (dir: string): string => `${pathToFileURL(dir).href}/`;

describe('the enqueue\'s retry budget, offline', () => {
  test('transient failures are retried for RETRY_FOR_MS without progress, counted from the last progress, not the start', () => {
    const budget = new RetryBudget(10, 0, 1000);
    // Ten minutes of enqueuing with progress all along: a failure then is retried.
    for (let t = 0; t <= 600_000; t += 500) budget.progress(10 + t, t);
    assert.equal(budget.exhausted(600_500), false);
    assert.equal(budget.exhausted(601_001), true);
    // Batches published again after a resume (not further than before) are not progress.
    budget.progress(600_010, 601_000);
    budget.progress(500, 601_000);
    assert.equal(budget.exhausted(601_001), true);
    budget.progress(600_011, 601_000);
    assert.equal(budget.exhausted(601_001), false);
    assert.equal(budget.furthest, 600_011);
  });

  test('the backoff doubles up to 15 s and starts over after progress', () => {
    const budget = new RetryBudget(0, 0);
    assert.deepEqual(Array.from({ length: 8 }, () => budget.nextDelay()), [500, 1000, 2000, 4000, 8000, 15_000, 15_000, 15_000]);
    budget.progress(1, 1);
    assert.equal(budget.nextDelay(), 500);
    assert.equal(RETRY_FOR_MS, 120_000);
  });
});

describe('jobs over stored data', () => {
  let server: NatsServer;
  let daemon: Daemon;
  let client: JetbatchClient;
  const dir = tempDir('jetbatch-stored-');
  const data = join(dir, 'data');
  const included: string[] = [];

  before(async () => {
    server = await NatsServer.start();
    daemon = await startDaemon(server.url, [{ name: 'stored', project, threads: 2 }]);
    client = await JetbatchClient.connect({ servers: [server.url] });
    mkdirSync(join(data, 'sub', 'deeper'), { recursive: true });
    // ids 0-349 across four included files, in byte order of their keys; two malformed lines in the first.
    writeFileSync(join(data, 'part-000.jsonl'), lines(0, 50) + 'not json\n' + lines(50, 99) + '{"id": 99, "__proto__": 1}\n' + lines(99, 100));
    writeFileSync(join(data, 'part-001.jsonl.gz'), gzipSync(lines(100, 200)));
    // gzip-compressed without the .gz name: found by its magic bytes.
    writeFileSync(join(data, 'part-002.jsonl'), gzipSync(lines(200, 250)));
    writeFileSync(join(data, 'sub', 'deeper', 'part-003.jsonl'), lines(250, 350));
    included.push(join(data, 'part-000.jsonl'), join(data, 'part-001.jsonl.gz'), join(data, 'part-002.jsonl'), join(data, 'sub', 'deeper', 'part-003.jsonl'));
    // Left out by the globs.
    writeFileSync(join(data, 'notes.txt'), lines(1000, 1010));
    writeFileSync(join(data, 'sub', 'part-009.skip.jsonl'), lines(2000, 2010));
  });

  after(async () => {
    await client?.close();
    await daemon?.close();
    await server?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  const waitFinal = (jobId: string): Promise<JobStatus> => client.wait(jobId, { intervalMs: 200, timeoutMs: 240_000 });
  const globs = { includes: ['*.jsonl', '*.jsonl.gz'], excludes: ['*.skip.jsonl'] };

  /** Every id from..to−1 is in exactly one batch result (results are per batch id: a redelivered batch counts once). */
  async function assertEachIdOnce(jobId: string, count: number): Promise<number> {
    const seen = new Uint8Array(count);
    let batches = 0;
    for await (const r of client.results(jobId)) {
      batches++;
      for (const id of r.result as number[]) {
        assert.ok(id >= 0 && id < count, `unexpected id ${id}`);
        assert.equal(seen[id], 0, `id ${id} in two batches`);
        seen[id] = 1;
      }
    }
    assert.equal(seen.indexOf(0), -1, `id ${seen.indexOf(0)} never ran`);
    return batches;
  }

  test('delimited_files over file:// with includes and excludes: every item once, gzip by name and by magic bytes', async () => {
    const job = await client.submit({ api_name: 'stored', job_id: 'delimited', workers: 4, delimited_files: { paths: [dirUrl(data)], ...globs, batch_size: 7 } });
    assert.equal(job.status, 'enqueuing');
    assert.equal(job.source?.kind, 'delimited_files');
    const final = await waitFinal('delimited');
    assert.equal(final.status, 'succeeded', JSON.stringify(final.error));
    // Batches cross file boundaries: 350 items in 50 full batches.
    assert.equal(final.total_batch_count, 50);
    assert.equal(await assertEachIdOnce('delimited', 350), 50);
    const record = await client.record('delimited');
    assert.equal(record.enqueue?.bad_lines, 2);
    assert.equal(record.enqueue?.owner, daemon.id);
    // The same submission again is a no-op; other content under the id is a conflict.
    assert.equal((await client.submit({ api_name: 'stored', job_id: 'delimited', workers: 4, delimited_files: { paths: [dirUrl(data)], ...globs, batch_size: 7 } })).status, 'succeeded');
    await assert.rejects(client.submit({ api_name: 'stored', job_id: 'delimited', delimited_files: { paths: [dirUrl(data)], batch_size: 8 } }), { code: 'JB_JOB_CONFLICT' });
  });

  test('file_path_lister over file://: each batch is object URLs, read by the handler with ctx.open', async () => {
    await client.submit({ api_name: 'stored', job_id: 'lister', file_path_lister: { paths: [dirUrl(data)], ...globs, batch_size: 3 } });
    const final = await waitFinal('lister');
    assert.equal(final.status, 'succeeded', JSON.stringify((await client.deadLetters('lister'))[0]?.error));
    assert.equal(final.total_batch_count, 2);
    const read = new Map<string, number>();
    for await (const r of client.results('lister', { order: 'batch' })) for (const o of r.result as Array<{ url: string; bytes: number }>) read.set(o.url, o.bytes);
    assert.deepEqual([...read.keys()].sort(), included.map((f) => pathToFileURL(f).href).sort());
    for (const f of included) assert.equal(read.get(pathToFileURL(f).href), statSync(f).size);
  });

  test('a listing that finds nothing ends the job enqueue_failed with JB_NO_INPUT', async () => {
    await client.submit({ api_name: 'stored', job_id: 'nothing', delimited_files: { paths: [dirUrl(data)], includes: ['*.parquet'], batch_size: 5 } });
    const final = await waitFinal('nothing');
    assert.equal(final.status, 'enqueue_failed');
    assert.equal(final.error?.code, 'JB_NO_INPUT');
    assert.match(final.error?.message ?? '', /found no objects/);
    await client.submit({ api_name: 'stored', job_id: 'missing-dir', file_path_lister: { paths: [dirUrl(join(dir, 'no-such-dir'))], batch_size: 5 } });
    const missing = await waitFinal('missing-dir');
    assert.equal(missing.status, 'enqueue_failed');
    assert.equal(missing.error?.code, 'JB_STORE_NOT_FOUND');
  });

  test('jetbatch submit --delimited-files / --file-path-lister with --includes, --excludes, --batch-size', async () => {
    const a = await runCli(['submit', 'stored', '--delimited-files', dirUrl(data), '--includes', '*.jsonl', '*.jsonl.gz', '--excludes', '*.skip.jsonl', '--batch-size', '100', '--job-id', 'cli-delimited', '--wait'], server.url, 120_000);
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stdout, /succeeded/);
    assert.equal((await client.status('cli-delimited')).total_batch_count, 4);
    assert.equal(await assertEachIdOnce('cli-delimited', 350), 4);
    const b = await runCli(['submit', 'stored', '--file-path-lister', dirUrl(data), '--batch-size', '10', '--job-id', 'cli-lister'], server.url);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(b.stdout.trim(), 'cli-lister');
    const final = await waitFinal('cli-lister');
    assert.equal(final.status, 'succeeded');
    assert.equal(final.total_batch_count, 1);
    const bad = await runCli(['submit', 'stored', '--delimited-files', dirUrl(data), '--items', join(data, 'notes.txt'), '--batch-size', '1'], server.url);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /give exactly one of items/);
    const badUrl = await runCli(['submit', 'stored', '--delimited-files', 'ftp://x/y', '--batch-size', '1'], server.url);
    assert.equal(badUrl.code, 2, badUrl.stderr);
    assert.match(badUrl.stderr, /delimited_files\.paths\.0: .*unknown scheme "ftp"/);
  });

  test('the one-request submit takes delimited_files and replies at once, enqueuing', async () => {
    const nc = await connect({ servers: server.url });
    try {
      const body = { api_name: 'stored', job_id: 'one-request', delimited_files: { paths: [dirUrl(data)], ...globs, batch_size: 35 } };
      const reply = (await nc.request('jetbatch.req.submit', JSON.stringify(body), { timeout: 10_000 })).json<{ ok: boolean; job: { status: string; source: unknown } }>();
      assert.equal(reply.ok, true, JSON.stringify(reply));
      assert.equal(reply.job.status, 'enqueuing');
      const final = await waitFinal('one-request');
      assert.equal(final.status, 'succeeded');
      assert.equal(final.total_batch_count, 10);
    } finally {
      await nc.close();
    }
  });

  test('a dead-letter replay runs the dead-lettered batches again, and the store is not read again', async () => {
    // 100 items in 50 batches; every 5th item fails its batch while the marker exists: 20 dead letters.
    const replayDir = join(dir, 'replay');
    mkdirSync(replayDir);
    const marker = join(dir, 'replay-fails');
    writeFileSync(marker, '');
    const file = join(replayDir, 'items.jsonl');
    const items = (count: number): string => Array.from({ length: count }, (_, id) => JSON.stringify(id % 5 === 0 ? { id, fail_while: marker } : { id })).join('\n') + '\n';
    writeFileSync(file, items(100));
    await client.submit({ api_name: 'stored', job_id: 'replayed', workers: 4, max_attempts: 1, delimited_files: { paths: [dirUrl(replayDir)], batch_size: 2 } });
    const first = await waitFinal('replayed');
    assert.equal(first.status, 'completed_with_failures', JSON.stringify(first.error));
    assert.deepEqual([first.batch_metrics.succeeded, first.batch_metrics.failed], [30, 20]);
    const enqueued = (await client.record('replayed')).enqueue;
    assert.equal(enqueued?.done, true);

    // The stored data changes after the enqueue: an enqueuer reading it again would find other batches (a digest
    // mismatch ends the job enqueue_failed and discards its queue) or add items (ids 100-109).
    writeFileSync(file, items(110));
    rmSync(marker);
    const replay = await client.replayDeadLetters('replayed');
    assert.equal(replay.replayed, 20);
    const second = await waitFinal('replayed');
    assert.equal(second.status, 'succeeded', JSON.stringify(second.error));
    assert.equal(second.total_batch_count, 50);
    assert.deepEqual([second.batch_metrics.succeeded, second.batch_metrics.failed], [50, 0]);
    assert.equal(await assertEachIdOnce('replayed', 100), 50);
    assert.deepEqual((await client.record('replayed')).enqueue, enqueued, 'the enqueue was not claimed again');
  });
});

describe('a daemon killed while enqueuing a job over stored data', () => {
  let server: NatsServer;
  let client: JetbatchClient;
  const daemons: DaemonProcess[] = [];
  const dir = tempDir('jetbatch-stored-kill-');
  const FILES = 20;
  const PER_FILE = 10_000;

  before(async () => {
    server = await NatsServer.start();
    for (let f = 0; f < FILES; f++) {
      const out = createWriteStream(join(dir, `part-${String(f).padStart(3, '0')}.jsonl`));
      out.end(lines(f * PER_FILE, (f + 1) * PER_FILE));
      await once(out, 'finish');
    }
    for (let i = 0; i < 2; i++) daemons.push(await DaemonProcess.spawn(server.url, [{ name: 'stored-kill', project, threads: 1 }]));
    // After the first daemon provisioned the streams and buckets.
    client = await JetbatchClient.connect({ servers: [server.url] });
  });

  after(async () => {
    await client?.close();
    for (const d of daemons) await d.kill('SIGKILL');
    await server?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  test('another daemon resumes the enqueue: exact count, no item in two batches', async () => {
    const count = FILES * PER_FILE;
    await client.submit({ api_name: 'stored-kill', job_id: 'killed', workers: 2, delimited_files: { paths: [dirUrl(dir)], batch_size: 10 } });
    // Killed once it has checkpointed some batches, before the end.
    const claimed = await waitUntil('a checkpoint of the enqueue', async () => {
      const r = await client.record('killed');
      return r.status === 'enqueuing' && (r.enqueue?.batches ?? 0) > 0 && r.enqueue?.owner != null ? r : undefined;
    }, { timeoutMs: 120_000, intervalMs: 20 });
    const owner = claimed.enqueue!.owner!;
    const victim = daemons.find((d) => owner.includes(`-${d.proc.pid}-`));
    assert.ok(victim !== undefined, `owner ${owner} is one of the daemons`);
    await victim.kill('SIGKILL');
    const interrupted = await client.record('killed');
    assert.equal(interrupted.status, 'enqueuing', 'killed before the end of the enqueue');
    assert.ok(interrupted.enqueue!.batches < count / 10);

    const final = await client.wait('killed', { intervalMs: 250, timeoutMs: 280_000 });
    assert.equal(final.status, 'succeeded', JSON.stringify(final.error));
    assert.equal(final.total_batch_count, count / 10);
    const record = await client.record('killed');
    assert.notEqual(record.enqueue?.owner, owner, 'another daemon finished the enqueue');
    const survivor = daemons.find((d) => d !== victim)!;
    assert.match(survivor.output, /enqueue claimed/);
    assert.match(survivor.output, /is gone/);

    const seen = new Uint8Array(count);
    let batches = 0;
    for await (const r of client.results('killed')) {
      batches++;
      const ids = r.result as number[];
      assert.equal(ids.length, 10);
      for (const id of ids) {
        assert.equal(seen[id], 0, `id ${id} in two batches`);
        seen[id] = 1;
      }
    }
    assert.equal(batches, count / 10);
    assert.equal(seen.indexOf(0), -1, `id ${seen.indexOf(0)} never ran`);
  });
});

describe('jobs over stored data in obj:// and s3://', () => {
  let server: NatsServer;
  let s3: S3Server;
  let daemon: Daemon;
  let client: JetbatchClient;
  const objects: Record<string, Uint8Array> = {
    'in/part-000.jsonl': Buffer.from(lines(0, 40)),
    'in/part-001.jsonl.gz': gzipSync(lines(40, 80)),
    'in/sub/part-002.jsonl': Buffer.from(lines(80, 100)),
    'in/readme.txt': Buffer.from('not data\n'),
  };
  // Larger than the thread's 4 MiB chunk and the Python file's 1 MiB buffer.
  const big = Buffer.alloc(6 * 1024 * 1024 + 12_345, 0);
  for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i * 2654435761 >>> 0, i);

  before(async () => {
    server = await NatsServer.start();
    s3 = await S3Server.start(['stored-bucket']);
    const s3Settings = { endpoint: s3.endpoint, region: 'us-east-1', access_key_id: 'S3RVER', secret_access_key: 'S3RVER' };
    daemon = await startDaemon(server.url, [{ name: 'stored', project, threads: 2 }, pythonApi('python-stored')], { s3: s3Settings });
    client = await JetbatchClient.connect({ servers: [server.url] });
    const nc = await connect({ servers: server.url });
    try {
      const obj = await storeFor('obj://STORED/', { js: jetstream(nc) });
      const s3Store = await storeFor('s3://stored-bucket/', { s3: s3Settings });
      for (const [key, bytes] of Object.entries(objects)) {
        await obj.write(`obj://STORED/${key}`, bytes);
        await s3Store.write(`s3://stored-bucket/${key}`, bytes);
      }
      await obj.write('obj://STORED/big/blob.bin', big);
      await s3Store.write('s3://stored-bucket/big/blob.bin', big);
      await obj.close();
      await s3Store.close();
    } finally {
      await nc.close();
    }
  });

  after(async () => {
    await client?.close();
    await daemon?.close();
    await s3?.dispose();
    await server?.dispose();
  });

  for (const root of ['obj://STORED/in/', 's3://stored-bucket/in/']) {
    test(`delimited_files over ${root.split(':')[0]}:// with includes and excludes: every item once`, async () => {
      const jobId = `delimited-${root.split(':')[0]}`;
      await client.submit({ api_name: 'stored', job_id: jobId, delimited_files: { paths: [root], includes: ['*.jsonl*'], batch_size: 9 } });
      const final = await client.wait(jobId, { intervalMs: 200, timeoutMs: 120_000 });
      assert.equal(final.status, 'succeeded', JSON.stringify(final.error));
      assert.equal(final.total_batch_count, Math.ceil(100 / 9));
      const seen = new Set<number>();
      for await (const r of client.results(jobId)) for (const id of r.result as number[]) {
        assert.ok(!seen.has(id), `id ${id} twice`);
        seen.add(id);
      }
      assert.equal(seen.size, 100);
    });
  }

  for (const [root, jobId] of [['obj://STORED/', 'lister-obj'], ['s3://stored-bucket/', 'lister-s3']] as const) {
    test(`file_path_lister over ${root.split(':')[0]}://: the handler reads each object with ctx.open`, async () => {
      // s3:// in the worker threads: with the daemon config's s3 section only (no AWS variables in their environment).
      await client.submit({ api_name: 'stored', job_id: jobId, file_path_lister: { paths: [`${root}in/`], excludes: ['*.txt'], batch_size: 2 } });
      const final = await client.wait(jobId, { intervalMs: 200, timeoutMs: 120_000 });
      assert.equal(final.status, 'succeeded', JSON.stringify((await client.deadLetters(jobId))[0]?.error));
      const read = new Map<string, number>();
      for await (const r of client.results(jobId)) for (const o of r.result as Array<{ url: string; bytes: number }>) read.set(o.url, o.bytes);
      const expected = Object.entries(objects).filter(([k]) => !k.endsWith('.txt'));
      assert.deepEqual([...read.keys()].sort(), expected.map(([k]) => `${root}${k}`).sort());
      for (const [k, bytes] of expected) assert.equal(read.get(`${root}${k}`), bytes.byteLength);
    });
  }

  test('a Python handler reads the URLs of a file_path_lister job with jetbatch.open, over obj:// and s3://', async () => {
    const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
    for (const root of ['obj://STORED/', 's3://stored-bucket/']) {
      const jobId = `py-lister-${root.split(':')[0]}`;
      await client.submit({ api_name: 'python-stored', job_id: jobId, file_path_lister: { paths: [root], excludes: ['*.txt'], batch_size: 2 } });
      const final = await client.wait(jobId, { intervalMs: 200, timeoutMs: 120_000 });
      assert.equal(final.status, 'succeeded', JSON.stringify((await client.deadLetters(jobId))[0]?.error));
      const read = new Map<string, { bytes: number; sha256: string }>();
      for await (const r of client.results(jobId)) for (const o of r.result as Array<{ url: string; bytes: number; sha256: string }>) read.set(o.url, o);
      const expected: Array<[string, Uint8Array]> = [...Object.entries(objects).filter(([k]) => !k.endsWith('.txt')), ['big/blob.bin', big]];
      assert.deepEqual([...read.keys()].sort(), expected.map(([k]) => `${root}${k}`).sort());
      for (const [k, bytes] of expected) assert.deepEqual(read.get(`${root}${k}`), { url: `${root}${k}`, bytes: bytes.byteLength, sha256: sha(bytes) }, k);
    }
  });

  test('jetbatch.open from Python: a missing object is StoreError JB_STORE_NOT_FOUND, a bad URL JB_INVALID_STORE_URL, a file left open is closed when its call returns', async () => {
    const batches = [
      ['obj://STORED/in/nope.jsonl#missing', 's3://stored-bucket/in/nope.jsonl#missing', 'ftp://host/x#missing'],
      ['s3://stored-bucket/big/blob.bin#kept'],
      ['reuse'],
    ];
    const job = await client.submit({ api_name: 'python-stored', batches, workers: 1 });
    const final = await client.wait(job.job_id, { intervalMs: 200, timeoutMs: 120_000 });
    assert.equal(final.status, 'succeeded', JSON.stringify((await client.deadLetters(job.job_id))[0]?.error));
    const results = [];
    for await (const r of client.results(job.job_id, { order: 'batch' })) results.push(r.result);
    assert.deepEqual(results, [
      [
        { url: batches[0]![0], error: 'JB_STORE_NOT_FOUND' },
        { url: batches[0]![1], error: 'JB_STORE_NOT_FOUND' },
        { url: batches[0]![2], error: 'JB_INVALID_STORE_URL' },
      ],
      [{ url: batches[1]![0], head: 10 }],
      [{ url: 'reuse', error: 'JB_STORE_FAILED' }],
    ]);
  });
});

test('jetbatch.open outside a jetbatch worker (a notebook, a unit test) raises StoreError JB_INTERNAL, naming itself', () => {
  const script = [
    'import jetbatch',
    'try:',
    '    jetbatch.open("file:///etc/hostname")',
    'except jetbatch.StoreError as e:',
    '    print(e.code, e)',
  ].join('\n');
  const out = execFileSync(PYTHON, ['-c', script], { env: { ...process.env, PYTHONPATH: join(FIXTURES, '..', '..', 'src', 'python') }, encoding: 'utf8' });
  assert.equal(out.trim(), 'JB_INTERNAL jetbatch.open() works only inside a jetbatch worker');
});
