/**
 * A daemon that cannot start exits with a code and one clear `jetbatch: JB_…` line, and nothing keeps running behind
 * it (issue #14, item 2): a metrics port that is taken (it used to print `listen EADDRINUSE`, never exit, and log a
 * watch failure every second), and a NATS server without JetStream (it used to retry for two minutes). The daemon
 * runs as `jetbatch start` in a child process.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { FIXTURES, ROOT, daemonConfig, tempDir } from './helpers/daemon.js';
import { NatsServer, freePort, natsServerBinary } from './helpers/nats-server.js';
import { waitUntil } from './helpers/wait.js';

interface Ended {
  code: number | null;
  stderr: string;
  stdout: string;
  ms: number;
}

/** Runs `jetbatch start` with `config` until it exits (or 60 s: then the test fails, the process is killed). */
async function start(config: Record<string, unknown>): Promise<Ended> {
  const file = join(tempDir('jetbatch-startup-'), 'jetbatch.yaml');
  writeFileSync(file, stringify(config));
  const started = Date.now();
  const proc: ChildProcess = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), 'start', '--config', file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => proc.kill('SIGKILL'), 60_000);
    proc.once('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  return { code, stderr, stdout, ms: Date.now() - started };
}

const api = { name: 'echo', project: join(FIXTURES, 'recorder'), threads: 1, config: { record_dir: tempDir() } };

describe('a daemon that cannot start', () => {
  const cleanup: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanup) await c();
  });

  test('metrics port already in use: exit 2 with one JB_INVALID_CONFIG line, nothing left running', async () => {
    const server = await NatsServer.start();
    cleanup.push(() => server.dispose());
    const taken: Server = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', () => resolve()));
    cleanup.push(() => new Promise<void>((resolve) => taken.close(() => resolve())));
    const port = (taken.address() as { port: number }).port;
    const r = await start(daemonConfig(server.url, [api], { metrics: { listen: `127.0.0.1:${port}` }, log_level: 'info' }));
    assert.equal(r.code, 2, `exit code; stderr:\n${r.stderr}`);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('jetbatch: '));
    assert.deepEqual(errors, [`jetbatch: JB_INVALID_CONFIG: metrics.listen 127.0.0.1:${port}: cannot listen: the address is already in use (another daemon on this host?)`]);
    assert.doesNotMatch(r.stdout + r.stderr, /watch failed|EADDRINUSE\n\s+at /, 'no watch restarting behind it, no stack trace');
    assert.ok(r.ms < 30_000, `exited after ${r.ms} ms`);
  });

  test('a NATS server without JetStream: exit 3 with one JB_CONNECTION_FAILED line saying so', async () => {
    const port = await freePort();
    const plain = spawn(natsServerBinary(), ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
    cleanup.push(async () => {
      plain.kill('SIGKILL');
    });
    await waitUntil('the plain nats-server to listen', () => new Promise<boolean>((resolve) => {
      const probe = createServer();
      probe.once('error', () => resolve(true));
      probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(false)));
    }), { timeoutMs: 10_000 });
    const r = await start(daemonConfig(`nats://127.0.0.1:${port}`, [api], { log_level: 'warn' }));
    assert.equal(r.code, 3, `exit code; stderr:\n${r.stderr}`);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('jetbatch: '));
    assert.deepEqual(errors, ['jetbatch: JB_CONNECTION_FAILED: the NATS server has no JetStream: start nats-server with -js (or a jetstream {} block in its config)']);
    assert.ok(r.ms < 30_000, `gave up after ${r.ms} ms, not after minutes of retrying`);
  });
});
