/**
 * The CLI as a new user meets it (issue #14, items 5 and 9), run as child processes: why a job failed and where its
 * failed batches are, `--version`, durations in `--timeout` / `--batch-timeout`, `jobs --status`. A real daemon
 * runs in-process for the jobs; the flag checks need no server (they fail before connecting).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { JetbatchClient } from '../src/client/client.js';
import type { Daemon } from '../src/daemon/daemon.js';
import { FIXTURES, ROOT, startDaemon, tempDir } from './helpers/daemon.js';
import { NatsServer } from './helpers/nats-server.js';

/** Nothing listens on port 1: reaching the server would be exit 3 (JB_CONNECTION_FAILED). */
const UNREACHABLE = 'nats://127.0.0.1:1';

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[], server = UNREACHABLE): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), ...args, '--server', server], { cwd: ROOT, timeout: 120_000 }, (err, stdout, stderr) =>
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr }),
    );
  });
}

/** The job id a `submit` without --wait prints. */
async function submitted(args: string[], server: string): Promise<string> {
  const r = await cli(['submit', ...args], server);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

describe('CLI without a server: flags are checked before connecting', () => {
  test('--version prints the version of package.json', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const r = await cli(['--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), pkg.version);
  });

  test('--timeout 30x is exit 2 with a clear message', async () => {
    const r = await cli(['submit', 'echo', '--batches', join(ROOT, 'package.json'), '--timeout', '30x']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /JB_INVALID_SUBMISSION: --timeout must be a duration .*got "30x"/);
  });

  test('jobs --status nope is exit 2 naming the statuses', async () => {
    const r = await cli(['jobs', '--status', 'succeeded,nope']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /JB_INVALID_REQUEST: --status takes job statuses.*completed_with_failures.*got "nope"/);
  });

  test('submit --help states the workers default', async () => {
    const r = await cli(['submit', '--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.replace(/\s+/g, ' '), /--workers <n> .*\(default 1\)/);
  });
});

describe('CLI against a daemon: failure reasons, durations, jobs --status', () => {
  let server: NatsServer;
  let daemon: Daemon;
  let client: JetbatchClient;
  const dir = tempDir('jetbatch-cli-usability-');
  const items = join(dir, 'items.json');
  writeFileSync(items, '[1, 2, 3]');
  const ids: Record<string, string> = {};

  before(async () => {
    server = await NatsServer.start();
    daemon = await startDaemon(server.url, [
      { name: 'echo', project: join(ROOT, 'handlers', 'echo'), threads: 2 },
      { name: 'ctor', project: join(FIXTURES, 'ctor-throws'), threads: 1 },
      { name: 'flaky', project: join(FIXTURES, 'always-throws'), threads: 1 },
    ]);
    client = await JetbatchClient.connect({ servers: [server.url] });
  });

  after(async () => {
    await client?.close();
    await daemon?.close();
    await server?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a worker_error job: submit --wait and status show the error code and message', async () => {
    const r = await cli(['submit', 'ctor', '--items', items, '--batch-size', '1', '--wait'], server.url);
    assert.equal(r.code, 1, r.stderr);
    const [line, ...details] = r.stdout.trim().split('\n');
    assert.match(line ?? '', /  worker_error  /);
    assert.equal(details.length, 1, r.stdout);
    assert.match(details[0] ?? '', /^  error: JB_HANDLER_INIT_FAILED: .*cannot load model weights from \/nonexistent/);
    ids.workerError = (line ?? '').split(' ')[0] ?? '';
    const status = await cli(['status', ids.workerError], server.url);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /\n  error: JB_HANDLER_INIT_FAILED: .*cannot load model weights/);
    assert.doesNotMatch(status.stdout, /see: jetbatch dlq/);
  });

  test('a completed_with_failures job: submit --wait and status end with the dlq hint', async () => {
    const args = ['flaky', '--items', items, '--batch-size', '1', '--max-attempts', '1', '--config', '{"fail":["1"]}', '--wait'];
    const r = await cli(['submit', ...args], server.url);
    assert.equal(r.code, 1, r.stderr);
    const id = r.stdout.split(' ')[0] ?? '';
    assert.match(r.stdout, /  completed_with_failures  /);
    assert.match(r.stdout, new RegExp(`\\n  see: jetbatch dlq ${id}\\n$`));
    ids.withFailures = id;
    const status = await cli(['status', id], server.url);
    assert.match(status.stdout, new RegExp(`\\n  see: jetbatch dlq ${id}\\n$`));
  });

  test('--timeout 30s and --batch-timeout 500ms are durations; a bare number stays seconds', async () => {
    const id = await submitted(['echo', '--items', items, '--batch-size', '1', '--timeout', '30s', '--batch-timeout', '500ms'], server.url);
    const record = await client.record(id);
    assert.equal(record.timeout, 30);
    assert.equal(record.batch_timeout, 0.5);
    const bare = await submitted(['echo', '--items', items, '--batch-size', '1', '--timeout', '90'], server.url);
    assert.equal((await client.record(bare)).timeout, 90);
    for (const job of [id, bare]) assert.equal((await client.wait(job, { intervalMs: 100, timeoutMs: 60_000 })).status, 'succeeded');
    ids.succeeded = id;
  });

  test('jobs --status lists only jobs in those statuses; --limit counts the matching ones', async () => {
    const only = await cli(['jobs', '--status', 'succeeded'], server.url);
    assert.equal(only.code, 0, only.stderr);
    const lines = only.stdout.trim().split('\n');
    assert.equal(lines.length, 2, only.stdout);
    for (const l of lines) assert.match(l, /  succeeded  /);
    assert.ok(lines.some((l) => l.startsWith(`${ids.succeeded ?? '?'} `)));
    const failed = await cli(['jobs', '--status', 'worker_error,completed_with_failures', '--json'], server.url);
    const statuses = (JSON.parse(failed.stdout) as Array<{ job_id: string; status: string }>).map((s) => `${s.job_id} ${s.status}`).sort();
    assert.deepEqual(statuses, [`${ids.workerError} worker_error`, `${ids.withFailures} completed_with_failures`].sort());
    // The worker_error job is the oldest: a limit applied before the filter would leave nothing.
    const limited = await cli(['jobs', '--status', 'worker_error', '--limit', '1'], server.url);
    assert.equal(limited.stdout.trim(), limited.stdout.trim().split('\n')[0]);
    assert.ok(limited.stdout.startsWith(`${ids.workerError ?? '?'} `), limited.stdout);
  });
});
