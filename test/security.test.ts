/**
 * Credentials, TLS and NATS permissions, against real nats-servers: user/password, token, NKey, a creds file
 * (operator/account/user JWTs signed here with NKeys) and mutual TLS (a throw-away CA made with openssl). For each,
 * a daemon and the CLI connect and a job succeeds; wrong credentials fail fast with JB_CONNECTION_FAILED (CLI exit
 * 3), never a hang. The roles of docs/deploy.md are loaded verbatim from the page into a server and checked with a
 * restricted publisher. The metrics endpoint binds to loopback by default and shows no secrets.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { createAccount, createOperator, createUser, type KeyPair } from '@nats-io/nkeys';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { JetbatchClient } from '../src/client/client.js';
import { connectNats, type NatsOptions } from '../src/fleet/connect.js';
import { parseConfig } from '../src/daemon/config.js';
import { Daemon } from '../src/daemon/daemon.js';
import { JetbatchError } from '../src/errors.js';
import { Streams } from '../src/fleet/protocol.js';
import type { JobStatus } from '../src/types.js';
import { DaemonProcess, ROOT, daemonConfig, startDaemon, tempDir } from './helpers/daemon.js';
import { NatsServer } from './helpers/nats-server.js';
import { waitUntil } from './helpers/wait.js';

const execFileP = promisify(execFile);
const ECHO = { name: 'echo', project: join(ROOT, 'handlers', 'echo'), threads: 1 };
const dir = tempDir('jetbatch-sec-');
const utf8 = new TextDecoder();
const enc = new TextEncoder();

// ---------------------------------------------------------------------------------------------------------------
// Throw-away key material, made once for the whole file.

/** A CA and leaf certificates signed by it (EC P-256, valid 2 days). */
function makeCa(name: string): void {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}-key.pem`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${name}`], { cwd: dir, stdio: 'pipe' });
}
function makeLeaf(name: string, ca: string, usage: 'serverAuth' | 'clientAuth', san: string): void {
  execFileSync('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], { cwd: dir, stdio: 'pipe' });
  writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\nextendedKeyUsage=${usage}\n`);
  execFileSync('openssl', ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}-key.pem`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`], { cwd: dir, stdio: 'pipe' });
}
const pem = (name: string): string => join(dir, `${name}.pem`);
const keyPem = (name: string): string => join(dir, `${name}-key.pem`);

makeCa('ca');
makeCa('other-ca');
// nats.js verifies a server given by IP address against the name "localhost" (see the todo test below), so the
// certificate used by the passing tests carries both names.
makeLeaf('server', 'ca', 'serverAuth', 'IP:127.0.0.1,DNS:localhost');
makeLeaf('server-ip-only', 'ca', 'serverAuth', 'IP:127.0.0.1');
makeLeaf('client', 'ca', 'clientAuth', 'DNS:jetbatch-client');
makeLeaf('rogue-client', 'other-ca', 'clientAuth', 'DNS:jetbatch-client');

function secretFile(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  chmodSync(path, 0o600);
  return path;
}
const seedOf = (kp: KeyPair): string => utf8.decode(kp.getSeed());

const nkeyUser = createUser();
const nkeyStranger = createUser();
const nkeySeedFile = secretFile('user.nk', seedOf(nkeyUser) + '\n');
const strangerSeedFile = secretFile('stranger.nk', seedOf(nkeyStranger) + '\n');
const garbageSeedFile = secretFile('garbage.nk', 'SUAthisisnotaseed\n');

/** RFC 4648 base32 without padding (the NATS JWT `jti` alphabet). */
function base32(bytes: Uint8Array): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let out = '';
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}

/** A NATS JWT (v2 claims, `ed25519-nkey`) signed by `issuer`: what nsc writes, built from @nats-io/nkeys alone. */
function natsJwt(issuer: KeyPair, subject: string, name: string, nats: Record<string, unknown>): string {
  const claims: Record<string, unknown> = { jti: '', iat: Math.floor(Date.now() / 1000), iss: issuer.getPublicKey(), name, sub: subject, nats };
  claims.jti = base32(createHash('sha256').update(JSON.stringify(claims)).digest());
  const head = Buffer.from(JSON.stringify({ typ: 'JWT', alg: 'ed25519-nkey' })).toString('base64url');
  const body = Buffer.from(JSON.stringify(claims)).toString('base64url');
  const sig = issuer.sign(enc.encode(`${head}.${body}`));
  return `${head}.${body}.${Buffer.from(sig).toString('base64url')}`;
}

const unlimited = { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 };
const jetstreamUnlimited = { mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 };
const operator = createOperator();
const sysAccount = createAccount();
const account = createAccount();
const strangerAccount = createAccount();
const operatorJwt = natsJwt(operator, operator.getPublicKey(), 'jetbatch-test-operator', { system_account: sysAccount.getPublicKey(), type: 'operator', version: 2 });
const accountJwt = (kp: KeyPair, name: string, js: boolean): string =>
  natsJwt(operator, kp.getPublicKey(), name, { limits: { ...unlimited, ...(js ? jetstreamUnlimited : {}) }, default_permissions: { pub: {}, sub: {} }, type: 'account', version: 2 });
const userJwt = (issuer: KeyPair, user: KeyPair): string =>
  natsJwt(issuer, user.getPublicKey(), 'jetbatch', { pub: {}, sub: {}, subs: -1, data: -1, payload: -1, type: 'user', version: 2 });
const credsText = (jwt: string, seed: string): string =>
  `-----BEGIN NATS USER JWT-----\n${jwt}\n------END NATS USER JWT------\n\n************************* IMPORTANT *************************\n` +
  `NKEY Seed printed below can be used to sign and prove identity.\n\n-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n`;
const credsUser = createUser();
const credsUserJwt = userJwt(account, credsUser);
const credsFile = secretFile('jetbatch.creds', credsText(credsUserJwt, seedOf(credsUser)));
/** Signed by an account the server has never heard of. */
const strangerCreds = secretFile('stranger.creds', credsText(userJwt(strangerAccount, createUser()), seedOf(createUser())));
/** A valid user JWT presented with somebody else's seed: the nonce signature does not match. */
const stolenJwtCreds = secretFile('stolen.creds', credsText(credsUserJwt, seedOf(createUser())));
writeFileSync(join(dir, 'operator.jwt'), operatorJwt);

const password = `pw-${randomBytes(12).toString('hex')}`;
const token = `tok-${randomBytes(16).toString('hex')}`;

// ---------------------------------------------------------------------------------------------------------------
// Helpers.

interface CliResult {
  code: number | string;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs the CLI from source with a clean NATS environment. */
async function cli(args: string[], env: Record<string, string> = {}, timeoutMs = 90_000): Promise<CliResult> {
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('NATS_')) clean[k] = v;
  const t0 = Date.now();
  try {
    const { stdout, stderr } = await execFileP(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), ...args], {
      cwd: ROOT,
      env: { ...clean, ...env },
      timeout: timeoutMs,
      maxBuffer: 16 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr, ms: Date.now() - t0 };
  } catch (err) {
    const e = err as { code?: number | string; signal?: string; stdout?: string; stderr?: string };
    return { code: e.code ?? e.signal ?? 'unknown', stdout: e.stdout ?? '', stderr: e.stderr ?? '', ms: Date.now() - t0 };
  }
}

/** How long the CLI takes to fail when nothing listens: the start-up cost every "fails fast" bound is added to. */
let cliBaselineMs = 0;
const FAST_MS = 8000;

const itemsFile = join(dir, 'items.json');
writeFileSync(itemsFile, JSON.stringify([1, 2, 3, 4, 5, 6]));

async function cliSubmitSucceeds(server: string, flags: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const r = await cli(['submit', 'echo', '--items', itemsFile, '--batch-size', '2', '--wait', '--json', '--server', server, ...flags], env);
  assert.equal(r.code, 0, `CLI failed (${r.code}):\n${r.stderr}`);
  const status = JSON.parse(r.stdout) as JobStatus;
  assert.equal(status.status, 'succeeded');
  assert.equal(status.total_batch_count, 3);
  assert.equal(status.batch_metrics.succeeded, 3);
  return r;
}

async function cliFailsFast(server: string, flags: string[], expect: RegExp, env: Record<string, string> = {}): Promise<CliResult> {
  const r = await cli(['submit', 'echo', '--items', itemsFile, '--batch-size', '2', '--wait', '--json', '--server', server, ...flags], env);
  assert.equal(r.code, 3, `exit code 3 expected, got ${r.code}:\n${r.stderr}`);
  assert.match(r.stderr, /JB_CONNECTION_FAILED/);
  assert.match(r.stderr, expect);
  assert.equal(r.stdout, '');
  assert.ok(r.ms < cliBaselineMs + FAST_MS, `CLI took ${r.ms} ms (start-up alone ${cliBaselineMs} ms): not fast`);
  return r;
}

async function clientRejects(options: NatsOptions, expect: RegExp): Promise<JetbatchError> {
  const t0 = Date.now();
  let caught: unknown;
  try {
    const c = await JetbatchClient.connect(options);
    await c.close();
  } catch (err) {
    caught = err;
  }
  const ms = Date.now() - t0;
  assert.ok(caught instanceof JetbatchError, `JetbatchError expected, got ${String(caught)}`);
  assert.equal(caught.code, 'JB_CONNECTION_FAILED');
  assert.match(caught.message, expect);
  assert.ok(ms < FAST_MS, `JetbatchClient.connect took ${ms} ms`);
  return caught;
}

async function daemonRefuses(nats: Record<string, unknown>): Promise<void> {
  const t0 = Date.now();
  await assert.rejects(startDaemon('nats://unused', [ECHO], { nats }), (err: unknown) => err instanceof JetbatchError && err.code === 'JB_CONNECTION_FAILED');
  assert.ok(Date.now() - t0 < FAST_MS, 'the daemon gives up on a refused first connection at once');
}

function assertNoSecrets(text: string, secrets: readonly string[], where: string): void {
  for (const s of secrets) assert.ok(!text.includes(s), `${where} contains a secret (${s.slice(0, 6)}…)`);
}

async function getText(url: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url);
  return { status: res.status, text: await res.text() };
}

/** /metrics, /healthz and /readyz on loopback, none showing any secret. */
async function endpointsClean(port: number, secrets: readonly string[]): Promise<void> {
  for (const path of ['/metrics', '/healthz', '/readyz']) {
    let r = await getText(`http://127.0.0.1:${port}${path}`);
    // /readyz answers 503 for a moment after the start, while the pool's threads boot.
    for (const deadline = Date.now() + 15_000; r.status === 503 && path === '/readyz' && Date.now() < deadline;) {
      assertNoSecrets(r.text, secrets, path);
      await new Promise((res) => setTimeout(res, 100));
      r = await getText(`http://127.0.0.1:${port}${path}`);
    }
    assert.equal(r.status, 200, path);
    assertNoSecrets(r.text, secrets, path);
  }
  assert.match((await getText(`http://127.0.0.1:${port}/metrics`)).text, /jetbatch_nats_connected 1/);
}

function metricsPortOf(d: DaemonProcess): number {
  const line = d.output.split('\n').find((l) => l.includes('"daemon started"'));
  assert.ok(line, 'daemon started line');
  const parsed = JSON.parse(line) as { metrics: { host: string; port: number } };
  assert.equal(parsed.metrics.host, '127.0.0.1');
  return parsed.metrics.port;
}

/** Contents of a PEM key without its armour lines: a fragment that must never be printed anywhere. */
const keyFragment = (path: string): string => readFileSync(path, 'utf8').split('\n')[1] ?? 'unused';

before(async () => {
  const r = await cli(['jobs', '--server', 'nats://127.0.0.1:1']);
  assert.equal(r.code, 3, r.stderr);
  cliBaselineMs = r.ms;
});

// ---------------------------------------------------------------------------------------------------------------

describe('user and password', () => {
  let server: NatsServer;
  let daemon: Daemon;

  before(async () => {
    server = await NatsServer.start({ config: `authorization { users: [ { user: "jetbatch", password: "${password}" } ] }` });
    // The default metrics address (no metrics key), kept on its host but given a free port.
    const raw = daemonConfig(server.url, [ECHO], { nats: { servers: [server.url], user: 'jetbatch', pass: password } });
    delete raw.metrics;
    const options = parseConfig(raw, join(ROOT, 'config', 'test.yaml'));
    assert.deepEqual(options.metrics, { listen: '127.0.0.1:9464', enabled: true }, 'loopback by default');
    daemon = await Daemon.start({ ...options, metrics: { ...options.metrics, listen: options.metrics.listen.replace(/:\d+$/, ':0') } });
  });

  after(async () => {
    await daemon?.close();
    await server?.dispose();
  });

  test('the daemon connects with user/pass and the CLI (--user/--password) runs a job to success', async () => {
    const r = await cliSubmitSucceeds(server.url, ['--user', 'jetbatch', '--password', password]);
    assertNoSecrets(r.stdout + r.stderr, [password], 'CLI output');
  });

  test('NATS_USER / NATS_PASSWORD work as well', async () => {
    await cliSubmitSucceeds(server.url, [], { NATS_USER: 'jetbatch', NATS_PASSWORD: password });
  });

  test('a wrong password, an unknown user or no credentials fail fast with JB_CONNECTION_FAILED and never echo the password', async () => {
    const wrong = [
      { flags: ['--user', 'jetbatch', '--password', 'not-the-password'], opts: { user: 'jetbatch', pass: 'not-the-password' } },
      { flags: ['--user', 'mallory', '--password', password], opts: { user: 'mallory', pass: password } },
      { flags: [], opts: {} },
    ];
    const runs = await Promise.all(wrong.map((w) => cliFailsFast(server.url, w.flags, /Authorization Violation/i)));
    for (const r of runs) assertNoSecrets(r.stderr, [password, 'not-the-password'], 'CLI error');
    for (const w of wrong) {
      const err = await clientRejects({ servers: [server.url], ...w.opts }, /Authorization Violation/i);
      assertNoSecrets(err.message, [password, 'not-the-password'], 'client error');
    }
    await daemonRefuses({ servers: [server.url], user: 'jetbatch', pass: 'not-the-password' });
  });

  test('credentials in the server URL are stripped from the error message', async () => {
    const r = await cliFailsFast(`nats://jetbatch:url-secret-${password}@127.0.0.1:${server.port}`, ['--password', 'x'], /Authorization Violation|authorization/i);
    assertNoSecrets(r.stderr, [`url-secret-${password}`], 'CLI error');
  });

  test('metrics bind to 127.0.0.1 by default (unreachable from other interfaces) and expose no credentials', async () => {
    const a = daemon.metricsAddress;
    assert.ok(a);
    assert.equal(a.host, '127.0.0.1');
    await endpointsClean(a.port, [password]);
    const external = Object.values(networkInterfaces()).flat().find((i) => i !== undefined && !i.internal && i.family === 'IPv4');
    if (external === undefined) return;
    const reached = await new Promise<boolean>((resolve) => {
      const c = tcpConnect(a.port, external.address);
      c.setTimeout(3000, () => { c.destroy(); resolve(false); });
      c.once('connect', () => { c.destroy(); resolve(true); });
      c.once('error', () => resolve(false));
    });
    assert.equal(reached, false, `metrics port reachable on ${external.address}`);
  });
});

describe('token (daemon as a process)', () => {
  let server: NatsServer;
  let daemon: DaemonProcess;

  before(async () => {
    server = await NatsServer.start({ config: `authorization { token: "${token}" }` });
    daemon = await DaemonProcess.spawn(server.url, [ECHO], { nats: { servers: [server.url], token } });
  });

  after(async () => {
    await daemon?.kill('SIGTERM');
    await server?.dispose();
  });

  test('jetbatch start connects with a token and the CLI (--token, NATS_TOKEN) runs jobs to success', async () => {
    const r = await cliSubmitSucceeds(server.url, ['--token', token]);
    assertNoSecrets(r.stdout + r.stderr, [token], 'CLI output');
    await cliSubmitSucceeds(server.url, [], { NATS_TOKEN: token });
  });

  test('a wrong or missing token fails fast; jetbatch start exits 3 without printing the token', async () => {
    await Promise.all([
      cliFailsFast(server.url, ['--token', 'tok-wrong'], /Authorization Violation/i),
      cliFailsFast(server.url, [], /Authorization Violation/i),
    ]);
    await clientRejects({ servers: [server.url], token: 'tok-wrong' }, /Authorization Violation/i);
    await daemonRefuses({ servers: [server.url], token: 'tok-wrong' });
    const t0 = Date.now();
    const failed = await DaemonProcess.spawn(server.url, [ECHO], { nats: { servers: [server.url], token: `wrong-${token}` } }).then(
      () => assert.fail('a daemon with a wrong token started'),
      (err: unknown) => (err as Error).message,
    );
    assert.match(failed, /daemon exited \(3\)/);
    assert.match(failed, /JB_CONNECTION_FAILED/);
    assert.ok(Date.now() - t0 < cliBaselineMs + FAST_MS + 5000, 'exits quickly');
    assertNoSecrets(failed, [token], 'daemon output');
  });

  test('/metrics and the daemon log hold no token', async () => {
    await endpointsClean(metricsPortOf(daemon), [token]);
    assertNoSecrets(daemon.output, [token], 'daemon log');
  });
});

describe('NKey user', () => {
  let server: NatsServer;
  let daemon: Daemon;
  const seeds = [seedOf(nkeyUser), seedOf(nkeyStranger)];

  before(async () => {
    server = await NatsServer.start({ config: `authorization { users: [ { nkey: "${nkeyUser.getPublicKey()}" } ] }` });
    daemon = await startDaemon(server.url, [ECHO], { nats: { servers: [server.url], nkey_seed_file: nkeySeedFile } });
  });

  after(async () => {
    await daemon?.close();
    await server?.dispose();
  });

  test('the daemon (nkey_seed_file) and the CLI (--nkey-seed-file) connect; a job succeeds', async () => {
    const r = await cliSubmitSucceeds(server.url, ['--nkey-seed-file', nkeySeedFile]);
    assertNoSecrets(r.stdout + r.stderr, seeds, 'CLI output');
  });

  test('an unknown NKey fails fast; a garbage seed fails clearly; a missing seed file is a config error (exit 2)', async () => {
    await cliFailsFast(server.url, ['--nkey-seed-file', strangerSeedFile], /Authorization Violation/i);
    await clientRejects({ servers: [server.url], nkey_seed_file: strangerSeedFile }, /Authorization Violation/i);
    await daemonRefuses({ servers: [server.url], nkey_seed_file: strangerSeedFile });

    const garbage = await cli(['jobs', '--server', server.url, '--nkey-seed-file', garbageSeedFile]);
    assert.ok(garbage.code === 3 || garbage.code === 2, `exit ${garbage.code}: ${garbage.stderr}`);
    assert.match(garbage.stderr, /^jetbatch: JB_[A-Z_]+: /m, 'a coded one-line error, not a stack trace');
    assert.ok(garbage.ms < cliBaselineMs + FAST_MS);

    const missing = await cli(['jobs', '--server', server.url, '--nkey-seed-file', join(dir, 'no-such.nk')]);
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /JB_INVALID_CONFIG: nkey_seed_file: cannot read/);
  });

  test('/metrics shows no seed', async () => {
    await endpointsClean(daemon.metricsAddress!.port, seeds);
  });
});

describe('creds file (operator mode: JWTs signed here with NKeys)', () => {
  let server: NatsServer;
  let daemon: DaemonProcess;
  const secrets = [seedOf(credsUser), credsUserJwt.split('.')[2] ?? 'unused'];

  before(async () => {
    server = await NatsServer.start({
      config: [
        `operator: "${join(dir, 'operator.jwt')}"`,
        `system_account: ${sysAccount.getPublicKey()}`,
        'resolver: MEMORY',
        `resolver_preload: {`,
        `  ${sysAccount.getPublicKey()}: "${accountJwt(sysAccount, 'SYS', false)}"`,
        `  ${account.getPublicKey()}: "${accountJwt(account, 'JETBATCH', true)}"`,
        `}`,
      ].join('\n'),
    });
    daemon = await DaemonProcess.spawn(server.url, [ECHO], { nats: { servers: [server.url], creds_file: credsFile } });
  });

  after(async () => {
    await daemon?.kill('SIGTERM');
    await server?.dispose();
  });

  test('jetbatch start (creds_file) and the CLI (--creds, NATS_CREDS) connect; jobs succeed', async () => {
    const r = await cliSubmitSucceeds(server.url, ['--creds', credsFile]);
    assertNoSecrets(r.stdout + r.stderr, secrets, 'CLI output');
    await cliSubmitSucceeds(server.url, [], { NATS_CREDS: credsFile });
  });

  test('creds of an unknown account, or a JWT with the wrong seed, fail fast with JB_CONNECTION_FAILED', async () => {
    await Promise.all([
      cliFailsFast(server.url, ['--creds', strangerCreds], /Authorization Violation/i),
      cliFailsFast(server.url, ['--creds', stolenJwtCreds], /Authorization Violation/i),
    ]);
    await clientRejects({ servers: [server.url], creds_file: strangerCreds }, /Authorization Violation/i);
    await clientRejects({ servers: [server.url], creds_file: stolenJwtCreds }, /Authorization Violation/i);
    await daemonRefuses({ servers: [server.url], creds_file: stolenJwtCreds });
  });

  test('creds_file wins over nkey_seed_file (docs/deploy.md)', async () => {
    const c = await JetbatchClient.connect({ servers: [server.url], creds_file: credsFile, nkey_seed_file: garbageSeedFile });
    await c.close();
  });

  test('/metrics and the daemon log hold no seed or JWT signature', async () => {
    await endpointsClean(metricsPortOf(daemon), secrets);
    assertNoSecrets(daemon.output, secrets, 'daemon log');
  });
});

describe('mutual TLS with a throw-away CA', () => {
  let server: NatsServer;
  let daemon: Daemon;
  let url: string;
  const tls = { ca: pem('ca'), cert: pem('client'), key: keyPem('client') };
  const tlsFlags = ['--tls-ca', tls.ca, '--tls-cert', tls.cert, '--tls-key', tls.key];

  before(async () => {
    server = await NatsServer.start({
      config: `tls { cert_file: "${pem('server')}", key_file: "${keyPem('server')}", ca_file: "${pem('ca')}", verify: true, timeout: 2 }`,
    });
    url = `tls://127.0.0.1:${server.port}`;
    daemon = await startDaemon(url, [ECHO], { nats: { servers: [url], tls } });
  });

  after(async () => {
    await daemon?.close();
    await server?.dispose();
  });

  test('the daemon (nats.tls) and the CLI (--tls-ca/--tls-cert/--tls-key) connect over mutual TLS; a job succeeds', async () => {
    await cliSubmitSucceeds(url, tlsFlags);
  });

  test('a server certificate from another CA is refused at once', async () => {
    const other = ['--tls-ca', pem('other-ca'), '--tls-cert', tls.cert, '--tls-key', tls.key];
    await cliFailsFast(url, other, /certificate/i);
    await cliFailsFast(url, [], /certificate/i); // the system CAs do not know ours either
    await clientRejects({ servers: [url], tls: { ...tls, ca: pem('other-ca') } }, /certificate/i);
    await daemonRefuses({ servers: [url], tls: { ...tls, ca: pem('other-ca') } });
  });

  test('a client without a certificate, or with one from another CA, is refused (within the connect timeout)', async () => {
    // The server's TLS alert is not surfaced by nats.js: the client gives up at its 5 s connect timeout ("timeout").
    const refused = /timeout|certificate/i;
    await Promise.all([
      cliFailsFast(url, ['--tls-ca', tls.ca], refused),
      cliFailsFast(url, ['--tls-ca', tls.ca, '--tls-cert', pem('rogue-client'), '--tls-key', keyPem('rogue-client')], refused),
      clientRejects({ servers: [url], tls: { ca: tls.ca } }, refused),
      clientRejects({ servers: [url], tls: { ca: tls.ca, cert: pem('rogue-client'), key: keyPem('rogue-client') } }, refused),
    ]);
  });

  test('/metrics shows no key material', async () => {
    await endpointsClean(daemon.metricsAddress!.port, [keyFragment(tls.key)]);
  });

  test(
    'a server certificate naming only IP:127.0.0.1 is accepted for tls://127.0.0.1',
    async () => {
      const ipOnly = await NatsServer.start({
        config: `tls { cert_file: "${pem('server-ip-only')}", key_file: "${keyPem('server-ip-only')}", ca_file: "${pem('ca')}", verify: true, timeout: 2 }`,
      });
      try {
        const nc = await connectNats({ servers: [`tls://127.0.0.1:${ipOnly.port}`], tls }, { reconnectForever: false }).catch((err: unknown) => err as Error);
        if (!(nc instanceof Error)) await nc.close();
        assert.ok(!(nc instanceof Error), `refused: ${nc instanceof Error ? nc.message : ''}`);
      } finally {
        await ipOnly.dispose();
      }
    },
  );
});

describe('NATS permissions of docs/deploy.md', () => {
  let server: NatsServer;
  let daemon: Daemon;
  let requester: NatsConnection;
  let admin: NatsConnection;
  const asyncErrors: string[] = [];

  /** The role definitions exactly as docs/deploy.md prints them. */
  function documentedRoles(): string {
    const doc = readFileSync(join(ROOT, 'docs', 'deploy.md'), 'utf8');
    const start = doc.indexOf('JETBATCH_DAEMON = {');
    const end = doc.indexOf('accounts {', start);
    assert.ok(start > 0 && end > start, 'docs/deploy.md has the role definitions');
    const roles = doc.slice(start, end);
    for (const r of ['JETBATCH_DAEMON', 'JETBATCH_REQUESTER', 'JETBATCH_SUBMITTER', 'JETBATCH_OPERATOR']) assert.match(roles, new RegExp(`^${r} = \\{`, 'm'));
    return roles;
  }

  before(async () => {
    server = await NatsServer.start({
      config: `${documentedRoles()}
accounts {
  JETBATCH {
    jetstream: enabled
    users = [
      { user: daemon, password: daemon-pw, permissions: $JETBATCH_DAEMON }
      { user: requester, password: requester-pw, permissions: $JETBATCH_REQUESTER }
      { user: submitter, password: submitter-pw, permissions: $JETBATCH_SUBMITTER }
      { user: operator, password: operator-pw, permissions: $JETBATCH_OPERATOR }
      { user: submit-only, password: submit-only-pw, permissions: { publish: { allow: ["jetbatch.req.submit", "jetbatch.req.status"] }, subscribe: { allow: ["_INBOX.>"] } } }
    ]
  }
}`,
    });
    daemon = await startDaemon(server.url, [ECHO], { nats: { servers: [server.url], user: 'daemon', pass: 'daemon-pw' } });
    requester = await connect({ servers: server.url, user: 'requester', pass: 'requester-pw' });
    admin = await connect({ servers: server.url, user: 'daemon', pass: 'daemon-pw' });
    void (async () => {
      for await (const s of requester.status()) if (s.type === 'error') asyncErrors.push(s.error.message);
    })();
  });

  after(async () => {
    await requester?.close();
    await admin?.close();
    await daemon?.close();
    await server?.dispose();
  });

  async function request(nc: NatsConnection, subject: string, body: unknown): Promise<Record<string, unknown>> {
    const m = await nc.request(subject, JSON.stringify(body), { timeout: 30_000 });
    return JSON.parse(utf8.decode(m.data)) as Record<string, unknown>;
  }

  test('the daemon account runs jobs; a JETBATCH_REQUESTER submits with one request and reads status and jobs', async () => {
    const reply = await request(requester, 'jetbatch.req.submit', { api_name: 'echo', items: [1, 2, 3, 4], batch_size: 2 });
    assert.equal(reply.ok, true, JSON.stringify(reply));
    const jobId = (reply.job as { job_id: string }).job_id;
    let status: JobStatus | undefined;
    await waitUntil('the job to succeed, read through jetbatch.req.status', async () => {
      const s = await request(requester, 'jetbatch.req.status', { job_id: jobId });
      assert.equal(s.ok, true, JSON.stringify(s));
      status = s.status as JobStatus;
      return status.status === 'succeeded';
    }, { timeoutMs: 30_000, intervalMs: 100, detail: () => `last status: ${JSON.stringify(status)}` });
    assert.equal(status?.status, 'succeeded');
    assert.equal(status?.batch_metrics.succeeded, 2);
    const jobs = await request(requester, 'jetbatch.req.jobs', {});
    assert.equal(jobs.ok, true);
    assert.ok((jobs.jobs as JobStatus[]).some((j) => j.job_id === jobId));
  });

  test('a requester cannot publish batches, read or watch JETBATCH_JOBS, or use JetStream', async () => {
    asyncErrors.length = 0;
    requester.publish('jetbatch.batch.echo.injected', new Uint8Array([0x91, 0x01]));
    await requester.flush();
    const violation = (subject: string): RegExp => new RegExp(`Permissions Violation for (Publish|Subscription) to "${subject.replace(/[$.*>]/g, (c) => `\\${c}`)}"`);
    await assert.rejects(
      requester.request('$JS.API.DIRECT.GET.KV_JETBATCH_JOBS.$KV.JETBATCH_JOBS.x', '', { timeout: 5000 }),
      violation('$JS.API.DIRECT.GET.KV_JETBATCH_JOBS.$KV.JETBATCH_JOBS.x'),
    );
    await assert.rejects(
      requester.request('$JS.API.STREAM.MSG.GET.KV_JETBATCH_JOBS', JSON.stringify({ last_by_subj: '$KV.JETBATCH_JOBS.x' }), { timeout: 5000 }),
      violation('$JS.API.STREAM.MSG.GET.KV_JETBATCH_JOBS'),
    );
    await assert.rejects(new Kvm(jetstream(requester, { timeout: 5000 })).open('JETBATCH_JOBS').then((kv) => kv.get('x')), /Permissions Violation/);
    await assert.rejects(jetstreamManager(requester, { timeout: 5000 }), violation('$JS.API.INFO'));
    const watch = requester.subscribe('$KV.JETBATCH_JOBS.>');
    const watchEnd = await watch.closed;
    assert.match(String(watchEnd), violation('$KV.JETBATCH_JOBS.>'));
    const snoop = requester.subscribe('jetbatch.>');
    assert.match(String(await snoop.closed), violation('jetbatch.>'));
    await assert.rejects(JetbatchClient.connect({ servers: [server.url], user: 'requester', pass: 'requester-pw' }), (e: unknown) => e instanceof JetbatchError && e.code === 'JB_CONNECTION_FAILED');
    assert.ok(asyncErrors.some((m) => violation('jetbatch.batch.echo.injected').test(m)), `publish violation reported: ${asyncErrors.join('; ')}`);
    const info = await (await jetstreamManager(admin)).streams.info(Streams.batches, { subjects_filter: 'jetbatch.batch.echo.injected' });
    assert.equal(Object.keys(info.state.subjects ?? {}).length, 0, 'nothing reached the batch stream');
    assert.ok(!requester.isClosed(), 'violations do not cost the requester its connection');
  });

  test('a requester limited to submit and status cannot stop jobs', async () => {
    const nc = await connect({ servers: server.url, user: 'submit-only', pass: 'submit-only-pw' });
    try {
      const reply = await request(nc, 'jetbatch.req.submit', { api_name: 'echo', items: [1], batch_size: 1 });
      assert.equal(reply.ok, true);
      const jobId = (reply.job as { job_id: string }).job_id;
      assert.equal((await request(nc, 'jetbatch.req.status', { job_id: jobId })).ok, true);
      await assert.rejects(nc.request('jetbatch.req.stop', JSON.stringify({ job_id: jobId }), { timeout: 5000 }), /Permissions Violation for Publish to "jetbatch\.req\.stop"/);
    } finally {
      await nc.close();
    }
  });

  test('a JETBATCH_SUBMITTER runs the full protocol with the CLI (submit --wait, results, dlq) but cannot delete streams', async () => {
    const flags = ['--user', 'submitter', '--password', 'submitter-pw'];
    const r = await cliSubmitSucceeds(server.url, flags);
    const jobId = (JSON.parse(r.stdout) as JobStatus).job_id;
    const results = await cli(['results', jobId, '--server', server.url, ...flags]);
    assert.equal(results.code, 0, results.stderr);
    assert.equal(results.stdout.trim().split('\n').length, 3);
    const dlq = await cli(['dlq', jobId, '--json', '--server', server.url, ...flags]);
    assert.equal(dlq.code, 0, dlq.stderr);
    const sub = await connect({ servers: server.url, user: 'submitter', pass: 'submitter-pw' });
    try {
      await assert.rejects(sub.request(`$JS.API.STREAM.DELETE.${Streams.batches}`, '', { timeout: 5000 }), /Permissions Violation/);
      await assert.rejects(sub.request('jetbatch.req.submit', '{}', { timeout: 5000 }), /Permissions Violation/);
    } finally {
      await sub.close();
    }
  });
});
