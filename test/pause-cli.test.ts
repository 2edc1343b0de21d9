/**
 * The user-facing surface of pause, resume and priority (issue #13): the client's pause/resume, the one-request
 * endpoints `jetbatch.req.pause` / `.resume` (and the `jobs` request's field checks), and the CLI run as a child
 * process (`pause`, `resume`, `submit --priority`, what `status` and `jobs` show). How daemons schedule paused and
 * prioritised jobs is tested in test/pause.test.ts and test/scheduling.test.ts; here only what a paused job must
 * look like from outside: counts that do not move, no batch started after pause returned, exact counts after resume.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { JetbatchClient } from '../src/client/client.js';
import type { Daemon } from '../src/daemon/daemon.js';
import { JetbatchError, type ErrorCode } from '../src/errors.js';
import { PAUSE_SETTLE_MS } from '../src/fleet/lifecycle.js';
import { Subjects, encodeValue } from '../src/fleet/protocol.js';
import type { JobRecord, JobStatus } from '../src/types.js';
import { FIXTURES, readRecords, startDaemon, tempDir } from './helpers/daemon.js';
import { NatsServer } from './helpers/nats-server.js';
import { intervals } from './helpers/timeline.js';
import { runCli, type CliResult } from './helpers/cli.js';
import { waitUntil } from './helpers/wait.js';

const API = 'pc';

interface Reply {
  ok: boolean;
  job?: JobRecord;
  jobs?: JobStatus[];
  error?: { code: string; message: string; details?: string[] };
}

/** Rejects unless `promise` fails with a JetbatchError of `code` whose message matches `pattern`. */
async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, pattern: RegExp = /./): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof JetbatchError, `expected a JetbatchError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, pattern);
    return true;
  });
}

describe('pause, resume and priority: client, one-request API, CLI', () => {
  let server: NatsServer;
  let daemon: Daemon;
  let client: JetbatchClient;
  let nc: NatsConnection;
  const recordDir = tempDir('jetbatch-pause-cli-');

  before(async () => {
    server = await NatsServer.start();
    daemon = await startDaemon(server.url, [{ name: API, project: join(FIXTURES, 'recorder'), threads: 2, config: { record_dir: recordDir } }]);
    client = await JetbatchClient.connect({ servers: [server.url] });
    nc = await connect({ servers: server.url });
  });

  after(async () => {
    await client?.close();
    await nc?.close();
    await daemon?.close();
    await server?.dispose();
  });

  /** A job of `n` one-item batches that each take `delayMs` (the recorder fixture sleeps). */
  const slowJob = (n: number, delayMs: number, workers: number, extra: Record<string, unknown> = {}): Promise<JobRecord> =>
    client.submit({ api_name: API, items: Array.from({ length: n }, (_, i) => i), batch_size: 1, workers, config: { delay_ms: delayMs }, ...extra });

  const attempts = (jobId: string) => intervals(readRecords(recordDir), jobId);

  async function request(subject: string, body: Uint8Array | string): Promise<Reply> {
    return (await nc.request(subject, body, { timeout: 15_000 })).json<Reply>();
  }

  async function refused(subject: string, body: Uint8Array | string, code: ErrorCode, pattern: RegExp = /./): Promise<void> {
    const reply = await request(subject, body);
    assert.equal(reply.ok, false, `${subject} accepted ${String(body)}: ${JSON.stringify(reply)}`);
    assert.equal(reply.error?.code, code, reply.error?.message);
    assert.match(reply.error?.message ?? '', pattern);
  }

  const cli = (...args: string[]): Promise<CliResult> => runCli(args, server.url);

  /** Runs the CLI and fails unless it exits 0; returns its stdout. */
  async function cliOk(...args: string[]): Promise<string> {
    const r = await cli(...args);
    assert.equal(r.code, 0, `jetbatch ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
    return r.stdout;
  }

  test('client: a paused running job keeps its counts and starts nothing while another job runs; resume finishes it exactly', async () => {
    const job = await slowJob(20, 250, 2);
    await waitUntil('two batches done', async () => (await client.status(job.job_id)).batch_metrics.succeeded >= 2, { timeoutMs: 30_000 });

    const paused = await client.pause(job.job_id);
    const pauseReturned = Date.now();
    assert.equal(typeof paused.paused_at, 'string');
    assert.equal(paused.status, 'running');
    const again = await client.pause(job.job_id);
    assert.equal(again.paused_at, paused.paused_at, 'pausing a paused job changes nothing');

    // Whatever was running when pause returned finishes; then the counts are a snapshot that must hold.
    await waitUntil('the running batches to end', () => attempts(job.job_id).every((a) => a.end !== Infinity), { timeoutMs: 10_000 });
    const during = await client.status(job.job_id);
    assert.equal(during.status, 'running');
    assert.equal(during.paused_at, paused.paused_at);
    assert.equal(during.priority, 0);
    const done = during.batch_metrics.succeeded;
    assert.ok(done >= 2 && done < 20, `${done} of 20 succeeded when paused`);
    assert.equal(done + during.batches_in_queue, 20, 'queue and counts intact');

    // The window: another job of the same API runs to the end on the same threads; the paused one must not move.
    const other = await slowJob(6, 100, 2);
    assert.equal((await client.wait(other.job_id, { intervalMs: 100, timeoutMs: 30_000 })).status, 'succeeded');
    const still = await client.status(job.job_id);
    assert.deepEqual([still.status, still.batch_metrics.succeeded, still.batches_in_queue], ['running', done, 20 - done], 'nothing ran while paused');
    const late = attempts(job.job_id).filter((a) => a.start > pauseReturned);
    assert.deepEqual(late, [], 'no batch started after pause returned');

    const resumed = await client.resume(job.job_id);
    assert.equal(resumed.paused_at, null);
    assert.ok((resumed.paused_ms ?? 0) >= PAUSE_SETTLE_MS, `paused for ${resumed.paused_ms} ms`);
    const noop = await client.resume(job.job_id);
    assert.deepEqual([noop.paused_at, noop.paused_ms], [null, resumed.paused_ms], 'resuming a job that is not paused changes nothing');
    const final = await client.wait(job.job_id, { intervalMs: 100, timeoutMs: 30_000 });
    assert.deepEqual([final.status, final.batch_metrics.succeeded, final.batch_metrics.failed, final.paused_at], ['succeeded', 20, 0, null]);
  });

  test('client: unknown job, bad job id, ended job; a paused job can be stopped', async () => {
    for (const call of [client.pause.bind(client), client.resume.bind(client)]) {
      await rejectsWith(call('no-such-job'), 'JB_JOB_NOT_FOUND', /no-such-job/);
      await rejectsWith(call('a.b'), 'JB_INVALID_REQUEST', /job_id/);
      await rejectsWith(call(''), 'JB_INVALID_REQUEST', /job_id/);
    }

    const job = await slowJob(100, 200, 1);
    const notPaused = await client.resume(job.job_id);
    assert.deepEqual([notPaused.paused_at, notPaused.paused_ms], [null, 0], 'resume of a job that is not paused is a no-op');
    await client.pause(job.job_id);
    const stopped = await client.stop(job.job_id);
    assert.equal(stopped.status, 'stopped', 'stop works on a paused job');
    const final = await client.status(job.job_id);
    assert.equal(final.status, 'stopped');
    assert.equal(final.batch_metrics.succeeded + final.batches_in_queue, 100, 'the stop counted every batch once');
    await rejectsWith(client.pause(job.job_id), 'JB_JOB_ENDED', /stopped/);
    await rejectsWith(client.resume(job.job_id), 'JB_JOB_ENDED', /stopped/);

    const finished = await slowJob(1, 0, 1);
    await client.wait(finished.job_id, { intervalMs: 100, timeoutMs: 30_000 });
    await rejectsWith(client.pause(finished.job_id), 'JB_JOB_ENDED', /succeeded/);
  });

  test('one request: jetbatch.req.pause / .resume reply with the record (pause once nothing can start); errors are coded', async () => {
    const job = await slowJob(100, 200, 1);
    const body = JSON.stringify({ job_id: job.job_id });

    const t0 = Date.now();
    const paused = await request(Subjects.request.pause, body);
    const took = Date.now() - t0;
    assert.equal(paused.ok, true, JSON.stringify(paused));
    assert.equal(typeof paused.job?.paused_at, 'string');
    assert.ok(took >= PAUSE_SETTLE_MS - 50, `the pause reply came after ${took} ms, before no batch could start`);
    const status = await request(Subjects.request.status, body);
    assert.equal((status as Reply & { status?: JobStatus }).status?.paused_at, paused.job?.paused_at);
    const viaPack = await request(Subjects.request.pause, encodeValue({ job_id: job.job_id }));
    assert.equal(viaPack.job?.paused_at, paused.job?.paused_at, 'a MessagePack body works too, and pausing again changes nothing');

    const resumed = await request(Subjects.request.resume, body);
    assert.equal(resumed.ok, true, JSON.stringify(resumed));
    assert.equal(resumed.job?.paused_at, null);
    assert.ok((resumed.job?.paused_ms ?? 0) > 0);

    for (const subject of [Subjects.request.pause, Subjects.request.resume]) {
      await refused(subject, JSON.stringify({ job_id: 'no-such-job' }), 'JB_JOB_NOT_FOUND', /no-such-job/);
      await refused(subject, JSON.stringify({ job_id: 'a.b' }), 'JB_INVALID_REQUEST', /job_id/);
      await refused(subject, JSON.stringify({ job_id: 42 }), 'JB_INVALID_REQUEST', /job_id/);
      await refused(subject, JSON.stringify({}), 'JB_INVALID_REQUEST', /job_id/);
      await refused(subject, '{"job_id":', 'JB_INVALID_REQUEST', /expected a JSON object or a MessagePack map, got malformed JSON/);
      await refused(subject, Uint8Array.of(0xc1), 'JB_INVALID_REQUEST', /expected a JSON object or a MessagePack map, got malformed MessagePack/);
    }

    await request(Subjects.request.pause, body);
    const stopped = await request(Subjects.request.stop, body);
    assert.equal(stopped.job?.status, 'stopped');
    await refused(Subjects.request.pause, body, 'JB_JOB_ENDED', /stopped/);
    await refused(Subjects.request.resume, body, 'JB_JOB_ENDED', /stopped/);
  });

  test('one request: jobs refuses a wrongly typed api_name or limit naming the field; good filters still work', async () => {
    await refused(Subjects.request.jobs, JSON.stringify({ limit: 'ten' }), 'JB_INVALID_REQUEST', /limit/);
    await refused(Subjects.request.jobs, JSON.stringify({ limit: 0 }), 'JB_INVALID_REQUEST', /limit/);
    await refused(Subjects.request.jobs, JSON.stringify({ limit: 2.5 }), 'JB_INVALID_REQUEST', /limit/);
    await refused(Subjects.request.jobs, JSON.stringify({ api_name: 5 }), 'JB_INVALID_REQUEST', /api_name: must be a string matching .*, got number 5/);
    await refused(Subjects.request.jobs, JSON.stringify({ api_name: [API], limit: true }), 'JB_INVALID_REQUEST', /api_name.*limit/);
    await refused(Subjects.request.jobs, '[1]', 'JB_INVALID_REQUEST', /got a JSON array/);

    const all = await request(Subjects.request.jobs, '');
    assert.equal(all.ok, true, JSON.stringify(all.error));
    assert.ok((all.jobs ?? []).length >= 1, 'an empty body lists the jobs');
    const one = await request(Subjects.request.jobs, JSON.stringify({ api_name: API, limit: 1 }));
    assert.equal(one.jobs?.length, 1);
    assert.equal(one.jobs?.[0]?.api_name, API);
    assert.equal(typeof one.jobs?.[0]?.priority, 'number');
    const none = await request(Subjects.request.jobs, JSON.stringify({ api_name: 'other' }));
    assert.deepEqual(none.jobs, []);
  });

  test('CLI: submit --priority, pause and resume say what happened; status and jobs show priority and paused', async () => {
    const dir = tempDir('jetbatch-pause-cli-items-');
    const items = join(dir, 'items.json');
    // 200 batches of 250 ms one at a time: far longer than this test, which stops the job at the end.
    writeFileSync(items, JSON.stringify(Array.from({ length: 200 }, (_, i) => i)));

    const jobId = (await cliOk('submit', API, '--items', items, '--batch-size', '1', '--workers', '1', '--priority', '5', '--config', '{"delay_ms":250}')).trim();
    assert.match(jobId, /^[0-9a-f]{20}$/);
    assert.equal((JSON.parse(await cliOk('status', jobId, '--json')) as JobStatus).priority, 5);
    const line = await cliOk('status', jobId);
    assert.match(line, new RegExp(`^${jobId}  ${API}  (pending|running)  priority=5  `));
    assert.match(line, /\n  running now: \d+ batch(es)? on \d+ daemons?\n$/);

    assert.match(await cliOk('pause', jobId), new RegExp(`^paused ${jobId} \\((pending|running)\\); no new batch of it starts\\n$`));
    const paused = await cliOk('status', jobId);
    assert.match(paused, /^\S+  pc  (pending|running) \(paused\)  priority=5  /);
    assert.match(paused, /\n  paused since \d{4}-\d\d-\d\dT[\d:.]+Z \(\d+s ago\)/);
    const listed = (await cliOk('jobs', '--api', API)).split('\n').find((l) => l.startsWith(jobId));
    assert.ok(listed !== undefined, 'jobs lists the job');
    assert.match(listed, /  (pending|running) \(paused\)  priority=5  .* running=\d+ /);
    const pausedAt = (await client.record(jobId)).paused_at;
    assert.equal(await cliOk('pause', jobId), `${jobId} was already paused since ${pausedAt}\n`);

    assert.match(await cliOk('resume', jobId), new RegExp(`^resumed ${jobId} \\((pending|running)\\) after \\d+\\.\\ds paused\\n$`));
    assert.match(await cliOk('resume', jobId), new RegExp(`^${jobId} was not paused \\((pending|running)\\)\\n$`));
    const resumed = JSON.parse(await cliOk('status', jobId, '--json')) as JobStatus;
    assert.equal(resumed.paused_at, null);
    assert.doesNotMatch(await cliOk('status', jobId), /paused/);

    // Errors: exit 2 for an unknown job, 1 for an ended one (the exit codes of cli/common.ts).
    const unknown = await cli('pause', 'no-such-job');
    assert.equal(unknown.code, 2, unknown.stderr);
    assert.match(unknown.stderr, /JB_JOB_NOT_FOUND/);
    await client.pause(jobId);
    assert.equal(await cliOk('stop', jobId), `${jobId} stopped\n`, 'stop works on a paused job');
    for (const command of ['pause', 'resume']) {
      const ended = await cli(command, jobId);
      assert.equal(ended.code, 1, ended.stderr);
      assert.match(ended.stderr, /JB_JOB_ENDED: .*stopped/);
    }
  });

  test('CLI: --priority 1.5 or 5000 is an argument error (exit 2) and nothing is submitted', async () => {
    const dir = tempDir('jetbatch-pause-cli-items-');
    const items = join(dir, 'items.json');
    writeFileSync(items, '[1, 2, 3]');
    const before = (await client.jobs({ limit: 1000 })).length;
    for (const [priority, pattern] of [['1.5', /priority: .*int/], ['5000', /priority: .*1000/]] as const) {
      const r = await cli('submit', API, '--items', items, '--batch-size', '1', '--priority', priority, '--job-id', 'bad-priority');
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /JB_INVALID_SUBMISSION/);
      assert.match(r.stderr, pattern);
      assert.equal(r.stdout, '');
    }
    await rejectsWith(client.status('bad-priority'), 'JB_JOB_NOT_FOUND');
    assert.equal((await client.jobs({ limit: 1000 })).length, before, 'no job was registered');
  });
});
