/**
 * Projects are checked at start and on SIGHUP (issue #14, items 2, 6 and 9): a missing folder, a folder without a
 * handler, a handler that fails to import and one exported by name only are logged, make /readyz answer 503 and show
 * as unhealthy in `apis`; SIGHUP gives a local project whose files changed a fresh pool for new jobs while running
 * jobs finish on the code they started with.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { JetbatchClient } from '../src/client/client.js';
import type { Daemon } from '../src/daemon/daemon.js';
import { DaemonProcess, FIXTURES, ROOT, startDaemon, tempDir } from './helpers/daemon.js';
import { NatsServer } from './helpers/nats-server.js';
import { runCli } from './helpers/cli.js';
import { waitUntil } from './helpers/wait.js';

const cli = (url: string, ...args: string[]) => runCli(args, url);

/** A JS handler project in a temp folder returning `code` for every batch, after `delay_ms` (job config). */
function codeProject(dir: string, code: string): void {
  writeFileSync(
    join(dir, 'handler.mjs'),
    `const CODE = ${JSON.stringify(code)};\n` +
      'export default class Coded {\n' +
      '  constructor(config) { this.delay = config.delay_ms ?? 0; }\n' +
      '  async handleBatch() { await new Promise((r) => setTimeout(r, this.delay)); return CODE; }\n' +
      '}\n',
  );
}

const PYTHON = process.env.JETBATCH_TEST_PYTHON ?? '/usr/bin/python3';

/** A Python project in a temp folder holding `source` as handler.py. */
function pythonProject(source: string): string {
  const dir = tempDir('jetbatch-py-check-');
  writeFileSync(join(dir, 'handler.py'), source);
  return dir;
}

describe('project checks at start', () => {
  let server: NatsServer;
  let daemon: Daemon;
  let client: JetbatchClient;
  const empty = tempDir();
  const py = {
    good: pythonProject('import json\n\nclass Handler:\n    def __init__(self, config):\n        pass\n\n    def handle_batch(self, payload):\n        return len(payload)\n'),
    raises: pythonProject('import json\n\nraise RuntimeError("weights.pt not found")\n'),
    noclass: pythonProject('def handle_batch(payload):\n    return payload\n'),
  };

  before(async () => {
    server = await NatsServer.start();
    daemon = await startDaemon(server.url, [
      { name: 'good', project: join(ROOT, 'handlers', 'echo'), threads: 1 },
      { name: 'nofolder', project: join(empty, 'does-not-exist'), threads: 1 },
      { name: 'nohandler', project: empty, threads: 1 },
      { name: 'importfails', project: join(FIXTURES, 'import-throws'), threads: 1 },
      { name: 'named', project: join(FIXTURES, 'named-export'), threads: 1 },
      { name: 'py-good', project: py.good, threads: 1, python: PYTHON },
      { name: 'py-raises', project: py.raises, threads: 1, python: PYTHON },
      { name: 'py-noclass', project: py.noclass, threads: 1, python: PYTHON },
      { name: 'py-nointerp', project: py.good, threads: 1, python: '/nonexistent/bin/python3' },
    ]);
    client = await JetbatchClient.connect({ servers: [server.url] });
  });

  after(async () => {
    await client?.close();
    await daemon?.close();
    await server?.dispose();
  });

  test('broken projects make /readyz answer 503 naming each of them, and only them', async () => {
    // Every project checked, and every pool's threads booted (until then a pool's own reason is listed too).
    await waitUntil('the broken projects checked', () => {
      const reasons = daemon.ready().reasons;
      return reasons.filter((r) => r.startsWith('api ')).length >= 7 && !reasons.some((r) => r.startsWith('pool '));
    }, { timeoutMs: 30_000 });
    const a = daemon.metricsAddress!;
    const res = await fetch(`http://${a.host}:${a.port}/readyz`);
    assert.equal(res.status, 503);
    const body = (await res.json()) as { ready: boolean; reasons: string[] };
    assert.equal(body.ready, false);
    const byApi = new Map(body.reasons.map((r) => [/^api (\S+)/.exec(r)?.[1] ?? '', r]));
    assert.deepEqual([...byApi.keys()].sort(), ['importfails', 'named', 'nofolder', 'nohandler', 'py-noclass', 'py-nointerp', 'py-raises']);
    assert.match(byApi.get('py-raises')!, /cannot load .*handler\.py: weights\.pt not found/);
    assert.match(byApi.get('py-noclass')!, /handler\.py defines no class Handler/);
    assert.match(byApi.get('py-nointerp')!, /the Python interpreter \/nonexistent\/bin\/python3 was not found/);
    assert.match(byApi.get('nofolder')!, /project folder .*does-not-exist does not exist/);
    assert.match(byApi.get('nohandler')!, /no handler module in /);
    assert.match(byApi.get('importfails')!, /libcuda\.so\.1/);
    assert.match(byApi.get('named')!, /no default-exported class \(it exports `Handler` by name: write `export default class Handler …`\)/);
  });

  test('apis (client and CLI) show which APIs the live daemons cannot load, and why', async () => {
    await waitUntil('unhealthy APIs in the heartbeat', async () => (await client.apis()).filter((x) => x.error !== null).length === 7, { timeoutMs: 15_000 });
    const apis = new Map((await client.apis()).map((x) => [x.api_name, x]));
    assert.deepEqual([apis.get('good')?.unhealthy_daemons, apis.get('good')?.error], [0, null]);
    assert.equal(apis.get('importfails')?.unhealthy_daemons, 1);
    assert.equal(apis.get('py-good')?.error, null);
    assert.match(apis.get('py-raises')?.error?.stack ?? '', /RuntimeError: weights\.pt not found/, 'the Python traceback travels with it');
    assert.equal(apis.get('importfails')?.error?.code, 'JB_HANDLER_LOAD_FAILED');
    const r = await cli(server.url, 'apis');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^importfails {2}1 daemon, 1 thread {2}local project\n {2}UNHEALTHY on every live daemon: JB_HANDLER_LOAD_FAILED: .*libcuda\.so\.1/m, r.stdout);
    assert.doesNotMatch(r.stdout, /^good .*\n {2}UNHEALTHY/m);
    const items = join(tempDir(), 'items.json');
    writeFileSync(items, '[1]');
    const submitted = await cli(server.url, 'submit', 'named', '--items', items, '--batch-size', '1');
    assert.equal(submitted.code, 0, submitted.stderr);
    assert.match(submitted.stderr, /warning: every live daemon serving "named" reports it unhealthy \(handler .* has no default-exported class/);
  });

  test('a job of a handler exported by name only ends worker_error with the rule in the message', async () => {
    const job = await client.submit({ api_name: 'named', batches: [[1], [2]] });
    const final = await client.wait(job.job_id, { intervalMs: 100, timeoutMs: 30_000 });
    assert.equal(final.status, 'worker_error');
    assert.equal(final.error?.code, 'JB_HANDLER_LOAD_FAILED');
    assert.match(final.error?.message ?? '', /exports `Handler` by name: write `export default class Handler …`/);
  });
});

describe('SIGHUP re-imports changed local projects', () => {
  test('a project fixed or changed on disk serves new jobs after SIGHUP; a running job keeps its code', async () => {
    const server = await NatsServer.start();
    const coded = tempDir();
    codeProject(coded, 'v1');
    const broken = tempDir();
    writeFileSync(join(broken, 'handler.mjs'), "throw new Error('model file missing');\n");
    mkdirSync(join(broken, 'data'));
    const daemon = await DaemonProcess.spawn(server.url, [
      { name: 'coded', project: coded, threads: 2 },
      { name: 'broken', project: broken, threads: 1 },
    ]);
    const client = await JetbatchClient.connect({ servers: [server.url] });
    const results = async (jobId: string): Promise<string[]> => {
      const out: string[] = [];
      for await (const r of client.results(jobId)) out.push(r.result as string);
      return out;
    };
    try {
      // Logged clearly at start, with the API's name and the error.
      await daemon.waitFor(/API unhealthy/, 30_000);
      const line = daemon.output.split('\n').find((l) => l.includes('API unhealthy'))!;
      assert.match(line, /"api_name":"broken"/);
      assert.match(line, /model file missing/);

      const running = await client.submit({ api_name: 'coded', items: Array.from({ length: 8 }, (_, i) => i), batch_size: 1, workers: 1, config: { delay_ms: 400 } });
      await waitUntil('the first job running', async () => (await client.status(running.job_id)).batch_metrics.succeeded >= 1, { timeoutMs: 30_000 });
      codeProject(coded, 'v2');
      writeFileSync(join(broken, 'handler.mjs'), 'export default class Fixed { handleBatch() { return "fixed"; } }\n');
      daemon.proc.kill('SIGHUP');
      await daemon.waitFor(/configuration reloaded/, 15_000);
      assert.match(daemon.output, /"reloaded":\["coded","broken"\]|"reloaded":\["broken","coded"\]/);

      const next = await client.submit({ api_name: 'coded', items: [1, 2, 3], batch_size: 1 });
      assert.equal((await client.wait(next.job_id, { intervalMs: 100, timeoutMs: 30_000 })).status, 'succeeded');
      assert.deepEqual(await results(next.job_id), ['v2', 'v2', 'v2']);
      const first = await client.wait(running.job_id, { intervalMs: 100, timeoutMs: 60_000 });
      assert.equal(first.status, 'succeeded');
      assert.deepEqual(await results(running.job_id), Array(8).fill('v1'), 'the running job finished on the code it started with');

      await waitUntil('broken is healthy again', async () => (await client.apis()).find((a) => a.api_name === 'broken')?.error === null, { timeoutMs: 15_000 });
      const fixed = await client.submit({ api_name: 'broken', batches: [[1]] });
      assert.equal((await client.wait(fixed.job_id, { intervalMs: 100, timeoutMs: 30_000 })).status, 'succeeded');
      assert.deepEqual(await results(fixed.job_id), ['fixed']);
      assert.match(daemon.output, /closed the pool of an outdated project version/);
    } finally {
      await client.close();
      assert.equal(await daemon.kill('SIGTERM'), 0, daemon.output);
      await server.dispose();
    }
  });
});
