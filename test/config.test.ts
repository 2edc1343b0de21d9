import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadConfig, parseConfig, type DaemonOptions } from '../src/daemon/config.js';
import { apiEnvironment } from '../src/daemon/pools/env.js';
import { ErrorCodes, JetbatchError } from '../src/errors.js';

const CONFIG_FILE = resolve('/srv/jetbatch/conf/jetbatch.yaml');
const CONFIG_DIR = resolve('/srv/jetbatch/conf');

function minimal(api: Record<string, unknown> = {}, top: Record<string, unknown> = {}): Record<string, unknown> {
  return { apis: [{ name: 'resize', project: './proj', ...api }], ...top };
}

function firstApi(opts: DaemonOptions): DaemonOptions['apis'][number] {
  const api = opts.apis[0];
  assert.ok(api, 'expected at least one API');
  return api;
}

/** Asserts parseConfig rejects `raw` with JB_INVALID_CONFIG, and that a detail line starts with `keyPath`. */
function assertInvalid(raw: unknown, keyPath: string, message?: RegExp): JetbatchError {
  let caught: unknown;
  try {
    parseConfig(raw, CONFIG_FILE);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof JetbatchError, `expected a JetbatchError, got ${String(caught)}`);
  assert.equal(caught.code, ErrorCodes.INVALID_CONFIG);
  assert.ok(
    caught.details.some((d) => d.startsWith(`${keyPath}:`)),
    `no detail names ${keyPath}: ${caught.details.join(' | ')}`,
  );
  assert.ok(caught.message.includes(keyPath), `message does not name ${keyPath}: ${caught.message}`);
  assert.ok(caught.message.includes(CONFIG_FILE), 'message should name the config file');
  if (message) assert.match(caught.message, message);
  return caught;
}

describe('parseConfig: defaults', () => {
  test('a minimal config gets every default', () => {
    const c = parseConfig(minimal(), CONFIG_FILE);
    assert.equal(c.configFile, CONFIG_FILE);
    assert.deepEqual(c.nats, { servers: ['nats://127.0.0.1:4222'] });
    assert.deepEqual(c.metrics, { listen: '127.0.0.1:9464', enabled: true });
    assert.equal(c.logLevel, 'info');
    assert.equal(c.shutdownGraceMs, 30_000);
    assert.equal(c.leaseMs, 30_000);
    assert.equal(c.replicas, 1);
    assert.deepEqual(c.retentionMs, {
      results: 7 * 86_400_000,
      deadLetters: 30 * 86_400_000,
      events: 7 * 86_400_000,
      jobs: 30 * 86_400_000,
    });
    assert.equal(c.apis.length, 1);
    const api = firstApi(c);
    assert.equal(api.name, 'resize');
    assert.equal(api.threads, Math.max(1, cpus().length));
    assert.equal(api.concurrency, 1);
    assert.deepEqual(api.config, {});
    assert.equal(api.batchTimeoutMs, 600_000);
    assert.equal(api.maxAttempts, 3);
    assert.deepEqual(api.backoff, { initial_ms: 1000, factor: 2, max_ms: 60_000, jitter: 0.2 });
    assert.equal(api.handler, undefined);
    assert.equal(api.memoryLimitMb, undefined);
    assert.deepEqual(api.gpus, []);
    assert.equal(api.logLevel, 'info');
  });

  test('threads defaults to the number of GPUs when gpus are listed, and explicit threads win', () => {
    assert.equal(firstApi(parseConfig(minimal({ gpus: [0, 1, 3] }), CONFIG_FILE)).threads, 3);
    assert.equal(firstApi(parseConfig(minimal({ gpus: [0, 1], threads: 5 }), CONFIG_FILE)).threads, 5);
    assert.equal(firstApi(parseConfig(minimal({ threads: 7 }), CONFIG_FILE)).threads, 7);
  });

  test('an API log_level overrides the top-level one, which is otherwise inherited', () => {
    const c = parseConfig(
      { log_level: 'warn', apis: [{ name: 'a', project: '.' }, { name: 'b', project: '.', log_level: 'debug' }] },
      CONFIG_FILE,
    );
    assert.equal(c.logLevel, 'warn');
    assert.deepEqual(
      c.apis.map((a) => a.logLevel),
      ['warn', 'debug'],
    );
  });

  test('server overrides replace the configured servers', () => {
    const c = parseConfig(minimal({}, { nats: { servers: ['nats://a:4222'] } }), CONFIG_FILE, { servers: ['nats://b:4222'] });
    assert.deepEqual(c.nats.servers, ['nats://b:4222']);
    const plain = parseConfig(minimal({}, { nats: { servers: ['nats://a:4222'] } }), CONFIG_FILE);
    assert.deepEqual(plain.nats.servers, ['nats://a:4222']);
  });
});

describe('parseConfig: durations', () => {
  test("'30s', '5m', '500ms' and plain numbers (seconds) become milliseconds", () => {
    const c = parseConfig(
      minimal(
        { batch_timeout: '5m', backoff: { initial: '500ms', max: 90, factor: 3, jitter: 0 } },
        { shutdown_grace: '30s', lease: 45, check_interval: '500ms', retention: { results: '2h', dead_letters: '1d' } },
      ),
      CONFIG_FILE,
    );
    const api = firstApi(c);
    assert.equal(api.batchTimeoutMs, 300_000);
    assert.deepEqual(api.backoff, { initial_ms: 500, factor: 3, max_ms: 90_000, jitter: 0 });
    assert.equal(c.shutdownGraceMs, 30_000);
    assert.equal(c.leaseMs, 45_000);
    assert.equal(c.checkIntervalMs, 500);
    assert.equal(c.retentionMs.results, 7_200_000);
    assert.equal(c.retentionMs.deadLetters, 86_400_000);
    assert.equal(firstApi(parseConfig(minimal({ batch_timeout: 1.5 }), CONFIG_FILE)).batchTimeoutMs, 1500);
    assert.equal(firstApi(parseConfig(minimal({ batch_timeout: '30' }), CONFIG_FILE)).batchTimeoutMs, 30_000);
  });

  test("a bad duration ('30 parsecs') names its key path", () => {
    assertInvalid(minimal({ batch_timeout: '30 parsecs' }), 'apis.0.batch_timeout', /30 parsecs/);
    assertInvalid(minimal({}, { shutdown_grace: 'soon' }), 'shutdown_grace');
    assertInvalid(minimal({}, { lease: -5 }), 'lease');
    assertInvalid(minimal({ backoff: { max: '1 fortnight' } }), 'apis.0.backoff.max');
  });
});

describe('parseConfig: paths', () => {
  test('project, handler and NATS files are resolved relative to the config file folder', () => {
    const c = parseConfig(
      minimal(
        { project: '../handlers/resize', handler: 'src/handler.ts' },
        {
          nats: {
            creds_file: 'secrets/app.creds',
            nkey_seed_file: './seed.nk',
            tls: { ca: 'tls/ca.pem', cert: 'tls/cert.pem', key: '/etc/key.pem' },
          },
        },
      ),
      CONFIG_FILE,
    );
    const api = firstApi(c);
    assert.equal(api.project, resolve(CONFIG_DIR, '../handlers/resize'));
    assert.equal(api.project, resolve('/srv/jetbatch/handlers/resize'));
    // The handler is relative to the project folder.
    assert.equal(api.handler, resolve('/srv/jetbatch/handlers/resize/src/handler.ts'));
    assert.equal(c.nats.creds_file, join(CONFIG_DIR, 'secrets/app.creds'));
    assert.equal(c.nats.nkey_seed_file, join(CONFIG_DIR, 'seed.nk'));
    assert.deepEqual(c.nats.tls, {
      ca: join(CONFIG_DIR, 'tls/ca.pem'),
      cert: join(CONFIG_DIR, 'tls/cert.pem'),
      key: resolve('/etc/key.pem'),
    });
  });

  test('absolute paths are kept', () => {
    const api = firstApi(parseConfig(minimal({ project: '/opt/p', handler: '/opt/h.js' }), CONFIG_FILE));
    assert.equal(api.project, resolve('/opt/p'));
    assert.equal(api.handler, resolve('/opt/h.js'));
  });
});

describe('parseConfig: result is deeply frozen', () => {
  test('every nested object and array is frozen and cannot be changed', () => {
    const c = parseConfig(
      minimal({ config: { model: { name: 'm', layers: [1, 2] } }, gpus: [0] }, { nats: { tls: { ca: 'ca.pem' } } }),
      CONFIG_FILE,
    );
    const api = firstApi(c);
    const objects: [string, object][] = [
      ['options', c],
      ['nats', c.nats],
      ['nats.servers', c.nats.servers],
      ['metrics', c.metrics],
      ['retentionMs', c.retentionMs],
      ['apis', c.apis],
      ['apis.0', api],
      ['apis.0.backoff', api.backoff],
      ['apis.0.gpus', api.gpus],
      ['apis.0.config', api.config],
    ];
    const tlsOpts = c.nats.tls;
    assert.ok(tlsOpts);
    objects.push(['nats.tls', tlsOpts]);
    const model = api.config['model'];
    assert.ok(model !== null && typeof model === 'object');
    objects.push(['apis.0.config.model', model]);
    const layers = Reflect.get(model, 'layers');
    assert.ok(Array.isArray(layers));
    objects.push(['apis.0.config.model.layers', layers]);
    for (const [name, o] of objects) assert.ok(Object.isFrozen(o), `${name} is not frozen`);

    assert.equal(Reflect.set(c, 'replicas', 9), false);
    assert.equal(c.replicas, 1);
    assert.equal(Reflect.set(api, 'threads', 99), false);
    assert.equal(Reflect.set(c.metrics, 'listen', '0.0.0.0:1'), false);
    assert.equal(c.metrics.listen, '127.0.0.1:9464');
    assert.throws(() => Reflect.apply(Array.prototype.push, c.apis, [api]), TypeError);
    assert.equal(c.apis.length, 1);
  });

  test('two parses do not share mutable state', () => {
    const a = parseConfig(minimal({ name: 'a' }), CONFIG_FILE);
    const b = parseConfig(minimal({ name: 'b', config: { k: 1 } }), CONFIG_FILE);
    assert.deepEqual(firstApi(a).config, {});
    assert.deepEqual(firstApi(b).config, { k: 1 });
    assert.equal(firstApi(a).name, 'a');
  });
});

describe('parseConfig: errors name the bad key', () => {
  test('missing apis', () => {
    assertInvalid({}, 'apis');
    assertInvalid({ nats: { servers: ['nats://x:4222'] } }, 'apis');
    assertInvalid(null, 'apis');
  });

  test('empty apis', () => {
    assertInvalid({ apis: [] }, 'apis', /at least one API/);
  });

  test('bad API name', () => {
    for (const name of ['My API', 'a.b', 'UPPER', '-lead', '', 'x'.repeat(64)]) assertInvalid(minimal({ name }), 'apis.0.name');
    assertInvalid({ apis: [{ name: 'ok', project: '.' }, { name: 'bad name', project: '.' }] }, 'apis.1.name');
    assertInvalid({ apis: [{ project: '.' }] }, 'apis.0.name');
  });

  test("unknown key (typo 'thread') is rejected and named", () => {
    const err = assertInvalid(minimal({ thread: 4 }), 'apis.0', /thread/);
    assert.ok(err.details.some((d) => d.includes('"thread"')), err.details.join(' | '));
    assertInvalid(minimal({}, { metrics: { listen: '127.0.0.1:1', enable: true } }), 'metrics', /enable/);
    // A top-level typo: the detail names the unrecognized key itself.
    assert.throws(
      () => parseConfig(minimal({}, { shutdown_grac: 10 }), CONFIG_FILE),
      (err: unknown) =>
        err instanceof JetbatchError &&
        err.code === ErrorCodes.INVALID_CONFIG &&
        err.details.some((d) => d.includes('"shutdown_grac"')),
    );
  });

  test('bad value types name the key path', () => {
    assertInvalid(minimal({ threads: 0 }), 'apis.0.threads');
    assertInvalid(minimal({ threads: '4' }), 'apis.0.threads');
    assertInvalid(minimal({ threads: 1.5 }), 'apis.0.threads');
    assertInvalid(minimal({ max_attempts: 0 }), 'apis.0.max_attempts');
    assertInvalid(minimal({ project: '' }), 'apis.0.project');
    assertInvalid(minimal({ config: [] }), 'apis.0.config');
    assertInvalid(minimal({ backoff: { jitter: 1.5 } }), 'apis.0.backoff.jitter');
    assertInvalid(minimal({}, { log_level: 'loud' }), 'log_level');
    assertInvalid(minimal({}, { replicas: 0 }), 'replicas');
    assertInvalid(minimal({}, { nats: { servers: [] } }), 'nats.servers');
  });

  test('duplicate API names', () => {
    assertInvalid(
      { apis: [{ name: 'a', project: '.' }, { name: 'b', project: '.' }, { name: 'a', project: '.' }] },
      'apis.2.name',
      /duplicate API name "a"/,
    );
  });

  test('bad metrics.listen', () => {
    for (const listen of ['localhost', ':9464', '127.0.0.1:port', '127.0.0.1:']) {
      assertInvalid(minimal({}, { metrics: { listen } }), 'metrics.listen');
    }
    assert.equal(parseConfig(minimal({}, { metrics: { listen: '0.0.0.0:9000' } }), CONFIG_FILE).metrics.listen, '0.0.0.0:9000');
  });

  test('several problems are all reported', () => {
    const err = assertInvalid({ apis: [{ name: 'A', project: '.', threads: 0 }], replicas: 9 }, 'apis.0.name');
    const keys = err.details.map((d) => d.split(':')[0]);
    assert.deepEqual([...keys].sort(), ['apis.0.name', 'apis.0.threads', 'replicas']);
  });
});

describe('loadConfig', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'jetbatch-config-test-'));
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function assertLoadFails(file: string, pattern: RegExp): Promise<void> {
    await assert.rejects(loadConfig(file), (err: unknown) => {
      assert.ok(err instanceof JetbatchError, `expected a JetbatchError, got ${String(err)}`);
      assert.equal(err.code, ErrorCodes.INVALID_CONFIG);
      assert.match(err.message, pattern);
      return true;
    });
  }

  test('a valid YAML file loads, with paths relative to its folder', async () => {
    const file = join(dir, 'jetbatch.yaml');
    await writeFile(
      file,
      ['apis:', '  - name: resize', '    project: ./proj', '    handler: handler.ts', '    batch_timeout: 30s', 'shutdown_grace: 5m', ''].join('\n'),
    );
    const c = await loadConfig(file);
    assert.equal(c.configFile, file);
    const api = firstApi(c);
    assert.equal(api.project, join(dir, 'proj'));
    assert.equal(api.handler, join(dir, 'proj', 'handler.ts'));
    assert.equal(api.batchTimeoutMs, 30_000);
    assert.equal(c.shutdownGraceMs, 300_000);
    assert.ok(Object.isFrozen(c.apis));
  });

  test('a missing file gives JB_INVALID_CONFIG naming the file', async () => {
    const file = join(dir, 'does-not-exist.yaml');
    await assertLoadFails(file, /does-not-exist\.yaml/);
  });

  test('invalid YAML gives JB_INVALID_CONFIG', async () => {
    const file = join(dir, 'broken.yaml');
    await writeFile(file, 'apis:\n  - name: [unclosed\n    project: "x\n');
    await assertLoadFails(file, /broken\.yaml/);
  });

  test('YAML with duplicate keys is rejected', async () => {
    const file = join(dir, 'dup.yaml');
    await writeFile(file, 'apis:\n  - name: a\n    project: .\nlog_level: info\nlog_level: debug\n');
    await assertLoadFails(file, /dup\.yaml/);
  });

  test('an empty file reports the missing apis', async () => {
    const file = join(dir, 'empty.yaml');
    await writeFile(file, '');
    await assertLoadFails(file, /apis/);
  });

  test('schema errors from a file name the key path', async () => {
    const file = join(dir, 'typo.yaml');
    await writeFile(file, 'apis:\n  - name: a\n    project: .\n    threads: 0\n');
    await assertLoadFails(file, /apis\.0\.threads/);
  });
});

test('the environment is read with the configuration, and worker threads get it under the project .env', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'jb-env-'));
  try {
    await writeFile(join(dir, '.env'), 'JB_CONFIG_TEST_SHARED=from-project\n');
    process.env.JB_CONFIG_TEST_SHARED = 'from-daemon';
    process.env.JB_CONFIG_TEST_ONLY_DAEMON = 'daemon-only';
    const options = parseConfig({ apis: [{ name: 'env-api', project: dir }] }, '/etc/jetbatch/jetbatch.yaml');
    delete process.env.JB_CONFIG_TEST_SHARED;
    delete process.env.JB_CONFIG_TEST_ONLY_DAEMON;
    assert.equal(options.environment.JB_CONFIG_TEST_ONLY_DAEMON, 'daemon-only');
    assert.ok(Object.isFrozen(options.environment));
    const env = apiEnvironment(dir, options.environment);
    assert.equal(env.JB_CONFIG_TEST_SHARED, 'from-project');
    assert.equal(env.JB_CONFIG_TEST_ONLY_DAEMON, 'daemon-only');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
