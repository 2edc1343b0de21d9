/** close() leaves nothing running: a process that starts and closes daemons exits on its own. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ROOT } from './helpers/daemon.js';
import { NatsServer } from './helpers/nats-server.js';

describe('shutdown', () => {
  let server: NatsServer;

  before(async () => {
    server = await NatsServer.start();
  });

  after(async () => {
    await server?.dispose();
  });

  test('a process that starts and closes daemons 32 times (closing each at once) exits by itself', async () => {
    // The job registry watch, set up while close() ran, used to leave a heartbeat timer behind in ~1 of 5 runs of 8.
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test', 'helpers', 'start-close.ts'), server.url, '32'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | string>((resolve) => {
      const t = setTimeout(() => {
        child.kill('SIGKILL');
        resolve('still running 60 s later');
      }, 60_000);
      child.once('exit', (c) => {
        clearTimeout(t);
        resolve(c ?? 'killed');
      });
    });
    assert.equal(code, 0, stderr.slice(-2000));
  });
});
