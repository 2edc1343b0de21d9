/** Python projects: which files travel (no __pycache__ or *.pyc), deploy to a deployed API, the `python` key. */
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { JetbatchClient } from '../src/client/client.js';
import { parseConfig } from '../src/daemon/config.js';
import type { Daemon } from '../src/daemon/daemon.js';
import { listProjectFiles } from '../src/project/files.js';
import { FIXTURES, startDaemon, tempDir } from './helpers/daemon.js';
import { NatsServer } from './helpers/nats-server.js';
import { PYTHON } from './helpers/python.js';

/** A copy of python-minimal with compiled files and a virtualenv-like interpreter link. */
function project(): string {
  const dir = join(tempDir('jetbatch-pyproj-'), 'proj');
  cpSync(join(FIXTURES, 'python-minimal'), dir, { recursive: true });
  for (const p of ['__pycache__/handler.cpython-311.pyc', 'lib/__pycache__/util.cpython-311.pyc', 'stale.pyc', 'lib/old.pyo', 'lib/util.py']) {
    mkdirSync(join(dir, p, '..'), { recursive: true });
    writeFileSync(join(dir, p), 'x');
  }
  mkdirSync(join(dir, 'venv', 'bin'), { recursive: true });
  symlinkSync(PYTHON, join(dir, 'venv', 'bin', 'python'));
  return dir;
}

describe('python projects', () => {
  let server: NatsServer;
  let daemon: Daemon;
  let client: JetbatchClient;
  const dir = project();
  const recordDir = tempDir('jetbatch-pyproj-rec-');

  before(async () => {
    server = await NatsServer.start();
    // A deployed API loads its project when a job arrives: the daemon can start before the deploy.
    daemon = await startDaemon(server.url, [
      { name: 'py-deployed', deployed: true, python: PYTHON, threads: 1, config: { factor: 3, record_dir: recordDir } },
      { name: 'py-venv', project: dir, python: 'venv/bin/python', threads: 1, config: { factor: 5, record_dir: recordDir } },
    ], { state_dir: tempDir('jetbatch-pyproj-state-') }); // deployed versions go there, not into the repository
    client = await JetbatchClient.connect({ servers: [server.url] });
  });

  after(async () => {
    await client?.close();
    await daemon?.close();
    await server?.dispose();
  });

  test('__pycache__ folders and *.pyc / *.pyo files do not travel', async () => {
    const { files, skipped } = await listProjectFiles(dir);
    assert.deepEqual(files.map((f) => f.path).sort(), ['handler.py', 'lib/util.py']);
    assert.deepEqual(skipped, ['venv/bin/python'], 'the interpreter link is a symbolic link: it stays behind');
  });

  test('`python` is a command on PATH or a path relative to the project', () => {
    const parse = (python: string | undefined, extra: Record<string, unknown> = { project: dir }) =>
      parseConfig({ apis: [{ name: 'p', ...extra, ...(python === undefined ? {} : { python }) }] }, '/etc/jetbatch/jetbatch.yaml').apis[0]!.python;
    assert.equal(parse(undefined), 'python3');
    assert.equal(parse('python3.11'), 'python3.11');
    assert.equal(parse('venv/bin/python'), join(dir, 'venv/bin/python'));
    assert.equal(parse('/opt/py/bin/python'), '/opt/py/bin/python');
    assert.equal(parse('venv/bin/python', { deployed: true }), 'venv/bin/python', 'a deployed project resolves it per version');
  });

  test('a deployed Python project runs, and a local one with a relative interpreter path', async () => {
    const deployment = await client.deploy(dir, 'py-deployed');
    assert.equal(deployment.skipped.length, 1);
    for (const [api, factor] of [['py-deployed', 3], ['py-venv', 5]] as const) {
      const job = await client.submit({ api_name: api, items: [1, 2, 3], batch_size: 3 });
      const final = await client.wait(job.job_id, { intervalMs: 100, timeoutMs: 60_000 });
      assert.equal(final.status, 'succeeded', `${api}: ${JSON.stringify(final.error)}`);
      const results = [];
      for await (const r of client.results(job.job_id)) results.push(r.result);
      assert.deepEqual(results, [[factor, 2 * factor, 3 * factor]], api);
    }
  });
});
