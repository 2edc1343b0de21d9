/**
 * Streaming submission at dataset scale (issue #16, item 1), as a person runs it: `jetbatch submit` in a child
 * process against a real nats-server and daemon. A large generated JSON Lines file is submitted with the
 * submitter's RSS measured from /proc; a submission killed half-way is resumed with its job id; a resume with other
 * content is refused; malformed lines are reported or bounded; stdin and gzip work.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { JetbatchClient } from '../src/client/client.js';
import { Streams, Subjects } from '../src/fleet/protocol.js';
import type { Daemon } from '../src/daemon/daemon.js';
import type { JobStatus } from '../src/types.js';
import { FIXTURES, ROOT, startDaemon, tempDir } from './helpers/daemon.js';
import { runCli } from './helpers/cli.js';
import { NatsServer } from './helpers/nats-server.js';
import { waitUntil } from './helpers/wait.js';

/** Size of the large file in MiB (JETBATCH_STREAM_TEST_MB; the figures in docs/benchmarks.md used 2048). */
const BIG_MB = Number(process.env.JETBATCH_STREAM_TEST_MB ?? 512);
const RSS_LIMIT_MB = 200;

/** Builds dist/ unless it is newer than every file of src/ (what bin/jetbatch.js checks before running it). */
function ensureBuilt(): void {
  const newest = (dir: string): number =>
    Math.max(0, ...readdirSync(dir, { withFileTypes: true }).map((e) => (e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs)));
  const compiled = join(ROOT, 'dist', 'cli', 'main.js');
  if (existsSync(compiled) && statSync(compiled).mtimeMs >= newest(join(ROOT, 'src'))) return;
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.json')], { cwd: ROOT, stdio: 'inherit' });
}

interface Range {
  first: number;
  last: number;
  count: number;
  sum: number;
}

/** Writes `count` items `{ id, pad }` as JSON Lines; returns the file's size. */
async function writeItems(file: string, count: number, padBytes: number): Promise<void> {
  const out = createWriteStream(file);
  const pad = 'x'.repeat(padBytes);
  let chunk = '';
  for (let id = 0; id < count; id++) {
    chunk += `{"id":${id},"pad":"${pad}"}\n`;
    if (chunk.length > 1 << 20) {
      if (!out.write(chunk)) await once(out, 'drain');
      chunk = '';
    }
  }
  out.end(chunk);
  await once(out, 'finish');
}

describe('jetbatch submit streams its input', () => {
  let server: NatsServer;
  let daemon: Daemon;
  let client: JetbatchClient;
  const dir = tempDir('jetbatch-stream-');

  before(async () => {
    server = await NatsServer.start();
    daemon = await startDaemon(server.url, [{ name: 'ids', project: join(FIXTURES, 'id-ranges'), threads: 2 }]);
    client = await JetbatchClient.connect({ servers: [server.url] });
  });

  after(async () => {
    await client?.close();
    await daemon?.close();
    await server?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Every id 0 … count − 1 ran exactly once: the batches' ranges tile the ids without gap or overlap. */
  async function assertExactlyOnce(jobId: string, count: number): Promise<void> {
    const ranges: Range[] = [];
    for await (const r of client.results(jobId)) ranges.push(r.result as Range);
    ranges.sort((a, b) => a.first - b.first);
    let next = 0;
    let sum = 0;
    for (const r of ranges) {
      assert.equal(r.first, next, `batch starting at ${r.first}: expected ${next}`);
      assert.equal(r.last - r.first + 1, r.count);
      next = r.last + 1;
      sum += r.sum;
    }
    assert.equal(next, count);
    assert.equal(sum, (count * (count - 1)) / 2);
  }

  const waitFinal = (jobId: string): Promise<JobStatus> => client.wait(jobId, { intervalMs: 250, timeoutMs: 600_000 });

  test(`a ${BIG_MB} MiB file is submitted under ${RSS_LIMIT_MB} MB RSS, and every item runs exactly once`, async (t) => {
    const file = join(dir, 'big.jsonl');
    const padBytes = 200;
    const lineBytes = `{"id":1000000,"pad":"${'x'.repeat(padBytes)}"}\n`.length;
    const count = Math.floor((BIG_MB * 1024 * 1024) / lineBytes);
    await writeItems(file, count, padBytes);
    // As installed: the compiled CLI (bin/jetbatch.js runs dist/ when it is up to date; tsx alone costs ~70 MB).
    ensureBuilt();
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'jetbatch.js'), 'submit', 'ids', '--items', file, '--batch-size', '2000', '--workers', '8', '--job-id', 'big-stream', '--server', server.url], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    let peakKb = 0;
    const poll = setInterval(() => {
      try {
        const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) peakKb = Math.max(peakKb, Number(m[1]));
      } catch {
        // exited
      }
    }, 50);
    const started = Date.now();
    const [code] = (await once(child, 'exit')) as [number | null];
    const seconds = (Date.now() - started) / 1000;
    clearInterval(poll);
    assert.equal(code, 0, stderr);
    assert.equal(stdout.trim(), 'big-stream');
    t.diagnostic(`${count} items, ${BIG_MB} MiB submitted in ${seconds.toFixed(1)} s (${(BIG_MB / seconds).toFixed(1)} MiB/s, daemon running alongside), peak RSS ${Math.round(peakKb / 1024)} MB`);
    assert.ok(peakKb > 0, 'RSS was sampled');
    assert.ok(peakKb / 1024 < RSS_LIMIT_MB, `peak RSS ${Math.round(peakKb / 1024)} MB`);
    const final = await waitFinal('big-stream');
    assert.equal(final.status, 'succeeded');
    assert.equal(final.total_batch_count, Math.ceil(count / 2000));
    assert.equal(final.batch_metrics.succeeded, final.total_batch_count);
    await assertExactlyOnce('big-stream', count);
    rmSync(file);
  });

  /**
   * Submits `file` through stdin (`--items -`) and SIGKILLs the submitter once a checkpoint is stored. Half the lines go
   * at once, then one at a time until the checkpoint shows up, and the input never ends: the kill always lands
   * mid-submission, however fast this machine publishes. (Killing a submission of a whole file once a checkpoint
   * shows up raced its end on a quiet machine.)
   */
  async function submitKilledAfterCheckpoint(file: string, flags: string[]): Promise<void> {
    const jobId = flags[flags.indexOf('--job-id') + 1]!;
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), 'submit', 'ids', '--items', '-', ...flags, '--server', server.url], { cwd: ROOT, stdio: ['pipe', 'ignore', 'ignore'] });
    child.stdin.on('error', () => undefined); // EPIPE once it is killed
    const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
    let next = Math.floor(lines.length / 2);
    child.stdin.write(lines.slice(0, next).join('\n') + '\n');
    await waitUntil('a checkpoint', async () => {
      if (next < lines.length) child.stdin.write(lines[next++] + '\n');
      return ((await client.record(jobId).catch(() => null))?.enqueue?.batches ?? 0) > 0;
    }, { timeoutMs: 60_000, intervalMs: 20 });
    assert.ok(next < lines.length, 'the input was not all written');
    child.kill('SIGKILL');
    await once(child, 'exit');
  }

  test('a submission killed half-way continues with the same job id: no duplicates, exact counts', async () => {
    const file = join(dir, 'resume.jsonl');
    const count = 60_000;
    await writeItems(file, count, 20);
    await submitKilledAfterCheckpoint(file, ['--batch-size', '5', '--workers', '4', '--job-id', 'resumed']);
    const interrupted = await client.record('resumed');
    assert.equal(interrupted.status, 'enqueuing', 'killed before the end');
    assert.ok(interrupted.enqueue!.batches < count / 5);

    const again = await runCli(['submit', 'ids', '--items', file, '--batch-size', '5', '--workers', '4', '--job-id', 'resumed'], server.url, 300_000);
    assert.equal(again.code, 0, again.stderr);
    const final = await waitFinal('resumed');
    assert.equal(final.status, 'succeeded');
    assert.deepEqual([final.total_batch_count, final.batch_metrics.succeeded, final.batch_metrics.failed], [count / 5, count / 5, 0]);
    await assertExactlyOnce('resumed', count);

    // Submitted again once finished: nothing more is enqueued, the record is as it was.
    const third = await runCli(['submit', 'ids', '--items', file, '--batch-size', '5', '--workers', '4', '--job-id', 'resumed'], server.url);
    assert.equal(third.code, 0, third.stderr);
    assert.equal((await client.status('resumed')).total_batch_count, count / 5);
  });

  test('resuming with other content is refused and publishes nothing', async () => {
    const a = join(dir, 'a.jsonl');
    await writeItems(a, 20_000, 10);
    await submitKilledAfterCheckpoint(a, ['--batch-size', '2', '--job-id', 'changed']);
    const before = await client.record('changed');
    const b = join(dir, 'b.jsonl');
    writeFileSync(b, readFileSync(a, 'utf8').replace('{"id":0,', '{"id":-1,'));
    const r = await runCli(['submit', 'ids', '--items', b, '--batch-size', '2', '--job-id', 'changed'], server.url);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /JB_JOB_CONFLICT: job changed: the input's first \d+ batches differ/);
    const after = await client.record('changed');
    assert.equal(after.status, 'enqueuing');
    assert.equal(after.enqueue?.batches, before.enqueue?.batches);
    await client.stop('changed');
  });

  test('malformed lines are skipped and reported; beyond --max-bad-lines the job ends enqueue_failed', async () => {
    const file = join(dir, 'bad.jsonl');
    const lines = Array.from({ length: 100 }, (_, id) => JSON.stringify({ id }));
    lines.splice(10, 0, '{"id": 10.5,');
    lines.splice(50, 0, 'not json');
    writeFileSync(file, lines.join('\n') + '\n');
    const ok = await runCli(['submit', 'ids', '--items', file, '--batch-size', '10', '--job-id', 'some-bad', '--wait'], server.url);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /warning: skipped 2 malformed lines of .*bad\.jsonl/);
    assert.match(ok.stderr, /line 11: not valid JSON/);
    assert.match(ok.stderr, /line 51: not valid JSON/);
    assert.equal((await client.record('some-bad')).enqueue?.bad_lines, 2);
    await assertExactlyOnce('some-bad', 100);

    const strict = await runCli(['submit', 'ids', '--items', file, '--batch-size', '10', '--job-id', 'strict-bad', '--strict'], server.url);
    assert.equal(strict.code, 2, strict.stderr);
    assert.match(strict.stderr, /JB_INVALID_SUBMISSION: .*bad\.jsonl line 11: not valid JSON/);
    await assert.rejects(client.record('strict-bad'), /JB_JOB_NOT_FOUND|not found/i, 'nothing created');

    // Exceeded within the first read: refused before anything is created.
    const early = await runCli(['submit', 'ids', '--items', file, '--batch-size', '10', '--job-id', 'too-bad-early', '--max-bad-lines', '1'], server.url);
    assert.equal(early.code, 2, early.stderr);
    assert.match(early.stderr, /more than 1 malformed lines \(--max-bad-lines\); the last, line 51/);
    await assert.rejects(client.record('too-bad-early'), /not found/i);

    // Exceeded far into the file, once batches are enqueued: the job ends enqueue_failed and its queue is discarded.
    const long = join(dir, 'bad-late.jsonl');
    const many = Array.from({ length: 30_000 }, (_, id) => JSON.stringify({ id }));
    many.splice(10, 0, 'oops');
    many.splice(25_000, 0, 'oops again');
    writeFileSync(long, many.join('\n') + '\n');
    const bounded = await runCli(['submit', 'ids', '--items', long, '--batch-size', '10', '--job-id', 'too-bad', '--max-bad-lines', '1', '--config', '{"never": 1}'], server.url);
    assert.equal(bounded.code, 2, bounded.stderr);
    assert.match(bounded.stderr, /more than 1 malformed lines \(--max-bad-lines\); the last, line 25001/);
    const failed = await client.status('too-bad');
    assert.equal(failed.status, 'enqueue_failed');
    assert.match(failed.error?.message ?? '', /more than 1 malformed lines/);
    // Its queue was discarded (the record keeps the count it had when it ended).
    const nc = await connect({ servers: server.url });
    try {
      const subject = Subjects.batch('ids', 'too-bad');
      const info = await (await jetstreamManager(nc)).streams.info(Streams.batches, { subjects_filter: subject.replace(/^[^.]+/, '*') });
      assert.equal(info.state.subjects?.[subject] ?? 0, 0);
    } finally {
      await nc.close();
    }
  });

  test('in a terminal, submit shows the enqueue progress: bytes, values, batches', async () => {
    const file = join(dir, 'tty.jsonl');
    await writeItems(file, 200_000, 50);
    // script(1) gives the CLI a pseudo-terminal, as a person at a shell has.
    const command = [process.execPath, '--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), 'submit', 'ids', '--items', file, '--batch-size', '100', '--job-id', 'tty', '--server', server.url]
      .map((a) => `'${a}'`)
      .join(' ');
    const child = spawn('script', ['-qfec', command, '/dev/null'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 0, out);
    assert.match(out, /enqueuing \|[█░]+\| \d+%\s+[\d.]+ MiB\s+\d+ values\s+\d+ batches/, out.slice(0, 2000));
    assert.match(out, /\btty\b/, 'the job id is printed after the bar');
    assert.equal((await waitFinal('tty')).batch_metrics.succeeded, 2000);
  });

  test('stdin and gzip-compressed files stream too', async () => {
    const lines = Array.from({ length: 1000 }, (_, id) => JSON.stringify({ id })).join('\n');
    const gz = join(dir, 'items.jsonl.gz');
    writeFileSync(gz, gzipSync(lines));
    const fromGz = await runCli(['submit', 'ids', '--items', gz, '--batch-size', '7', '--job-id', 'gz', '--wait'], server.url);
    assert.equal(fromGz.code, 0, fromGz.stderr);
    await assertExactlyOnce('gz', 1000);

    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), 'submit', 'ids', '--items', '-', '--batch-size', '9', '--job-id', 'stdin', '--wait', '--server', server.url], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.end(lines);
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 0, stderr);
    await assertExactlyOnce('stdin', 1000);
  });

  test('the client streams from an async generator, batches as given', async () => {
    async function* batches(): AsyncGenerator<Array<{ id: number }>> {
      for (let b = 0; b < 300; b++) yield Array.from({ length: 3 }, (_, i) => ({ id: b * 3 + i }));
    }
    const record = await client.submitStream({ api_name: 'ids', job_id: 'generated', workers: 4 }, batches());
    assert.equal(record.status, 'pending');
    assert.equal(record.total_batch_count, 300);
    assert.equal((await waitFinal('generated')).status, 'succeeded');
    await assertExactlyOnce('generated', 900);

    // An empty stream creates no job.
    const none = (async function* () {})();
    await assert.rejects(client.submitStream({ api_name: 'ids', job_id: 'empty-stream', batch_size: 5 }, none), /JB_INVALID_SUBMISSION|holds no items/);
    await assert.rejects(client.record('empty-stream'), /not found/i);
  });
});
