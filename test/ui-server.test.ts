/**
 * `jetbatch ui` without a browser: its options (JB_INVALID_CONFIG, exit 2), who may read and who may stop, the
 * Host check against DNS rebinding, the token off loopback, and a close() that ends open event streams.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { ErrorCodes, JetbatchError } from '../src/errors.js';
import { isLoopbackHost, parseListen, uiOptions } from '../src/ui/options.js';
import { escapeHtml, html } from '../src/ui/html.js';
import { FIXTURES, ROOT, startDaemon } from './helpers/daemon.js';
import { runCli } from './helpers/cli.js';
import { NatsServer } from './helpers/nats-server.js';
import { UI_TOKEN, startUi } from './helpers/ui.js';
import { waitUntil } from './helpers/wait.js';

/** A daemon provisions the streams and buckets the UI reads. */
const API = [{ name: 'recorder', project: join(FIXTURES, 'recorder'), threads: 1 }];

const invalid = (fn: () => unknown, pattern: RegExp): void =>
  assert.throws(fn, (err: unknown) => err instanceof JetbatchError && err.code === ErrorCodes.INVALID_CONFIG && pattern.test(err.message));

test('options: --listen forms, loopback detection, and the token rules', () => {
  assert.deepEqual(parseListen('127.0.0.1:8080'), { host: '127.0.0.1', port: 8080 });
  assert.deepEqual(parseListen('[::1]:9000'), { host: '::1', port: 9000 });
  assert.deepEqual(parseListen(':8080'), { host: '0.0.0.0', port: 8080 });
  assert.deepEqual(parseListen('localhost:0'), { host: 'localhost', port: 0 });
  for (const bad of ['8080', '127.0.0.1', '127.0.0.1:99999', '[nope]:80', 'a b:80']) invalid(() => parseListen(bad), /--listen/);
  for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) assert.ok(isLoopbackHost(h), h);
  for (const h of ['0.0.0.0', '::', '10.0.0.1', 'example.com']) assert.ok(!isLoopbackHost(h), h);
  assert.equal(uiOptions({}).token, null);
  assert.equal(uiOptions({}).loopback, true);
  invalid(() => uiOptions({ listen: '0.0.0.0:8080' }), /without a token/);
  invalid(() => uiOptions({ listen: ':8080' }), /without a token/);
  invalid(() => uiOptions({ token: 'short' }), /at least 16/);
  invalid(() => uiOptions({ token: 'has a space in the middle' }), /at least 16/);
  invalid(() => uiOptions({ allowHost: ['bad host'] }), /--allow-host/);
  const o = uiOptions({ listen: '0.0.0.0:0', token: UI_TOKEN, allowHost: ['Jobs.Example.com,other.example'] });
  assert.equal(o.loopback, false);
  assert.deepEqual(o.allowHosts, ['jobs.example.com', 'other.example']);
  assert.ok(Object.isFrozen(o));
});

test('html: every interpolated value is escaped, nested html is not escaped twice', () => {
  const evil = `<img src=x onerror="alert('1')">&\``;
  assert.equal(escapeHtml(evil), '&lt;img src=x onerror=&quot;alert(&#39;1&#39;)&quot;&gt;&amp;&#96;');
  assert.equal(html`<p title="${evil}">${[evil, html`<b>${evil}</b>`]}</p>`.text, `<p title="${escapeHtml(evil)}">${escapeHtml(evil)}<b>${escapeHtml(evil)}</b></p>`);
});

test('the CLI refuses a non-loopback address without a token (JB_INVALID_CONFIG, exit 2) before connecting', async () => {
  // No NATS server listens there: the refusal must come first.
  const r = await runCli(['ui', '--listen', '0.0.0.0:0'], 'nats://127.0.0.1:1');
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /JB_INVALID_CONFIG: refusing to serve the fleet on 0\.0\.0\.0 without a token/);
  const short = await runCli(['ui', '--token', 'abc'], 'nats://127.0.0.1:1');
  assert.equal(short.code, 2, short.stderr);
  assert.match(short.stderr, /JB_INVALID_CONFIG: the UI token must be at least 16 characters/);
  const listen = await runCli(['ui', '--listen', 'nowhere'], 'nats://127.0.0.1:1');
  assert.equal(listen.code, 2, listen.stderr);
});

function get(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('loopback: reads need no token, a foreign Host is refused, mutations need the Bearer token; close() ends event streams', async () => {
  const nats = await NatsServer.start();
  // A daemon provisions the streams and buckets the UI reads (it serves no API here).
  const daemon = await startDaemon(nats.url, API);
  let server: Awaited<ReturnType<typeof startUi>> | undefined;
  try {
    server = await startUi(nats.url);
    const base = server.ui.url;
    const page = await get(`${base}/jobs`);
    assert.equal(page.status, 200);
    assert.match(String(page.headers['content-security-policy']), /default-src 'none'; script-src 'self'/);
    assert.equal(page.headers['x-content-type-options'], 'nosniff');
    assert.doesNotMatch(page.body, /test-ui-token/, 'the token reached the page');
    assert.doesNotMatch(page.body, /nats:\/\//, 'the NATS URL reached the page');
    const rebinding = await get(`${base}/jobs`, { Host: 'evil.example:80' });
    assert.equal(rebinding.status, 421);
    assert.equal((await get(`${base}/jobs`, { Host: 'localhost:1234' })).status, 200);
    assert.equal((await get(`${base}/api/jobs/nope/stop`, {}, 'POST')).status, 401);
    assert.equal((await get(`${base}/api/jobs/nope/stop`, { Authorization: 'Bearer wrong-wrong-wrong-wrong' }, 'POST')).status, 403);
    // The right token, from a foreign page (its Origin): refused.
    assert.equal((await get(`${base}/api/jobs/nope/stop`, { Authorization: `Bearer ${UI_TOKEN}`, Origin: 'http://evil.example' }, 'POST')).status, 403);
    assert.equal((await get(`${base}/api/jobs/nope/stop`, { Authorization: `Bearer ${UI_TOKEN}` }, 'POST')).status, 404);
    assert.equal((await get(`${base}/jobs?status=bogus`)).status, 400);
    assert.equal((await get(`${base}/jobs/%3Cscript%3E`)).status, 404);
    // An open event stream ends when the server closes; close() twice is one close.
    let ended = false;
    await new Promise<void>((resolve, reject) => {
      request(`${base}/api/jobs/stream`, (res) => {
        res.on('data', () => resolve());
        res.on('end', () => (ended = true));
        res.on('close', () => (ended = true));
      })
        .on('error', reject)
        .end();
    });
    const t0 = Date.now();
    await Promise.all([server.ui.close(), server.ui.close()]);
    assert.ok(Date.now() - t0 < 5000, `close took ${Date.now() - t0} ms`);
    await waitUntil('the event stream to end', () => ended, { timeoutMs: 5000 });
  } finally {
    await server?.close();
    await daemon.close();
    await nats.dispose();
  }
});

test('off loopback: every read needs the token (Basic password or Bearer); no token, no page', async () => {
  const nats = await NatsServer.start();
  const daemon = await startDaemon(nats.url, API);
  let server: Awaited<ReturnType<typeof startUi>> | undefined;
  try {
    server = await startUi(nats.url, { listen: '0.0.0.0:0', token: UI_TOKEN });
    const base = server.ui.url.replace('0.0.0.0', '127.0.0.1');
    const anonymous = await get(`${base}/jobs`);
    assert.equal(anonymous.status, 401);
    assert.match(String(anonymous.headers['www-authenticate']), /^Basic realm="jetbatch"/);
    assert.equal((await get(`${base}/api/jobs`, { Authorization: `Basic ${Buffer.from('any:wrong-token-wrong-token').toString('base64')}` })).status, 401);
    assert.equal((await get(`${base}/jobs`, { Authorization: `Basic ${Buffer.from(`operator:${UI_TOKEN}`).toString('base64')}` })).status, 200);
    assert.equal((await get(`${base}/api/fleet`, { Authorization: `Bearer ${UI_TOKEN}` })).status, 200);
    // Assets are public (a login prompt's page must be able to style itself); they hold nothing of the fleet.
    assert.equal((await get(`${base}/assets/app.js`)).status, 200);
  } finally {
    await server?.close();
    await daemon.close();
    await nats.dispose();
  }
});

test('jetbatch ui serves until SIGTERM, then exits 0', async () => {
  const nats = await NatsServer.start();
  const daemon = await startDaemon(nats.url, API);
  const proc = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), 'ui', '--listen', '127.0.0.1:0', '--server', nats.url], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  try {
    const url = await waitUntil('the ui to print its address', () => /serving (http:\/\/\S+)\/jobs/.exec(out)?.[1], { timeoutMs: 30_000, detail: () => out });
    assert.match(out, /read-only/);
    assert.equal((await get(`${url}/healthz`)).status, 200);
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    proc.kill('SIGTERM');
    assert.equal(await exited, 0, out);
  } finally {
    if (proc.exitCode === null) proc.kill('SIGKILL');
    await daemon.close();
    await nats.dispose();
  }
});
