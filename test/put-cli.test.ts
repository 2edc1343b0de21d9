/** `jetbatch put FILE... URL` run as a person runs it (a child process), to obj://, file:// and s3://. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { jetstream } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { storeFor, type OpenStore } from '../src/stores/index.js';
import { runCli } from './helpers/cli.js';
import { freePort, NatsServer } from './helpers/nats-server.js';
import { S3Server } from './helpers/s3-server.js';

let nats: NatsServer;
let nc: NatsConnection;
let s3: S3Server;
let dir: string;
let src: string;

before(async () => {
  [nats, s3] = await Promise.all([NatsServer.start(), S3Server.start(['inputs'])]);
  nc = await connect({ servers: nats.url });
  dir = mkdtempSync(join(tmpdir(), 'jetbatch-put-'));
  // data/ holds a nested tree; extra.jsonl is a single file given next to it.
  src = join(dir, 'src');
  mkdirSync(join(src, 'data', 'day=2', 'x'), { recursive: true });
  writeFileSync(join(src, 'data', 'a.jsonl'), '{"i":1}\n{"i":2}\n');
  writeFileSync(join(src, 'data', 'day=2', 'b.jsonl'), '{"i":3}\n');
  writeFileSync(join(src, 'data', 'day=2', 'x', 'c.jsonl'), '');
  writeFileSync(join(src, 'extra.jsonl'), '{"i":4}\n');
  mkdirSync(join(src, 'more'));
  writeFileSync(join(src, 'more', 'extra.jsonl'), 'another extra.jsonl\n');
  // The child processes find the local S3 server through the usual AWS variables.
  Object.assign(process.env, s3.env);
});

after(async () => {
  for (const k of Object.keys(s3?.env ?? {})) delete process.env[k];
  await nc?.close();
  await Promise.all([nats?.dispose(), s3?.dispose()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const EXPECTED: Record<string, string> = {
  'a.jsonl': '{"i":1}\n{"i":2}\n',
  'day=2/b.jsonl': '{"i":3}\n',
  'day=2/x/c.jsonl': '',
  'extra.jsonl': '{"i":4}\n',
};

async function readAll(stream: Readable): Promise<string> {
  let s = '';
  for await (const c of stream) s += Buffer.from(c as Uint8Array).toString();
  return s;
}

/** Checks put's report and that every object reads back with its file's content. */
async function assertUploaded(out: string, prefix: string, store: OpenStore): Promise<void> {
  const keys = Object.keys(EXPECTED);
  const bytes = keys.reduce((n, k) => n + Buffer.byteLength(EXPECTED[k]!), 0);
  assert.deepEqual(out.trimEnd().split('\n'), [
    ...keys.map((k) => `${prefix}${k}\t${Buffer.byteLength(EXPECTED[k]!)}`),
    `uploaded ${keys.length} objects, ${bytes} bytes`,
  ]);
  const listed: string[] = [];
  for await (const o of store.list(prefix)) listed.push(o.url);
  assert.deepEqual(listed, keys.map((k) => `${prefix}${k}`));
  for (const k of keys) assert.equal(await readAll(await store.open(`${prefix}${k}`)), EXPECTED[k], k);
}

test('put uploads a directory recursively and a file to an obj:// prefix, creating the bucket', async () => {
  const r = await runCli(['put', join(src, 'data'), join(src, 'extra.jsonl'), 'obj://INPUTS/nightly/'], nats.url);
  assert.equal(r.code, 0, r.stderr);
  const store = await storeFor('obj://INPUTS/', { js: jetstream(nc) });
  await assertUploaded(r.stdout, 'obj://INPUTS/nightly/', store);
});

test('put uploads to a file:// prefix (the URL without a trailing slash is the same prefix)', async () => {
  const target = join(dir, 'dest');
  const r = await runCli(['put', join(src, 'data'), join(src, 'extra.jsonl'), pathToFileURL(target).href], nats.url);
  assert.equal(r.code, 0, r.stderr);
  await assertUploaded(r.stdout, `${pathToFileURL(target).href}/`, await storeFor('file:///'));
  assert.equal(readFileSync(join(target, 'day=2', 'b.jsonl'), 'utf8'), '{"i":3}\n');
});

test('put uploads to an s3:// prefix with settings from the AWS environment variables', async () => {
  const r = await runCli(['put', join(src, 'data'), join(src, 'extra.jsonl'), 's3://inputs/in/'], nats.url);
  assert.equal(r.code, 0, r.stderr);
  const store = await storeFor('s3://inputs/');
  try {
    await assertUploaded(r.stdout, 's3://inputs/in/', store);
  } finally {
    await store.close();
  }
});

test('put fails with the error code and a non-zero exit, uploading nothing on bad input', async () => {
  const cases: [string[], number, string][] = [
    [[join(src, 'extra.jsonl'), 's3://no-such-bucket/in/'], 2, 'JB_STORE_NOT_FOUND'],
    [[join(src, 'missing.jsonl'), 'obj://INPUTS/x/'], 2, 'JB_INVALID_SUBMISSION'],
    [[join(src, 'extra.jsonl'), 'gs://bucket/x/'], 2, 'JB_INVALID_STORE_URL'],
    [[join(src, 'extra.jsonl'), 'obj://INPUTS/caf\u00e9/'], 2, 'JB_INVALID_STORE_URL'],
    [['obj://INPUTS/x/'], 2, 'JB_INVALID_SUBMISSION'],
    // Two sources that would land on one object: refused before any upload.
    [[join(src, 'extra.jsonl'), join(src, 'more'), 'obj://INPUTS/clash/'], 2, 'JB_INVALID_SUBMISSION'],
  ];
  for (const [args, code, error] of cases) {
    const r = await runCli(['put', ...args], nats.url);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^jetbatch: ${error}: `, 'm'), args.join(' '));
    assert.equal(r.stdout, '', args.join(' '));
  }
  const store = await storeFor('obj://INPUTS/', { js: jetstream(nc) });
  const clash: string[] = [];
  for await (const o of store.list('obj://INPUTS/clash/')) clash.push(o.url);
  assert.deepEqual(clash, []);
});

test('put to obj:// without a reachable NATS server exits 3 with JB_CONNECTION_FAILED', async () => {
  const r = await runCli(['put', join(src, 'extra.jsonl'), 'obj://INPUTS/x/'], `nats://127.0.0.1:${await freePort()}`);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /^jetbatch: JB_CONNECTION_FAILED: /m);
});
