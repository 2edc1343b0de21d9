/** Handler projects: file rules, .env isolation, deploy through the Object Store, versions, unsafe archives, reload. */
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { JetbatchClient } from '../src/client/client.js';
import type { Daemon } from '../src/daemon/daemon.js';
import { JetbatchError } from '../src/errors.js';
import { packProject, readArchive, unpackArchive } from '../src/project/archive.js';
import { listProjectFiles } from '../src/project/files.js';
import { encodeValue } from '../src/fleet/protocol.js';
import { DaemonProcess, FIXTURES, ROOT, daemonConfig, startDaemon, tempDir } from './helpers/daemon.js';
import { NatsServer } from './helpers/nats-server.js';
import { waitUntil } from './helpers/wait.js';

/** A copy of the versioned fixture inside the checkout (so a local copy resolves packages like any project here). */
function project(version: string, env?: string): string {
  mkdirSync(join(ROOT, 'test', '.tmp'), { recursive: true });
  const dir = join(mkdtempSync(join(ROOT, 'test', '.tmp', 'project-')), 'versioned');
  cpSync(join(FIXTURES, 'versioned'), dir, { recursive: true });
  writeFileSync(join(dir, 'VERSION'), version);
  if (env !== undefined) writeFileSync(join(dir, '.env'), `VERSIONED_ENV=${env}\n`);
  return dir;
}

describe('project files', () => {
  test('dotfiles, the API config file, links and ignored paths stay behind; .env travels', async () => {
    const dir = tempDir();
    const files: Record<string, string> = {
      'handler.ts': 'x', '.env': 'A=1', '.secret': 's', '.git/config': 'g', 'jetbatch.yaml': 'c', 'cortex.yaml': 'c',
      'model/weights.bin': 'w', 'data/big.csv': 'b', 'notes.tmp': 't', 'sub/.hidden': 'h', 'keep/me.txt': 'k',
      '.jetbatchignore': 'data/\n*.tmp\n', '.cortexignore': 'legacy/\n', 'legacy/old.py': 'o',
    };
    for (const [p, c] of Object.entries(files)) {
      mkdirSync(join(dir, p, '..'), { recursive: true });
      writeFileSync(join(dir, p), c);
    }
    symlinkSync('/etc/passwd', join(dir, 'link'));
    const { files: listed, skipped } = await listProjectFiles(dir);
    assert.deepEqual(listed.map((f) => f.path).sort(), ['.env', 'handler.ts', 'keep/me.txt', 'model/weights.bin']);
    assert.deepEqual(skipped, ['link']);
  });

  test('archives refuse path traversal, absolute paths, duplicates and oversized content; nothing is written', async () => {
    const bad = (files: unknown[]) => encodeValue({ format: 'jetbatch-project/1', files });
    const data = new Uint8Array([1]);
    for (const path of ['../evil', 'a/../../evil', '/etc/evil', 'a\\..\\evil', '', './a', 'a//b']) {
      assert.throws(() => readArchive(bad([{ path, mode: 0o644, data }])), (e: unknown) => e instanceof JetbatchError && e.code === 'JB_INVALID_SUBMISSION', path);
    }
    assert.throws(() => readArchive(bad([{ path: 'a', mode: 0o644, data }, { path: 'a', mode: 0o644, data }])), /twice/);
    assert.throws(() => readArchive(bad([{ path: 'a', mode: 0o644, data: new Uint8Array(2000) }]), { maxBytes: 1000, maxFiles: 10 }), (e: unknown) => e instanceof JetbatchError && e.code === 'JB_PAYLOAD_TOO_LARGE');
    assert.throws(() => readArchive(bad(Array.from({ length: 11 }, (_, i) => ({ path: `f${i}`, mode: 0o644, data }))), { maxBytes: 1000, maxFiles: 10 }), /11 files/);
    assert.throws(() => readArchive(new Uint8Array([0xdd, 0xff, 0xff, 0xff, 0xff])), (e: unknown) => e instanceof JetbatchError);
    const target = join(tempDir(), 'out');
    await assert.rejects(unpackArchive(bad([{ path: 'ok.txt', mode: 0o644, data }, { path: '../escape.txt', mode: 0o644, data }]), target));
    assert.equal(existsSync(target), false);
    assert.equal(existsSync(join(target, '..', 'escape.txt')), false);
    assert.deepEqual(readdirSync(join(target, '..')), [], 'the temp folder is cleaned up');
    await assert.rejects(packProject(project('big'), { maxBytes: 10, maxFiles: 100 }), (e: unknown) => e instanceof JetbatchError && e.code === 'JB_PAYLOAD_TOO_LARGE' && /limit/.test(e.message));
  });

  test('a packed project unpacks to the same files, modes kept', async () => {
    const dir = project('v-test', 'round-trip');
    writeFileSync(join(dir, 'run.sh'), '#!/bin/sh\n', { mode: 0o755 });
    const packed = await packProject(dir);
    const target = join(tempDir(), 'p');
    await unpackArchive(packed.bytes, target);
    assert.deepEqual(readdirSync(target).sort(), ['.env', 'VERSION', 'handler.ts', 'run.sh']);
  });
});

describe('deployed projects and .env isolation', () => {
  let server: NatsServer;
  let local: Daemon;
  let fleet: Daemon;
  let client: JetbatchClient;

  before(async () => {
    server = await NatsServer.start();
    local = await startDaemon(server.url, [
      { name: 'env-a', project: project('a', 'value-a'), threads: 1 },
      { name: 'env-b', project: project('b', 'value-b'), threads: 1 },
    ]);
    fleet = await startDaemon(server.url, [{ name: 'shipped', deployed: true, threads: 2 }], { state_dir: tempDir('jetbatch-state-') });
    client = await JetbatchClient.connect({ servers: [server.url] });
  });

  after(async () => {
    await client?.close();
    await fleet?.close();
    await local?.close();
    await server?.dispose();
  });

  async function results(jobId: string): Promise<Array<{ version: string; env: string | null }>> {
    const out = [];
    for await (const r of client.results(jobId)) out.push(r.result as { version: string; env: string | null });
    return out;
  }

  test('each API sees its own .env; the daemon process does not', async () => {
    const [a, b] = await Promise.all(['env-a', 'env-b'].map((api) => client.submit({ api_name: api, batches: [[1], [2]] })));
    await Promise.all([a!, b!].map((j) => client.wait(j.job_id, { intervalMs: 100, timeoutMs: 30_000 })));
    assert.deepEqual((await results(a!.job_id)).map((r) => r.env), ['value-a', 'value-a']);
    assert.deepEqual((await results(b!.job_id)).map((r) => r.env), ['value-b', 'value-b']);
    assert.equal(process.env.VERSIONED_ENV, undefined);
  });

  test('deploy: a daemon serving deployed APIs loads the project from the Object Store and runs a job', async () => {
    const d = await client.deploy(project('one', 'shipped-env'), 'shipped');
    assert.equal(d.version, 1);
    const job = await client.submit({ api_name: 'shipped', batches: [[1], [2], [3]] });
    assert.equal(job.project_version, 1);
    const final = await client.wait(job.job_id, { intervalMs: 100, timeoutMs: 30_000 });
    assert.equal(final.status, 'succeeded');
    assert.deepEqual(await results(job.job_id), Array(3).fill({ version: 'one', env: 'shipped-env' }));
  });

  test('a version deployed mid-job leaves the running job on its version; new jobs use the new one', async () => {
    const workers = 2;
    const running = await client.submit({ api_name: 'shipped', items: Array.from({ length: 40 }, (_, i) => i), batch_size: 1, workers, config: { delay_ms: 150 } });
    // Deploy once the job has run a batch (on version one), so the deploy lands mid-job.
    await waitUntil('the running job to finish its first batch', async () => {
      const s = await client.status(running.job_id);
      assert.ok(['pending', 'enqueuing', 'running'].includes(s.status), `the job is ${s.status} before the deploy: make it longer`);
      return s.batch_metrics.succeeded >= 1;
    }, { timeoutMs: 30_000 });
    const v2 = await client.deploy(project('two'), 'shipped');
    assert.equal(v2.version, running.project_version! + 1);
    // Still mid-job after the deploy: more batches left than the daemon can hold (at most `workers` received at once),
    // so at least one batch of the job is received, and runs, only after version two is deployed.
    const mid = await client.status(running.job_id);
    assert.equal(mid.status, 'running', 'the job is still running after the deploy');
    assert.ok(mid.batches_in_queue > workers, `batches left after the deploy: ${mid.batches_in_queue}`);
    const next = await client.submit({ api_name: 'shipped', batches: [[1], [2]] });
    assert.equal(next.project_version, v2.version);
    const [f1, f2] = await Promise.all([running, next].map((j) => client.wait(j.job_id, { intervalMs: 100, timeoutMs: 60_000 })));
    assert.equal(f1!.status, 'succeeded');
    assert.equal(f2!.status, 'succeeded');
    assert.deepEqual(new Set((await results(running.job_id)).map((r) => r.version)), new Set(['one']));
    assert.deepEqual(new Set((await results(next.job_id)).map((r) => r.version)), new Set(['two']));
    const versions = (await client.deployments()).filter((d) => d.api_name === 'shipped').map((d) => d.version);
    assert.deepEqual(versions, [v2.version, v2.version - 1]);
  });
});

describe('SIGHUP reload', () => {
  test('re-reading the config adds an API without a restart', async () => {
    const server = await NatsServer.start();
    const apis = [{ name: 'first', project: project('first'), threads: 1 }];
    const daemon = await DaemonProcess.spawn(server.url, apis);
    const client = await JetbatchClient.connect({ servers: [server.url] });
    try {
      await assert.rejects(client.submit({ api_name: 'second', batches: [[1]] }), (e: unknown) => e instanceof JetbatchError && e.code === 'JB_UNKNOWN_API');
      const running = await client.submit({ api_name: 'first', items: Array.from({ length: 6 }, (_, i) => i), batch_size: 1, config: { delay_ms: 200 } });
      // The daemon was spawned with its own file; rewrite that file and signal.
      const file = (daemon.proc.spawnargs[daemon.proc.spawnargs.indexOf('--config') + 1])!;
      writeFileSync(file, stringify(daemonConfig(server.url, [...apis, { name: 'second', project: project('second'), threads: 1 }], { log_level: 'info' })));
      daemon.proc.kill('SIGHUP');
      await daemon.waitFor(/configuration reloaded/, 15_000);
      const job = await client.submit({ api_name: 'second', batches: [[1]] });
      assert.equal((await client.wait(job.job_id, { intervalMs: 100, timeoutMs: 30_000 })).status, 'succeeded');
      const first = await client.wait(running.job_id, { intervalMs: 100, timeoutMs: 30_000 });
      assert.equal(first.status, 'succeeded', 'the unchanged API kept running through the reload');
      assert.equal(first.batch_metrics.succeeded, 6);
      writeFileSync(file, 'apis: [ { name: "broken" ');
      daemon.proc.kill('SIGHUP');
      await daemon.waitFor(/reload failed; keeping the running configuration/, 15_000);
      const again = await client.submit({ api_name: 'second', batches: [[1]] });
      assert.equal((await client.wait(again.job_id, { intervalMs: 100, timeoutMs: 30_000 })).status, 'succeeded');
    } finally {
      await client.close();
      assert.equal(await daemon.kill('SIGTERM'), 0, daemon.output);
      await server.dispose();
    }
  });
});
