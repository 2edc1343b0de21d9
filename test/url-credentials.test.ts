/**
 * Credentials in server URLs (`nats://user:pass@host:port`, `nats://token@host:port`, the convention of the `nats`
 * CLI and nats.go), for every way a server list reaches jetbatch: the client's `servers`, the daemon's
 * `nats.servers`, the CLI's `--server` and NATS_URL, and `jetbatch start --server`. NATS.js drops the userinfo of a
 * URL, so without jetbatch taking it out these fail with `Authorization Violation`. Wherever a URL is shown
 * (connection errors, config errors, the daemon's output, /metrics) the secret part is redacted.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { JetbatchClient } from '../src/client/client.js';
import { parseConfig } from '../src/daemon/config.js';
import type { Daemon } from '../src/daemon/daemon.js';
import { JetbatchError } from '../src/errors.js';
import { parseServerUrls, redactUrl } from '../src/fleet/server-url.js';
import type { JobStatus } from '../src/types.js';
import { DaemonProcess, ROOT, daemonConfig, startDaemon, tempDir } from './helpers/daemon.js';
import { NatsServer } from './helpers/nats-server.js';

const execFileP = promisify(execFile);
const ECHO = { name: 'echo', project: join(ROOT, 'handlers', 'echo'), threads: 1 };
const dir = tempDir('jetbatch-urlcred-');
const itemsFile = join(dir, 'items.json');
writeFileSync(itemsFile, JSON.stringify([1, 2, 3, 4, 5, 6]));

// Secrets hold characters a URL must percent-encode; each has a random part that must never be printed.
const passMark = randomBytes(8).toString('hex');
const password = `p@ss/w:rd%-${passMark}`;
const wrongMark = randomBytes(8).toString('hex');
const wrongPassword = `wrong-${wrongMark}`;
const tokenMark = randomBytes(8).toString('hex');
const token = `tok-${tokenMark}`;

const withUser = (port: number, pass: string, user = 'jetbatch'): string =>
  `nats://${encodeURIComponent(user)}:${encodeURIComponent(pass)}@127.0.0.1:${port}`;
const withToken = (port: number, tok: string): string => `nats://${encodeURIComponent(tok)}@127.0.0.1:${port}`;

function assertNoSecrets(text: string, where: string, marks: readonly string[] = [passMark, wrongMark, tokenMark]): void {
  for (const m of marks) assert.ok(!text.includes(m), `${where} contains a secret (…${m.slice(0, 4)}…):\n${text}`);
}

interface CliResult {
  code: number | string;
  stdout: string;
  stderr: string;
}

/** Runs the CLI from source with no NATS_* variables but those given. */
async function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('NATS_')) clean[k] = v;
  try {
    const { stdout, stderr } = await execFileP(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), ...args], {
      cwd: ROOT,
      env: { ...clean, ...env },
      timeout: 90_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number | string; signal?: string; stdout?: string; stderr?: string };
    return { code: e.code ?? e.signal ?? 'unknown', stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

async function cliSubmitSucceeds(serverArgs: string[], env: Record<string, string> = {}): Promise<void> {
  const r = await cli(['submit', 'echo', '--items', itemsFile, '--batch-size', '2', '--wait', '--json', ...serverArgs], env);
  assert.equal(r.code, 0, `CLI failed (${r.code}):\n${r.stderr}`);
  const status = JSON.parse(r.stdout) as JobStatus;
  assert.equal(status.status, 'succeeded');
  assert.equal(status.batch_metrics.succeeded, 3);
  assertNoSecrets(r.stdout + r.stderr, 'CLI output');
}

async function clientRunsJob(servers: string[], extra: { user?: string; pass?: string } = {}): Promise<void> {
  const client = await JetbatchClient.connect({ servers, ...extra });
  try {
    const record = await client.submit({ api_name: 'echo', items: [1, 2, 3, 4], batch_size: 2 });
    const status = await client.wait(record.job_id, { timeoutMs: 30_000, intervalMs: 100 });
    assert.equal(status.status, 'succeeded');
  } finally {
    await client.close();
  }
}

async function rejection(p: Promise<unknown>): Promise<JetbatchError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof JetbatchError, `JetbatchError expected, got ${String(err)}`);
    return err;
  }
  return assert.fail('expected a rejection');
}

async function clientConnect(servers: string[]): Promise<void> {
  const c = await JetbatchClient.connect({ servers });
  await c.close();
}

// ---------------------------------------------------------------------------------------------------------------

describe('server URL parsing and redaction', () => {
  test('user/pass and token are taken out of the URLs, percent-decoded; URLs without credentials share them', () => {
    assert.deepEqual(parseServerUrls([withUser(4222, password), 'nats://127.0.0.1:4223']), {
      servers: ['nats://127.0.0.1:4222', 'nats://127.0.0.1:4223'],
      credentials: { kind: 'user', user: 'jetbatch', pass: password },
    });
    assert.deepEqual(parseServerUrls(['tls://a%40b@nats-1:4222/', 'tls://a%40b@nats-2']), {
      servers: ['tls://nats-1:4222/', 'tls://nats-2'],
      credentials: { kind: 'token', token: 'a@b' },
    });
    // No scheme, an unencoded '@' in the password (the last '@' ends the userinfo), an empty password.
    assert.deepEqual(parseServerUrls(['u:p@q@127.0.0.1:4222']).credentials, { kind: 'user', user: 'u', pass: 'p@q' });
    assert.deepEqual(parseServerUrls(['nats://u:@h:1']).credentials, { kind: 'user', user: 'u', pass: '' });
    assert.deepEqual(parseServerUrls(['nats://127.0.0.1:4222', '[::1]:4222']), { servers: ['nats://127.0.0.1:4222', '[::1]:4222'] });
  });

  test('redactUrl keeps the user and hides the password or token', () => {
    assert.equal(redactUrl(withUser(4222, password)), 'nats://jetbatch:***@127.0.0.1:4222');
    assert.equal(redactUrl(withToken(4222, token)), 'nats://***@127.0.0.1:4222');
    assert.equal(redactUrl('nats://127.0.0.1:4222'), 'nats://127.0.0.1:4222');
    assert.equal(redactUrl('u:p@q@h:1'), 'u:***@h:1');
  });

  test('different credentials in two URLs, or malformed percent-encoding, are JB_INVALID_CONFIG without the secrets', async () => {
    const urls = [withUser(4222, password), withUser(4223, wrongPassword)];
    for (const bad of [urls, [withUser(4222, password), withToken(4223, token)]]) {
      assert.throws(() => parseServerUrls(bad), (e: unknown) => {
        assert.ok(e instanceof JetbatchError);
        assert.equal(e.code, 'JB_INVALID_CONFIG');
        assert.match(e.message, /different credentials/);
        assertNoSecrets(e.message, 'error');
        return true;
      });
    }
    const err = await rejection(clientConnect(urls));
    assert.equal(err.code, 'JB_INVALID_CONFIG');
    assertNoSecrets(err.message, 'client error');
    assert.throws(() => parseConfig(daemonConfig('unused', [ECHO], { nats: { servers: urls } }), join(dir, 'x.yaml')), (e: unknown) => {
      assert.ok(e instanceof JetbatchError);
      assert.equal(e.code, 'JB_INVALID_CONFIG');
      assert.match(e.message, /nats\.servers: .*different credentials/);
      assertNoSecrets(e.message, 'config error');
      return true;
    });
    assert.throws(() => parseServerUrls([`nats://u:%zz${passMark}@h:1`]), (e: unknown) => {
      assert.ok(e instanceof JetbatchError && e.code === 'JB_INVALID_CONFIG');
      assertNoSecrets(e.message, 'error');
      return true;
    });
  });
});

describe('user and password in the URL', () => {
  let server: NatsServer;
  let daemon: Daemon;
  let url: string;
  let wrongUrl: string;

  before(async () => {
    server = await NatsServer.start({ config: `authorization { users: [ { user: "jetbatch", password: "${password}" } ] }` });
    url = withUser(server.port, password);
    wrongUrl = withUser(server.port, wrongPassword);
    // The daemon's only credentials are those in nats.servers.
    daemon = await startDaemon(server.url, [ECHO], { nats: { servers: [url] } });
  });
  after(async () => {
    await daemon?.close();
    await server?.dispose();
  });

  test('the daemon (nats.servers) and the client (servers) connect with the URL credentials; a job succeeds', async () => {
    await clientRunsJob([url]);
  });

  test('the CLI connects with --server nats://user:pass@… and with NATS_URL; jobs succeed', async () => {
    await cliSubmitSucceeds(['--server', url]);
    await cliSubmitSucceeds([], { NATS_URL: url });
  });

  test('explicit user/pass win over credentials in the URL', async () => {
    await clientRunsJob([wrongUrl], { user: 'jetbatch', pass: password });
    await cliSubmitSucceeds(['--user', 'jetbatch', '--password', password], { NATS_URL: wrongUrl });
  });

  test('a wrong password in the URL fails with JB_CONNECTION_FAILED, the URL shown redacted', async () => {
    const r = await cli(['jobs', '--server', wrongUrl]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /JB_CONNECTION_FAILED/);
    assert.match(r.stderr, /Authorization Violation/i);
    assert.ok(r.stderr.includes(`nats://jetbatch:***@127.0.0.1:${server.port}`), r.stderr);
    assertNoSecrets(r.stdout + r.stderr, 'CLI error');

    const fromEnv = await cli(['jobs'], { NATS_URL: wrongUrl });
    assert.equal(fromEnv.code, 3, fromEnv.stderr);
    assertNoSecrets(fromEnv.stdout + fromEnv.stderr, 'CLI error (NATS_URL)');

    const clientErr = await rejection(clientConnect([wrongUrl]));
    assert.equal(clientErr.code, 'JB_CONNECTION_FAILED');
    assert.match(clientErr.message, /Authorization Violation/i);
    assertNoSecrets(clientErr.message, 'client error');

    const daemonErr = await rejection(startDaemon('unused', [ECHO], { nats: { servers: [wrongUrl] } }));
    assert.equal(daemonErr.code, 'JB_CONNECTION_FAILED');
    assertNoSecrets(daemonErr.message, 'daemon error');
  });

  test('jetbatch start --server with a wrong password exits 3 without printing it', async () => {
    const file = join(dir, 'start-wrong.yaml');
    writeFileSync(file, stringify(daemonConfig(server.url, [ECHO], { log_level: 'info' })));
    const proc = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), 'start', '--config', file, '--server', wrongUrl], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    proc.stdout.on('data', (d: Buffer) => (output += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const code = await new Promise<number | null>((resolve) => proc.once('exit', (c) => resolve(c)));
    assert.equal(code, 3, output);
    assert.match(output, /JB_CONNECTION_FAILED/);
    assert.ok(output.includes('jetbatch:***@'), output);
    assertNoSecrets(output, 'jetbatch start output');
  });
});

describe('token in the URL (daemon as a process)', () => {
  let server: NatsServer;
  let daemon: DaemonProcess;
  let url: string;

  before(async () => {
    server = await NatsServer.start({ config: `authorization { token: "${token}" }` });
    url = withToken(server.port, token);
    daemon = await DaemonProcess.spawn(server.url, [ECHO], { nats: { servers: [url] } });
  });
  after(async () => {
    await daemon?.kill('SIGTERM');
    await server?.dispose();
  });

  test('jetbatch start (nats.servers), the client and the CLI (NATS_URL) connect with a token URL; jobs succeed', async () => {
    await clientRunsJob([url]);
    await cliSubmitSucceeds([], { NATS_URL: url });
  });

  test('a wrong token in the URL fails with JB_CONNECTION_FAILED and never prints it', async () => {
    const r = await cli(['jobs', '--server', withToken(server.port, `tok-${wrongMark}`)]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /JB_CONNECTION_FAILED/);
    assert.ok(r.stderr.includes(`nats://***@127.0.0.1:${server.port}`), r.stderr);
    assertNoSecrets(r.stdout + r.stderr, 'CLI error');
  });

  test('the daemon log and /metrics, /healthz, /readyz hold no token', async () => {
    const line = daemon.output.split('\n').find((l) => l.includes('"daemon started"'));
    assert.ok(line, 'daemon started line');
    const port = (JSON.parse(line) as { metrics: { port: number } }).metrics.port;
    for (const path of ['/metrics', '/healthz', '/readyz']) {
      const res = await fetch(`http://127.0.0.1:${port}${path}`);
      assertNoSecrets(await res.text(), path);
    }
    assertNoSecrets(daemon.output, 'daemon log');
  });
});
