/**
 * `jetbatch status --json` and the status reply say which limits are in effect (issue #14, item 5): `timeout: null`
 * means no job timeout, and the settings a job leaves to the API's config are listed in `from_api_config` (each
 * daemon applies its own config of the API, so no single number is known to the client). The one-request status
 * reply has the shape docs/PROTOCOL.md's examples read: `{"ok": true, "status": {"status": "<state>", …}}`.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { JetbatchClient } from '../src/client/client.js';
import type { Daemon } from '../src/daemon/daemon.js';
import { Subjects } from '../src/fleet/protocol.js';
import type { SubmissionInput } from '../src/fleet/submission.js';
import type { JobStatus } from '../src/types.js';
import { runCli } from './helpers/cli.js';
import { ROOT, startDaemon } from './helpers/daemon.js';
import { NatsServer } from './helpers/nats-server.js';

describe('status: the limits in effect', () => {
  let server: NatsServer;
  let daemon: Daemon;
  let client: JetbatchClient;
  let nc: NatsConnection;

  before(async () => {
    server = await NatsServer.start();
    daemon = await startDaemon(server.url, [{ name: 'echo', project: join(ROOT, 'handlers', 'echo'), threads: 1, max_attempts: 4, batch_timeout: '45s' }]);
    client = await JetbatchClient.connect({ servers: [server.url] });
    nc = await connect({ servers: server.url });
  });

  after(async () => {
    await client?.close();
    await nc?.close();
    await daemon?.close();
    await server?.dispose();
  });

  async function statusJson(settings: Partial<SubmissionInput>): Promise<JobStatus> {
    const job = await client.submit({ api_name: 'echo', items: [1, 2, 3], batch_size: 2, ...settings } as SubmissionInput);
    await client.wait(job.job_id, { timeoutMs: 30_000 });
    const r = await runCli(['status', job.job_id, '--json'], server.url);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as JobStatus;
  }

  test('a job that sets nothing: no timeout, and attempts, batch timeout and backoff from the API config', async () => {
    const s = await statusJson({});
    assert.equal(s.status, 'succeeded');
    assert.equal(s.timeout, null);
    assert.equal(s.max_attempts, null);
    assert.equal(s.batch_timeout, null);
    assert.equal(s.backoff, null);
    assert.deepEqual(s.from_api_config, ['max_attempts', 'batch_timeout', 'backoff']);
  });

  test("a job's own values are shown; a partial backoff takes the rest from the API config", async () => {
    const s = await statusJson({ timeout: 3600, max_attempts: 5, batch_timeout: 30, backoff: { initial_ms: 10 } });
    assert.deepEqual([s.timeout, s.max_attempts, s.batch_timeout, s.backoff], [3600, 5, 30, { initial_ms: 10 }]);
    assert.deepEqual(s.from_api_config, ['backoff']);
    const all = await statusJson({ max_attempts: 2, batch_timeout: 5, backoff: { initial_ms: 10, factor: 2, max_ms: 100, jitter: 0 } });
    assert.deepEqual(all.from_api_config, []);
  });

  test('the status reply, read as the PROTOCOL.md examples read it', async () => {
    const job = await client.submit({ api_name: 'echo', items: [1], batch_size: 1 });
    await client.wait(job.job_id, { timeoutMs: 30_000 });
    const reply = (await nc.request(Subjects.request.status, JSON.stringify({ job_id: job.job_id }), { timeout: 10_000 })).json<Record<string, unknown>>();
    assert.equal(reply.ok, true);
    const status = reply.status as JobStatus;
    assert.equal(status.status, 'succeeded', 'reply["status"]["status"] is the state');
    assert.equal(status.job_id, job.job_id);
    assert.deepEqual(status.from_api_config, ['max_attempts', 'batch_timeout', 'backoff']);
  });
});
