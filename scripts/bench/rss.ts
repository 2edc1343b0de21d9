/**
 * Idle and busy RSS of a jetbatch daemon process vs a raw NATS + 2-thread Piscina process, each measured in a child
 * process of its own (rss-child.ts): idle = settled after start, before any work; busy = peak while it drains a
 * job of 128 B no-op batches.
 */
import { fork, type ChildProcess } from 'node:child_process';
import type { JetbatchClient } from '../../src/client/client.js';
import { round } from './figures.js';
import { RAW_STREAM, sleep, within } from './infra.js';
import { WORKERS, waitSucceeded } from './jetbatch.js';
import { MiB, sizedBatch } from './payloads.js';
import { batchMsgId, publishWindowed } from './publish.js';
import { addRawConsumer, fillRaw, type RawEnv } from './raw-jetstream.js';
import type { FromChild, ToChild } from './rss-child.js';

const CHILD = new URL('./rss-child.ts', import.meta.url);
const IDLE_SETTLE_MS = 3000;

export interface Rss {
  idleMiB: number;
  busyMiB: number;
}

class Child {
  readonly proc: ChildProcess;
  readonly #replies: Array<(m: FromChild) => void> = [];

  constructor(args: string[]) {
    this.proc = fork(CHILD, args, { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    this.proc.on('message', (m: unknown) => this.#replies.shift()?.(m as FromChild));
  }

  next(): Promise<FromChild> {
    return within(new Promise<FromChild>((resolve) => this.#replies.push(resolve)), 60_000, 'rss child reply');
  }

  async ask(msg: ToChild): Promise<{ rss: number; peak: number }> {
    const reply = this.next();
    this.proc.send(msg);
    const r = await reply;
    if (r.type !== 'rss') throw new Error(`unexpected reply ${r.type}`);
    return r;
  }

  async exit(): Promise<void> {
    const exited = new Promise<void>((resolve) => this.proc.once('exit', () => resolve()));
    if (this.proc.exitCode !== null) return;
    this.proc.send({ type: 'exit' } satisfies ToChild);
    await within(exited, 20_000, 'rss child exit').catch(async () => {
      this.proc.kill('SIGKILL');
      await exited;
    });
  }
}

async function measure(args: string[], load: () => Promise<void>): Promise<Rss> {
  const child = new Child(args);
  try {
    const ready = await child.next();
    if (ready.type !== 'ready') throw new Error('rss child did not start');
    await sleep(IDLE_SETTLE_MS);
    const idle = (await child.ask({ type: 'sample' })).rss;
    await child.ask({ type: 'reset' });
    await load();
    const busy = (await child.ask({ type: 'sample' })).peak;
    return { idleMiB: round(idle / MiB, 1), busyMiB: round(busy / MiB, 1) };
  } finally {
    await child.exit();
  }
}

export function jetbatchRss(url: string, client: JetbatchClient, n: number): Promise<Rss> {
  return measure(['jetbatch', url], async () => {
    const batch = sizedBatch(128);
    const rec = await client.submit({ api_name: 'b-rss', batches: Array.from({ length: n }, () => batch.items), workers: WORKERS });
    await waitSucceeded(client, rec.job_id, n);
  });
}

export async function rawRss(url: string, env: RawEnv, n: number): Promise<Rss> {
  // The subject is created empty first so the child can bind; the load is published once it idles.
  const subject = await fillRaw(env, 'rss', new Uint8Array(0), 0);
  const durable = subject.replaceAll('.', '_');
  await addRawConsumer(env.jsm, durable, subject);
  try {
    return await measure(['raw', url, durable], async () => {
      const bytes = sizedBatch(128).bytes;
      await publishWindowed(env.js, n, (i) => ({ subject, data: bytes, msgID: batchMsgId(durable, String(i), 0) }));
      const deadline = Date.now() + 120_000;
      for (;;) {
        const info = await env.jsm.consumers.info(RAW_STREAM, durable);
        if (info.num_pending === 0 && info.num_ack_pending === 0) break;
        if (Date.now() > deadline) throw new Error('raw rss load did not drain');
        await sleep(100);
      }
    });
  } finally {
    await env.jsm.consumers.delete(RAW_STREAM, durable).catch(() => undefined);
  }
}
