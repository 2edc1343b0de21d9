/**
 * What the benchmark runs against, all on 127.0.0.1: a private nats-server (temp store, free port, the test
 * helper) with a raw WorkQueue stream shaped like jetbatch's, and the local Redis for BullMQ (started if nothing
 * answers on 6379, and shut down again if we started it).
 */
import { execFile } from 'node:child_process';
import { connect as tcpConnect } from 'node:net';
import { promisify } from 'node:util';
import { DiscardPolicy, RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { NatsServer } from '../../test/helpers/nats-server.js';

const run = promisify(execFile);

export const REDIS_PORT = 6379;
/** Raw stream for the reference figures: same retention, storage and duplicate window as JETBATCH_BATCHES. */
export const RAW_STREAM = 'BENCH_RAW';
export const rawSubject = (scenario: string): string => `bench.raw.${scenario}`;

export async function startNats(): Promise<NatsServer> {
  return NatsServer.start();
}

export async function createRawStream(jsm: JetStreamManager): Promise<void> {
  await jsm.streams.add({
    name: RAW_STREAM,
    subjects: ['bench.raw.>'],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    num_replicas: 1,
    duplicate_window: 10 * 60_000 * 1_000_000,
  });
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = tcpConnect(port, '127.0.0.1');
    const done = (ok: boolean): void => {
      c.destroy();
      resolve(ok);
    };
    c.setTimeout(1000, () => done(false));
    c.once('error', () => done(false));
    c.once('connect', () => c.write('PING\r\n'));
    c.once('data', (d: Buffer) => done(d.toString().startsWith('+PONG')));
  });
}

/** Makes sure Redis answers on 127.0.0.1:6379; returns a stop function if this call started it. */
export async function ensureRedis(): Promise<{ started: boolean; stop: () => Promise<void> }> {
  if (await ping(REDIS_PORT)) return { started: false, stop: async () => undefined };
  await run('redis-server', ['--port', String(REDIS_PORT), '--bind', '127.0.0.1', '--save', '', '--daemonize', 'yes']);
  const deadline = Date.now() + 10_000;
  while (!(await ping(REDIS_PORT))) {
    if (Date.now() > deadline) throw new Error(`redis-server did not answer on ${REDIS_PORT} within 10 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    started: true,
    stop: async () => {
      await run('redis-cli', ['-p', String(REDIS_PORT), 'shutdown', 'nosave']).catch(() => undefined);
    },
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Rejects if `p` takes longer than `ms`, so no scenario can hang the run. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<T>((_, reject) => {
    t = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}
