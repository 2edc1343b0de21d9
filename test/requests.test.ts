/**
 * One validation rule for every one-request endpoint (issue #14, items 12 and 13), against a real in-process
 * daemon: a body that is not a JSON object or a MessagePack map is refused saying what was expected and what
 * arrived (an empty body only for `jobs`); unknown keys, a bad `job_id`, `api_name` or `limit` are
 * JB_INVALID_REQUEST naming the field (a submission keeps JB_INVALID_SUBMISSION); good requests still work. The
 * client's and the CLI's job-id checks use the same code, and the CLI exits 2 for it.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ClosedConnectionError, DrainingConnectionError, connect, type NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import { JetbatchClient } from '../src/client/client.js';
import { ExitCodes, exitCodeFor } from '../src/cli/common.js';
import { Daemon } from '../src/daemon/daemon.js';
import { parseConfig } from '../src/daemon/config.js';
import { isConnectionClosing } from '../src/daemon/requests.js';
import { ErrorCodes, JetbatchError, type ErrorCode } from '../src/errors.js';
import { Subjects, encodeValue } from '../src/fleet/protocol.js';
import type { JobRecord, JobStatus } from '../src/types.js';
import { FIXTURES, ROOT, daemonConfig, startDaemon, tempDir } from './helpers/daemon.js';
import { runCli } from './helpers/cli.js';
import { NatsServer } from './helpers/nats-server.js';

interface Reply {
  ok: boolean;
  job?: JobRecord;
  status?: JobStatus;
  jobs?: JobStatus[];
  error?: { code: string; message: string; details?: string[] };
}

const S = Subjects.request;
/** The endpoints whose body is `{"job_id": str}`, with the name their messages use. */
const JOB_ID_ENDPOINTS: ReadonlyArray<[string, string]> = [[S.status, 'status'], [S.stop, 'stop'], [S.pause, 'pause'], [S.resume, 'resume']];
const EXPECTED = 'expected a JSON object or a MessagePack map';

describe('one rule for every request', () => {
  let server: NatsServer;
  let daemon: Daemon;
  let client: JetbatchClient;
  let nc: NatsConnection;

  before(async () => {
    server = await NatsServer.start();
    daemon = await startDaemon(server.url, [{ name: 'echo', project: join(ROOT, 'handlers', 'echo'), threads: 1 }]);
    client = await JetbatchClient.connect({ servers: [server.url] });
    nc = await connect({ servers: server.url });
  });

  after(async () => {
    await client?.close();
    await nc?.close();
    await daemon?.close();
    await server?.dispose();
  });

  async function request(subject: string, body: Uint8Array | string): Promise<Reply> {
    return (await nc.request(subject, body, { timeout: 15_000 })).json<Reply>();
  }

  /** Asserts the reply is an error of `code` whose message matches every pattern; returns it. */
  async function refused(subject: string, body: Uint8Array | string, code: ErrorCode, ...patterns: RegExp[]): Promise<{ message: string; details?: string[] }> {
    const reply = await request(subject, body);
    const label = `${subject} ${typeof body === 'string' ? body : Buffer.from(body).toString('hex')}`;
    assert.equal(reply.ok, false, `${label} accepted: ${JSON.stringify(reply).slice(0, 200)}`);
    assert.equal(reply.error?.code, code, `${label}: ${reply.error?.message}`);
    for (const p of patterns) assert.match(reply.error?.message ?? '', p, label);
    return reply.error!;
  }

  test('a JSON array, "hello" or a MessagePack string as the body: every endpoint says what it expected and what arrived', async () => {
    const bodies: ReadonlyArray<[Uint8Array | string, string]> = [
      ['[1,2,3]', 'a JSON array'],
      ['hello', 'bytes that are neither JSON nor MessagePack'],
      [encodeValue('echo'), 'a MessagePack string'],
      [encodeValue([1, 2]), 'a MessagePack array'],
      ['"echo"', 'a JSON string'],
      ['null', 'JSON null'],
      ['{"job_id":', 'malformed JSON'],
      [Uint8Array.of(0xc1), 'malformed MessagePack'],
    ];
    for (const [body, got] of bodies) {
      const message = (await refused(S.submit, body, ErrorCodes.INVALID_SUBMISSION)).message;
      assert.ok(message.includes(`${EXPECTED}, got ${got}`), message);
      assert.doesNotMatch(message, /Extra \d+ of \d+ byte/, 'no decoder noise when the bytes are not MessagePack at all');
      for (const [subject, name] of JOB_ID_ENDPOINTS) {
        const m = (await refused(subject, body, ErrorCodes.INVALID_REQUEST)).message;
        assert.ok(m.startsWith(`invalid ${name} request: ${EXPECTED}, got ${got}`), m);
      }
      const jobs = (await refused(S.jobs, body, ErrorCodes.INVALID_REQUEST)).message;
      assert.ok(jobs.includes(`expected an empty body, a JSON object or a MessagePack map, got ${got}`), jobs);
    }
  });

  test('an empty body is allowed for jobs only', async () => {
    const jobs = await request(S.jobs, '');
    assert.equal(jobs.ok, true, JSON.stringify(jobs.error));
    await refused(S.submit, '', ErrorCodes.INVALID_SUBMISSION, /got an empty body/);
    for (const [subject] of JOB_ID_ENDPOINTS) await refused(subject, ' \n', ErrorCodes.INVALID_REQUEST, /got an empty body/);
  });

  test('unknown keys are JB_INVALID_REQUEST naming them, on status/stop/pause/resume and jobs', async () => {
    for (const [subject, name] of JOB_ID_ENDPOINTS) {
      const e = await refused(subject, JSON.stringify({ job_id: 'some-job', colour: 'red' }), ErrorCodes.INVALID_REQUEST, /colour: unknown key/);
      assert.ok(e.message.includes(`a ${name} request takes job_id only`), e.message);
      assert.deepEqual(e.details, [`colour: unknown key (a ${name} request takes job_id only)`]);
      await refused(subject, encodeValue({ jobId: 'some-job' }), ErrorCodes.INVALID_REQUEST, /jobId: unknown key/, /job_id: must be a string/);
    }
    await refused(S.jobs, JSON.stringify({ api: 'echo' }), ErrorCodes.INVALID_REQUEST, /api: unknown key \(a jobs request takes api_name and limit\)/);
    await refused(S.jobs, JSON.stringify({ limit: 5, status: 'failed' }), ErrorCodes.INVALID_REQUEST, /status: unknown key/);
  });

  test('a jobs limit that is not an integer from 1 to 1000 is refused (0 and 5000 too), naming limit', async () => {
    for (const limit of [0, 5000, 1001, -1, 2.5, 'x', '10', true, null, [5]]) {
      const e = await refused(S.jobs, JSON.stringify({ limit }), ErrorCodes.INVALID_REQUEST, /^invalid jobs request: limit: must be an integer from 1 to 1000, got /);
      assert.equal(e.details?.length, 1, e.message);
    }
    await refused(S.jobs, encodeValue({ limit: 5000 }), ErrorCodes.INVALID_REQUEST, /limit: must be an integer from 1 to 1000, got number 5000/);
  });

  test('an api_name that does not match the API name pattern is refused, naming api_name', async () => {
    for (const api of ['echo.>', 'Echo', '', '-x', 'a'.repeat(64), 5, null]) {
      await refused(S.jobs, JSON.stringify({ api_name: api }), ErrorCodes.INVALID_REQUEST, /^invalid jobs request: api_name: must be a string matching /);
    }
    const both = await refused(S.jobs, JSON.stringify({ api_name: 'echo.>', limit: 0 }), ErrorCodes.INVALID_REQUEST);
    assert.equal(both.details?.length, 2, 'every problem is listed');
  });

  test('a missing or malformed job_id is JB_INVALID_REQUEST naming job_id; a submission keeps JB_INVALID_SUBMISSION', async () => {
    for (const [subject, name] of JOB_ID_ENDPOINTS) {
      for (const [body, got] of [[{}, 'nothing'], [{ job_id: 42 }, 'number 42'], [{ job_id: 'a.b' }, '"a.b"'], [{ job_id: '' }, '""'], [{ job_id: null }, 'null']] as const) {
        const e = await refused(subject, JSON.stringify(body), ErrorCodes.INVALID_REQUEST);
        assert.equal(e.message, `invalid ${name} request: job_id: must be a string matching ^[A-Za-z0-9_-]{1,64}$, got ${got}`);
      }
      await refused(subject, encodeValue({ job_id: 'x'.repeat(65) }), ErrorCodes.INVALID_REQUEST, /job_id: /);
    }
    await refused(S.submit, JSON.stringify({ api_name: 'echo', job_id: 'a.b', items: [1], batch_size: 1 }), ErrorCodes.INVALID_SUBMISSION, /job_id/);
    await refused(S.submit, JSON.stringify({ api_name: 'echo', items: [1], batch_size: 1, colour: 1 }), ErrorCodes.INVALID_SUBMISSION, /colour/);
    assert.deepEqual((await request(S.jobs, '')).jobs, [], 'no refused request stored a job');
  });

  test('good requests still work, as JSON and as MessagePack', async () => {
    const submitted = await request(S.submit, JSON.stringify({ api_name: 'echo', job_id: 'good-1', items: [1, 2, 3], batch_size: 2 }));
    assert.equal(submitted.ok, true, JSON.stringify(submitted.error));
    await client.wait('good-1', { intervalMs: 100, timeoutMs: 30_000 });
    const viaPack = await request(S.submit, encodeValue({ api_name: 'echo', job_id: 'good-2', batches: [[1]] }));
    assert.equal(viaPack.ok, true, JSON.stringify(viaPack.error));
    await client.wait('good-2', { intervalMs: 100, timeoutMs: 30_000 });

    const status = await request(S.status, ' {"job_id": "good-1"} ');
    assert.deepEqual([status.ok, status.status?.status, status.status?.batch_metrics.succeeded], [true, 'succeeded', 2]);
    assert.equal((await request(S.status, encodeValue({ job_id: 'good-2' }))).status?.status, 'succeeded');
    assert.deepEqual((await request(S.jobs, '{}')).jobs?.map((j) => j.job_id).sort(), ['good-1', 'good-2']);
    assert.equal((await request(S.jobs, JSON.stringify({ api_name: 'echo', limit: 1 }))).jobs?.length, 1);
    assert.equal((await request(S.jobs, encodeValue({ limit: 1000 }))).jobs?.length, 2);
    assert.deepEqual((await request(S.jobs, JSON.stringify({ api_name: 'other' }))).jobs, []);
    const stopped = await request(S.stop, JSON.stringify({ job_id: 'good-1' }));
    assert.deepEqual([stopped.ok, stopped.job?.status], [true, 'succeeded'], 'stopping an ended job changes nothing');
    await refused(S.pause, JSON.stringify({ job_id: 'good-1' }), ErrorCodes.JOB_ENDED);
    await refused(S.resume, JSON.stringify({ job_id: 'no-such-job' }), ErrorCodes.JOB_NOT_FOUND, /no-such-job/);
  });

  test('client methods refuse a malformed job id with JB_INVALID_REQUEST; client.submit keeps JB_INVALID_SUBMISSION', async () => {
    const isCode = (code: ErrorCode) => (e: unknown) => e instanceof JetbatchError && e.code === code && /job_id/.test(e.message);
    for (const id of ['a.b', '', '>', 'x'.repeat(65)]) {
      await assert.rejects(client.status(id), isCode(ErrorCodes.INVALID_REQUEST), id);
      await assert.rejects(client.stop(id), isCode(ErrorCodes.INVALID_REQUEST), id);
      await assert.rejects(client.pause(id), isCode(ErrorCodes.INVALID_REQUEST), id);
      await assert.rejects(client.resume(id), isCode(ErrorCodes.INVALID_REQUEST), id);
      await assert.rejects(client.submit({ api_name: 'echo', job_id: id, items: [1], batch_size: 1 }), isCode(ErrorCodes.INVALID_SUBMISSION), id);
    }
  });

  test('client.jobs refuses a malformed api or limit with JB_INVALID_REQUEST naming it', async () => {
    const refused = (field: string) => (e: unknown) => e instanceof JetbatchError && e.code === ErrorCodes.INVALID_REQUEST && e.message.startsWith(`${field}:`);
    await assert.rejects(client.jobs({ api: 'Bad.Name' }), refused('api'));
    await assert.rejects(client.jobs({ limit: 0 }), refused('limit'));
    await assert.rejects(client.jobs({ limit: 2.5 }), refused('limit'));
    assert.ok(Array.isArray(await client.jobs({ api: 'echo', limit: 5000 })), 'a local client may list more than one request does');
  });

  test('the CLI maps JB_INVALID_REQUEST to the bad-input exit code 2', async () => {
    assert.equal(exitCodeFor(new JetbatchError(ErrorCodes.INVALID_REQUEST, 'x')), ExitCodes.badInput);
    assert.equal(exitCodeFor(new JetbatchError(ErrorCodes.INVALID_SUBMISSION, 'x')), ExitCodes.badInput);
    const r = await runCli(['status', 'a.b'], server.url);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /JB_INVALID_REQUEST: job_id: /);
  });
});

describe('a request that fails because the daemon is shutting down', () => {
  test('is recognised (draining or closed connection, also as the cause of another error), and nothing else is', () => {
    assert.equal(isConnectionClosing(new DrainingConnectionError()), true);
    assert.equal(isConnectionClosing(new ClosedConnectionError()), true);
    assert.equal(isConnectionClosing(new Error('kv get failed', { cause: new DrainingConnectionError() })), true);
    assert.equal(isConnectionClosing(new JetbatchError(ErrorCodes.JOB_NOT_FOUND, 'job x not found')), false);
    assert.equal(isConnectionClosing(new Error('boom')), false);
    assert.equal(isConnectionClosing('draining'), false);
  });

  test('a daemon closing while a status request is answered logs no error', async () => {
    const server = await NatsServer.start();
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(l) });
    const options = parseConfig(daemonConfig(server.url, [{ name: 'closing', project: join(FIXTURES, 'recorder'), threads: 1, config: { record_dir: tempDir() } }]), join(ROOT, 'config', 'test.yaml'));
    const daemon = await Daemon.start(options, { logger });
    const nc = await connect({ servers: server.url });
    try {
      // Requests in flight while the daemon drains: each is answered or left unanswered, never logged as a failure.
      const inFlight = Array.from({ length: 20 }, () => nc.request('jetbatch.req.status', new TextEncoder().encode('{"job_id":"nope"}'), { timeout: 2000 }).catch(() => null));
      await daemon.close();
      await Promise.all(inFlight);
      const errors = lines.map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.level >= 50);
      assert.deepEqual(errors.map((e) => e.msg), [], 'no error-level log on a clean shutdown');
    } finally {
      await nc.close();
      await server.dispose();
    }
  });
});
