/**
 * Stack traces of TypeScript handlers point at the source file and line (issue #14, item 7), whether the project is
 * an ES module package or, like most projects outside the repository, has no package.json (CommonJS to Node).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { JetbatchClient } from '../src/client/client.js';
import type { Daemon } from '../src/daemon/daemon.js';
import { startDaemon, tempDir } from './helpers/daemon.js';
import { NatsServer } from './helpers/nats-server.js';

const HANDLER = `interface Item { n: number }

export default class Thrower {
  handleBatch(payload: Item[]): number {
    if (payload.length > 0) throw new Error('thrown on line 5');
    return 0;
  }
}
`;

function project(packageJson: string | null): string {
  const dir = tempDir('jetbatch-stack-');
  writeFileSync(join(dir, 'handler.ts'), HANDLER);
  if (packageJson !== null) writeFileSync(join(dir, 'package.json'), packageJson);
  return dir;
}

describe('handler stack traces', () => {
  let server: NatsServer;
  let daemon: Daemon;
  let client: JetbatchClient;
  const dirs = { cjs: project(null), esm: project('{"type":"module"}') };

  before(async () => {
    server = await NatsServer.start();
    daemon = await startDaemon(server.url, [
      { name: 'stack-cjs', project: dirs.cjs, threads: 1, max_attempts: 1 },
      { name: 'stack-esm', project: dirs.esm, threads: 1, max_attempts: 1 },
    ]);
    client = await JetbatchClient.connect({ servers: [server.url] });
  });

  after(async () => {
    await client?.close();
    await daemon?.close();
    await server?.dispose();
  });

  for (const kind of ['cjs', 'esm'] as const) {
    test(`a ${kind === 'cjs' ? 'project without package.json' : 'project of "type": "module"'}: the dead letter's stack names handler.ts:5`, async () => {
      const job = await client.submit({ api_name: `stack-${kind}`, batches: [[{ n: 1 }]] });
      assert.equal((await client.wait(job.job_id, { intervalMs: 100, timeoutMs: 30_000 })).status, 'completed_with_failures');
      const [letter] = await client.deadLetters(job.job_id);
      const stack = letter?.error.stack ?? '';
      assert.match(stack, new RegExp(`at Thrower\\.handleBatch \\(${join(dirs[kind], 'handler.ts').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:5:\\d+\\)`), stack);
      assert.doesNotMatch(stack, /data:text|%3D/, 'no URL-encoded source in the stack');
      assert.ok(stack.length < 2000, `a short stack (${stack.length} characters)`);
    });
  }
});
