/**
 * `apis` shows what serves each API now (issue #14, item 4): an API whose daemons died or left shows 0 live daemons,
 * and a submission can refuse to wait for one (`requireDaemon`) instead of sitting `pending` without a word.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { JetbatchClient } from '../src/client/client.js';
import { ErrorCodes, JetbatchError } from '../src/errors.js';
import { FIXTURES, startDaemon, tempDir } from './helpers/daemon.js';
import { NatsServer } from './helpers/nats-server.js';
import { runCli } from './helpers/cli.js';
import { waitUntil } from './helpers/wait.js';

describe('apis: live daemons and lanes', () => {
  let server: NatsServer;
  let client: JetbatchClient;

  before(async () => {
    server = await NatsServer.start();
  });

  after(async () => {
    await client?.close();
    await server?.dispose();
  });

  test('an API shows its live daemons and their lanes; once they leave, 0, and requireDaemon refuses to submit', async () => {
    const api = (threads: number) => ({ name: 'livecheck', project: join(FIXTURES, 'recorder'), threads, config: { record_dir: tempDir() } });
    const a = await startDaemon(server.url, [api(2)]);
    const b = await startDaemon(server.url, [api(3)]);
    client = await JetbatchClient.connect({ servers: [server.url] });
    const find = async () => (await client.apis()).find((x) => x.api_name === 'livecheck');
    await waitUntil('both daemons in apis', async () => (await find())?.live_daemons === 2, { timeoutMs: 10_000 });
    assert.equal((await find())?.lanes, 5, '2 + 3 threads');

    const served = await client.submit({ api_name: 'livecheck', items: [1], batch_size: 1 }, { requireDaemon: true });
    assert.equal((await client.wait(served.job_id, { intervalMs: 100, timeoutMs: 30_000 })).status, 'succeeded');

    await Promise.all([a.close(), b.close()]);
    const gone = await find();
    assert.deepEqual([gone?.live_daemons, gone?.lanes], [0, 0], 'still registered, but nothing serves it');
    const before = (await client.jobs({ api: 'livecheck' })).length;
    await assert.rejects(client.submit({ api_name: 'livecheck', items: [1], batch_size: 1 }, { requireDaemon: true }), (err: unknown) => {
      assert.ok(err instanceof JetbatchError);
      assert.equal(err.code, ErrorCodes.UNKNOWN_API);
      assert.match(err.message, /no live daemon serves the API "livecheck"/);
      return true;
    });
    assert.equal((await client.jobs({ api: 'livecheck' })).length, before, 'nothing was submitted');
    // Without it, the job is accepted and waits for a daemon, as before.
    const waiting = await client.submit({ api_name: 'livecheck', items: [1], batch_size: 1 });
    assert.equal((await client.status(waiting.job_id)).status, 'pending');

    // The CLI says the same, as a person sees it.
    const apis = await cli('apis');
    assert.match(apis.stdout, /^livecheck {2}no live daemon \(last seen \d{4}-/m, apis.stdout);
    const items = join(tempDir(), 'items.json');
    writeFileSync(items, '[1]');
    const refused = await cli('submit', 'livecheck', '--items', items, '--batch-size', '1', '--require-daemon');
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /^jetbatch: JB_UNKNOWN_API: no live daemon serves the API "livecheck" now/m);
    const warned = await cli('submit', 'livecheck', '--items', items, '--batch-size', '1');
    assert.equal(warned.code, 0, warned.stderr);
    assert.match(warned.stderr, /warning: no live daemon serves the API "livecheck" now; job \S+ waits until one starts/);
  });

  test('the CLI lists each API with its live daemons and threads', async () => {
    const d = await startDaemon(server.url, [{ name: 'shown', project: join(FIXTURES, 'recorder'), threads: 2, config: { record_dir: tempDir() } }]);
    try {
      await waitUntil('the daemon in apis', async () => (await client.apis()).some((a) => a.api_name === 'shown' && a.live_daemons === 1), { timeoutMs: 10_000 });
      const r = await cli('apis');
      assert.match(r.stdout, /^shown {2}1 daemon, 2 threads {2}local project$/m, r.stdout);
    } finally {
      await d.close();
    }
  });

  const cli = (...args: string[]) => runCli(args, server.url);
});
