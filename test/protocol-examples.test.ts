/**
 * The examples of docs/PROTOCOL.md §12 stay true (issue #14, item 11): the Python ones compile and read the status
 * reply as `reply["status"]["status"]` (its real shape, checked in test/status-json.test.ts); the Go one (nats.go's
 * JetStreamContext) is built and run against a daemon when Go and Debian's nats.go and msgpack packages are present
 * (skipped otherwise): it submits by the full protocol, polls the one-request status and reads every result.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Daemon } from '../src/daemon/daemon.js';
import { ROOT, startDaemon, tempDir } from './helpers/daemon.js';
import { NatsServer } from './helpers/nats-server.js';

const doc = readFileSync(join(ROOT, 'docs', 'PROTOCOL.md'), 'utf8');
const blocks = (lang: string): string[] => [...doc.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!);

const GOCODE = '/usr/share/gocode';
const goMissing = spawnSync('go', ['version']).status !== 0
  ? 'no go on PATH'
  : ['github.com/nats-io/nats.go', 'github.com/vmihailenco/msgpack/v5'].find((p) => !existsSync(join(GOCODE, 'src', p)))
    ?.replace(/^/, `not in ${GOCODE}: `) ?? false;

/** Runs a command without blocking the event loop (the daemon under test runs in this process). */
function run(cmd: string, args: string[], opts: { cwd?: string; env: NodeJS.ProcessEnv; timeout: number }): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, opts, (err, stdout, stderr) => resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr }));
  });
}

describe('docs/PROTOCOL.md examples', () => {
  test('the Python examples compile and read the status object as reply["status"]', { skip: spawnSync('python3', ['--version']).status === 0 ? false : 'no python3' }, () => {
    const python = blocks('python');
    // §12's two, and §10 / §10a's readers of every result.
    assert.equal(python.length, 4);
    const dir = tempDir('jetbatch-protocol-py-');
    python.forEach((code, i) => {
      const file = join(dir, `example${i}.py`);
      writeFileSync(file, code);
      const r = spawnSync('python3', ['-m', 'py_compile', file], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
    });
    for (const code of python.filter((c) => c.includes('jetbatch.req.status'))) assert.match(code, /(status|st) = reply\["status"\]\n[\s\S]*(status|st)\["status"\]/);
    assert.doesNotMatch(doc, /json\.loads\(msg\.data\)\["status"\]\)/, 'the status object printed as if it were the state');
  });

  describe('the Go example', { skip: goMissing }, () => {
    let server: NatsServer;
    let daemon: Daemon;

    before(async () => {
      server = await NatsServer.start();
      daemon = await startDaemon(server.url, [{ name: 'echo', project: join(ROOT, 'handlers', 'echo'), threads: 2 }]);
    });

    after(async () => {
      await daemon?.close();
      await server?.dispose();
    });

    test('builds with Debian\'s nats.go and runs: submitted, succeeded, every result read', async () => {
      const go = blocks('go');
      assert.equal(go.length, 1);
      const gopath = tempDir('jetbatch-protocol-go-');
      const dir = join(gopath, 'src', 'example');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'main.go'), go[0]!);
      const env = { ...process.env, GO111MODULE: 'off', GOPATH: `${gopath}:${GOCODE}`, GOFLAGS: '', GOCACHE: join(gopath, 'cache'), NATS_URL: server.url };
      const build = await run('go', ['build', '-o', join(gopath, 'example'), '.'], { cwd: dir, env, timeout: 180_000 });
      assert.equal(build.code, 0, build.stderr);
      const example = await run(join(gopath, 'example'), [], { env, timeout: 60_000 });
      assert.equal(example.code, 0, `${example.stdout}\n${example.stderr}`);
      assert.match(example.stdout, /^go-\d+ pending\nsucceeded\n3 results: map\[0:\[1 2 3 4\] 1:\[5 6 7 8\] 2:\[9 10\]\]\n$/);
    });
  });
});
