/**
 * The three stores (file://, obj:// on a private nats-server, s3:// on a local s3rver) behave alike: writes read back
 * byte for byte, listings are recursive, filtered by globs and in byte order of the keys, missing things are
 * JB_STORE_NOT_FOUND and bad URLs JB_INVALID_STORE_URL.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { jetstream } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { joinStoreUrl, parseStoreUrl, storeFor, type ListOptions, type OpenStore } from '../src/stores/index.js';
import { NatsServer } from './helpers/nats-server.js';
import { S3Server } from './helpers/s3-server.js';
import { waitUntil } from './helpers/wait.js';
import { StoredObjects } from '../src/worker/stored.js';

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

/** The listed keys relative to `root` (file:// URLs decoded), in listing order. */
async function keys(store: OpenStore, root: string, options?: ListOptions): Promise<string[]> {
  const rel = (url: string): string => {
    const loc = parseStoreUrl(url);
    return loc.scheme === 'file' ? loc.path : loc.key;
  };
  const prefix = rel(root).endsWith('/') || rel(root) === '' ? rel(root) : `${rel(root)}/`;
  const out: string[] = [];
  for await (const o of store.list(root, options)) {
    assert.ok(rel(o.url).startsWith(prefix), `${o.url} is not under ${root}`);
    out.push(rel(o.url).slice(prefix.length));
  }
  return out;
}

async function rejectsWith(p: Promise<unknown> | (() => Promise<unknown>), code: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.equal((err as { code?: unknown }).code, code, `expected ${code}, got ${String(err)}`);
    return true;
  });
}

async function drain(it: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of it);
}

/** Keys whose byte order differs from a per-directory name sort and from JavaScript's UTF-16 order. */
const TRICKY = ['b.txt', 'a0.jsonl', 'a/y/z.txt', 'a-b.jsonl', '\u{1F600}.jsonl', '\uFF21.jsonl', 'a/x.jsonl'];
/** In UTF-8 byte order: '-' < '/' < '0', and U+FF21 (EF BC A1) < U+1F600 (F0 9F 98 80). */
const TRICKY_SORTED = ['a-b.jsonl', 'a/x.jsonl', 'a/y/z.txt', 'a0.jsonl', 'b.txt', '\uFF21.jsonl', '\u{1F600}.jsonl'];

let nats: NatsServer;
let nc: NatsConnection;
let s3: S3Server;
let fileDir: string;

before(async () => {
  [nats, s3] = await Promise.all([NatsServer.start(), S3Server.start(['data'])]);
  nc = await connect({ servers: nats.url });
  fileDir = mkdtempSync(join(tmpdir(), 'jetbatch-stores-'));
});

after(async () => {
  await nc?.close();
  await Promise.all([nats?.dispose(), s3?.dispose()]);
  if (fileDir) rmSync(fileDir, { recursive: true, force: true });
});

interface Scheme {
  readonly name: string;
  /** A fresh prefix (ending in /) no other test uses. */
  root(): string;
  /** A listing root whose directory or bucket does not exist. */
  missingRoot(): string;
  open(): Promise<OpenStore>;
  /** Whether object names may hold non-ASCII characters (the NATS object store's may not here). */
  readonly unicode: boolean;
}

const ascii = (k: string): boolean => /^[\x20-\x7e]*$/.test(k);

let counter = 0;
const schemes: Scheme[] = [
  {
    name: 'file://',
    root: () => `${pathToFileURL(fileDir).href}/t${++counter}/`,
    missingRoot: () => `${pathToFileURL(fileDir).href}/never-written/`,
    open: () => storeFor('file:///'),
    unicode: true,
  },
  {
    name: 'obj://',
    root: () => `obj://DATA/t${++counter}/`,
    missingRoot: () => 'obj://NO_SUCH_BUCKET/in/',
    open: () => storeFor('obj://DATA/', { js: jetstream(nc) }),
    unicode: false,
  },
  {
    name: 's3://',
    root: () => `s3://data/t${++counter}/`,
    missingRoot: () => 's3://no-such-bucket/in/',
    open: () =>
      storeFor('s3://data/', { s3: { endpoint: s3.endpoint, region: 'us-east-1', access_key_id: 'S3RVER', secret_access_key: 'S3RVER' } }),
    unicode: true,
  },
];

for (const scheme of schemes) {
  describe(`${scheme.name} store`, () => {
    let store: OpenStore;
    /** `keys` less those this store cannot name. */
    const only = (keys: readonly string[]): string[] => keys.filter((k) => scheme.unicode || ascii(k));
    before(async () => {
      store = await scheme.open();
    });
    after(async () => {
      await store?.close();
    });

    async function writeTricky(root: string): Promise<void> {
      for (const k of only(TRICKY)) await store.write(joinStoreUrl(root, `in/${k}`), Buffer.from(`content of ${k}\n`));
      // Outside the in/ prefix, and a sibling sharing its first letters: never listed under in/.
      await store.write(joinStoreUrl(root, 'in-x/d.jsonl'), Buffer.from('no'));
      await store.write(joinStoreUrl(root, 'other.jsonl'), Buffer.from('no'));
    }

    test('lists recursively in byte order of the keys, with sizes, under nested prefixes', async () => {
      const root = scheme.root();
      await writeTricky(root);
      assert.deepEqual(await keys(store, joinStoreUrl(root, 'in/')), only(TRICKY_SORTED));
      // A root without the trailing slash is the same prefix (in-x/ is not under it).
      assert.deepEqual(await keys(store, joinStoreUrl(root, 'in')), only(TRICKY_SORTED));
      assert.deepEqual(await keys(store, joinStoreUrl(root, 'in/a/')), ['x.jsonl', 'y/z.txt']);
      assert.deepEqual(await keys(store, root), ['in-x/d.jsonl', ...only(TRICKY_SORTED).map((k) => `in/${k}`), 'other.jsonl']);
      const sizes = [];
      for await (const o of store.list(joinStoreUrl(root, 'in/a/'))) sizes.push(o.size);
      assert.deepEqual(sizes, [Buffer.byteLength('content of a/x.jsonl\n'), Buffer.byteLength('content of a/y/z.txt\n')]);
      // A root naming one object lists just that object.
      const one = [];
      for await (const o of store.list(joinStoreUrl(root, 'in/b.txt'))) one.push(o.url);
      assert.deepEqual(one, [joinStoreUrl(root, 'in/b.txt')]);
      // A prefix holding nothing lists nothing; on a filesystem, only when the directory exists (a missing one is
      // more likely a typo or an unmounted volume than an empty dataset).
      if (scheme.name === 'file://') {
        await rejectsWith(drain(store.list(joinStoreUrl(root, 'nothing/'))), 'JB_STORE_NOT_FOUND');
        mkdirSync(fileURLToPath(joinStoreUrl(root, 'nothing/')));
      }
      assert.deepEqual(await keys(store, joinStoreUrl(root, 'nothing/')), []);
    });

    test('includes and excludes globs filter the relative keys', async () => {
      const root = scheme.root();
      await writeTricky(root);
      const inRoot = joinStoreUrl(root, 'in/');
      // A glob without / matches the last segment at any depth.
      assert.deepEqual(await keys(store, inRoot, { includes: ['*.jsonl'] }), only(['a-b.jsonl', 'a/x.jsonl', 'a0.jsonl', '\uFF21.jsonl', '\u{1F600}.jsonl']));
      assert.deepEqual(await keys(store, inRoot, { includes: ['*.jsonl'], excludes: ['a/**'] }), only(['a-b.jsonl', 'a0.jsonl', '\uFF21.jsonl', '\u{1F600}.jsonl']));
      assert.deepEqual(await keys(store, inRoot, { includes: ['a/**'] }), ['a/x.jsonl', 'a/y/z.txt']);
      assert.deepEqual(await keys(store, inRoot, { includes: ['a/*'] }), ['a/x.jsonl']);
      assert.deepEqual(await keys(store, inRoot, { excludes: ['*.jsonl', '*.txt'] }), []);
      assert.deepEqual(await keys(store, inRoot, { includes: ['{a0,b}.*'] }), ['a0.jsonl', 'b.txt']);
    });

    test('writes read back byte for byte: bytes, a multi-part stream, an empty object, a replacement', async () => {
      const root = scheme.root();
      const small = joinStoreUrl(root, 'out/part-00000.jsonl');
      await store.write(small, Buffer.from('{"i":0}\n{"i":1}\n'));
      assert.equal((await readAll(await store.open(small))).toString(), '{"i":0}\n{"i":1}\n');

      // 9 MiB of varied bytes in 64 KiB chunks: several S3 parts' worth would be > 8 MiB; many object store chunks.
      const chunk = (i: number): Buffer => Buffer.concat(Array.from({ length: 1024 }, () => createHash('sha512').update(String(i)).digest()));
      const parts = Array.from({ length: 144 }, (_, i) => chunk(i));
      const whole = Buffer.concat(parts);
      const big = joinStoreUrl(root, 'out/big.bin');
      await store.write(big, Readable.from(parts));
      const back = await readAll(await store.open(big));
      assert.equal(back.length, whole.length);
      assert.equal(createHash('sha256').update(back).digest('hex'), createHash('sha256').update(whole).digest('hex'));
      const listed = [];
      for await (const o of store.list(joinStoreUrl(root, 'out/'), { includes: ['big.bin'] })) listed.push(o.size);
      assert.deepEqual(listed, [whole.length]);

      const empty = joinStoreUrl(root, 'out/empty');
      await store.write(empty, new Uint8Array(0));
      assert.equal((await readAll(await store.open(empty))).length, 0);

      await store.write(small, Readable.from([Buffer.from('replaced')]));
      assert.equal((await readAll(await store.open(small))).toString(), 'replaced');
    });

    test('a missing object, directory or bucket is JB_STORE_NOT_FOUND', async () => {
      const root = scheme.root();
      await store.write(joinStoreUrl(root, 'here.txt'), Buffer.from('x'));
      await rejectsWith(store.open(joinStoreUrl(root, 'not-here.txt')), 'JB_STORE_NOT_FOUND');
      await rejectsWith(store.open(joinStoreUrl(root, 'here.txt/deeper')), 'JB_STORE_NOT_FOUND');
      await rejectsWith(drain(store.list(scheme.missingRoot())), 'JB_STORE_NOT_FOUND');
      await rejectsWith(store.open(joinStoreUrl(scheme.missingRoot(), 'x.jsonl')), 'JB_STORE_NOT_FOUND');
    });

    test('a prefix URL where an object is needed is JB_INVALID_STORE_URL', async () => {
      const root = scheme.root();
      await rejectsWith(store.open(root), 'JB_INVALID_STORE_URL');
      await rejectsWith(store.write(joinStoreUrl(root, 'dir/'), Buffer.from('x')), 'JB_INVALID_STORE_URL');
    });
  });
}

test('a missing s3 bucket on write is JB_STORE_NOT_FOUND (buckets are never created)', async () => {
  const store = await storeFor('s3://data/', { s3: { endpoint: s3.endpoint, access_key_id: 'S3RVER', secret_access_key: 'S3RVER' } });
  try {
    await rejectsWith(store.write('s3://no-such-bucket/a.txt', Buffer.from('x')), 'JB_STORE_NOT_FOUND');
  } finally {
    await store.close();
  }
});

test('s3 settings come from the AWS environment variables when the config has none (what jetbatch put uses)', async () => {
  const saved = { ...process.env };
  Object.assign(process.env, s3.env);
  try {
    const store = await storeFor('s3://data/');
    try {
      await store.write('s3://data/env/a.txt', Buffer.from('from env'));
      assert.equal((await readAll(await store.open('s3://data/env/a.txt'))).toString(), 'from env');
    } finally {
      await store.close();
    }
  } finally {
    for (const k of Object.keys(s3.env)) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
});

test('obj:// refuses object names that are not printable ASCII, before touching the server', async () => {
  const store = await storeFor('obj://DATA/', { js: jetstream(nc) });
  await rejectsWith(store.write('obj://DATA/caf\u00e9.jsonl', Buffer.from('x')), 'JB_INVALID_STORE_URL');
  await rejectsWith(store.open('obj://DATA/\u{1F600}.jsonl'), 'JB_INVALID_STORE_URL');
});

test('obj:// without a NATS connection is refused with JB_STORE_FAILED', async () => {
  await rejectsWith(storeFor('obj://DATA/x'), 'JB_STORE_FAILED');
});

test('file:// listing skips in-progress temp files, follows links and does not loop on a link to an ancestor', async () => {
  const dir = join(fileDir, 'links');
  mkdirSync(join(dir, 'real'), { recursive: true });
  writeFileSync(join(dir, 'real', 'a.jsonl'), 'a');
  writeFileSync(join(dir, '.jetbatch-tmp-0123456789abcdef'), 'half');
  symlinkSync(join(dir, 'real'), join(dir, 'linked'));
  symlinkSync(dir, join(dir, 'real', 'up'));
  const store = await storeFor('file:///');
  assert.deepEqual(await keys(store, `${pathToFileURL(dir).href}/`), ['linked/a.jsonl', 'real/a.jsonl']);
});

describe('store URLs', () => {
  test('parse into scheme, bucket or path, and key', () => {
    assert.deepEqual(parseStoreUrl('obj://DATA/in/a.jsonl'), { scheme: 'obj', bucket: 'DATA', key: 'in/a.jsonl' });
    assert.deepEqual(parseStoreUrl('s3://my-bucket.x'), { scheme: 's3', bucket: 'my-bucket.x', key: '' });
    assert.deepEqual(parseStoreUrl('S3://bkt/p/'), { scheme: 's3', bucket: 'bkt', key: 'p/' });
    // S3 and object store keys are verbatim: %20 is three characters of the key.
    assert.deepEqual(parseStoreUrl('s3://bkt/a%20b c'), { scheme: 's3', bucket: 'bkt', key: 'a%20b c' });
    assert.deepEqual(parseStoreUrl('file:///data/in/'), { scheme: 'file', path: '/data/in/' });
    assert.deepEqual(parseStoreUrl('file://localhost/data/x'), { scheme: 'file', path: '/data/x' });
    assert.deepEqual(parseStoreUrl('file:///data/a%20b'), { scheme: 'file', path: '/data/a b' });
  });

  test('join a root and a relative key; file paths are percent-encoded and read back the same', () => {
    assert.equal(joinStoreUrl('obj://B/out', 'part-1.jsonl'), 'obj://B/out/part-1.jsonl');
    assert.equal(joinStoreUrl('obj://B/out/', 'x/part-1.jsonl'), 'obj://B/out/x/part-1.jsonl');
    assert.equal(joinStoreUrl('s3://bkt', 'k'), 's3://bkt/k');
    const u = joinStoreUrl('file:///data/out/', 'a b#?%.jsonl');
    assert.equal(u, 'file:///data/out/a%20b%23%3F%25.jsonl');
    assert.deepEqual(parseStoreUrl(u), { scheme: 'file', path: '/data/out/a b#?%.jsonl' });
    for (const bad of ['', '/x', '../x', 'a/./b']) assert.throws(() => joinStoreUrl('s3://bkt/out/', bad), { code: 'JB_INVALID_STORE_URL' });
  });

  test('bad URLs are JB_INVALID_STORE_URL, also from storeFor', async () => {
    const bad = [
      'data/in/',
      '/data/in/',
      'http://host/x',
      'gs://bucket/x',
      'file://host/data',
      'file:data',
      'file:///data/../etc/passwd',
      'file:///data/./x',
      'file:///data/x?y',
      'obj://',
      'obj:///key',
      'obj://bad.bucket/x',
      'obj://B//x',
      'obj://B/a/../b',
      's3://Upper/x',
      's3://ab/x',
      's3:///x',
    ];
    for (const url of bad) {
      assert.throws(() => parseStoreUrl(url), { code: 'JB_INVALID_STORE_URL' }, url);
      await rejectsWith(storeFor(url), 'JB_INVALID_STORE_URL');
    }
  });
});

describe('ctx.open (worker/stored.ts) over obj://', () => {
  let server: NatsServer;

  before(async () => {
    server = await NatsServer.start();
    const nc = await connect({ servers: server.url });
    try {
      const store = await storeFor('obj://OPEN/', { js: jetstream(nc) });
      await store.write('obj://OPEN/a.txt', Buffer.from('hello'));
      await store.close();
    } finally {
      await nc.close();
    }
  });

  after(async () => {
    await server?.dispose();
  });

  test('reads again after its NATS connection closed (a server restart): the closed connection is not kept', async () => {
    const stored = new StoredObjects({ servers: [server.url] }, {}, 'stores-test');
    assert.equal((await readAll(await stored.open('obj://OPEN/a.txt'))).toString(), 'hello');
    await server.stop();
    // The thread's connection does not reconnect: it closes, and the next open connects again (refused while the
    // server is down; with the closed connection kept, every open would fail with "connection closed" instead).
    await waitUntil('ctx.open to connect again', () => stored.open('obj://OPEN/a.txt').then(() => false, (err: unknown) => (err as { code?: string }).code === 'JB_CONNECTION_FAILED'), { timeoutMs: 30_000, intervalMs: 100 });
    await server.restart();
    const text = await waitUntil('ctx.open to read again after the restart', async () => (await readAll(await stored.open('obj://OPEN/a.txt'))).toString(), { timeoutMs: 30_000, intervalMs: 100, retryErrors: true });
    assert.equal(text, 'hello');
    await stored.close();
  });
});
