/** What the figures were measured on. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, totalmem, type } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { natsServerBinary } from '../../test/helpers/nats-server.js';
import type { Machine } from './report.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const PACKAGES = ['@nats-io/transport-node', '@nats-io/jetstream', 'piscina', '@msgpack/msgpack', 'bullmq', 'ioredis', 'tsx'];

function tryRun(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

/** The commit measured, and the files under src/ that differ from it (others may be editing the work tree). */
export function sourceState(): { commit: string; dirtySrc: string[] } {
  const commit = tryRun('git', ['-C', root, 'rev-parse', '--short', 'HEAD']);
  let status = '';
  try {
    status = execFileSync('git', ['-C', root, 'status', '--porcelain', '--', 'src'], { encoding: 'utf8' });
  } catch {
    // Not a git checkout (an exported tree): nothing to compare against.
  }
  // Porcelain lines are `XY path`: the path starts at column 3.
  const dirtySrc = status.split('\n').filter((l) => l.length > 3).map((l) => l.slice(3));
  return { commit, dirtySrc };
}

export function machine(): Machine {
  const packages: Record<string, string> = {};
  for (const p of PACKAGES) {
    try {
      packages[p] = (JSON.parse(readFileSync(join(root, 'node_modules', p, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      packages[p] = 'missing';
    }
  }
  return {
    nproc: availableParallelism(),
    cpu: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os: `${type()} ${release()}`,
    loadAvg: { before: Math.round((loadavg()[0] ?? 0) * 100) / 100, after: 0 },
    node: process.version,
    natsServer: tryRun(natsServerBinary(), ['--version']).replace(/^nats-server: /, ''),
    redis: /v=(\S+)/.exec(tryRun('redis-server', ['--version']))?.[1] ?? 'unknown',
    packages,
    source: sourceState(),
  };
}
