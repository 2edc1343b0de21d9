/**
 * A process whose memory the benchmark measures (run by rss.ts through fork with IPC):
 *   jetbatch <url>  an in-process daemon serving API `b-rss` (no-op handler, 2 threads);
 *   raw <url> <durable>  a NATS connection consuming the raw subject into a 2-thread Piscina pool, ack after task.
 * It samples its RSS every 50 ms and answers `sample` with the current and peak values.
 */
import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { RAW_STREAM } from './infra.js';
import { HANDLERS, startBenchDaemon } from './jetbatch.js';
import { rawPool, runTask } from './raw-piscina.js';

export type ToChild = { type: 'sample' } | { type: 'reset' } | { type: 'exit' };
export type FromChild = { type: 'ready' } | { type: 'rss'; rss: number; peak: number };

const [mode, url, durable] = process.argv.slice(2);
if (url === undefined || (mode !== 'jetbatch' && mode !== 'raw')) throw new Error('usage: rss-child.ts jetbatch|raw <url> [durable]');

let peak = 0;
const sampler = setInterval(() => {
  peak = Math.max(peak, process.memoryUsage.rss());
}, 50);

function send(msg: FromChild): void {
  process.send?.(msg);
}

let shutdown: () => Promise<void>;
if (mode === 'jetbatch') {
  const daemon = await startBenchDaemon(url, { name: 'b-rss', project: HANDLERS.noop, threads: 2 });
  shutdown = () => daemon.close();
} else {
  const nc = await connect({ servers: url });
  const pool = rawPool(2);
  const consumer = await jetstream(nc).consumers.get(RAW_STREAM, durable ?? '');
  const messages = await consumer.consume();
  const loop = (async () => {
    const inflight = new Set<Promise<void>>();
    for await (const m of messages) {
      const p: Promise<void> = runTask(pool, m.data, 0).then(() => {
        m.ack();
        inflight.delete(p);
      });
      inflight.add(p);
      // Backpressure: no more tasks in flight than the pool can use.
      if (inflight.size >= 64) await Promise.race(inflight);
    }
  })();
  shutdown = async () => {
    await messages.close();
    await loop;
    await pool.destroy();
    await nc.drain();
  };
}

process.on('message', (raw: unknown) => {
  const msg = raw as ToChild;
  if (msg.type === 'sample') send({ type: 'rss', rss: process.memoryUsage.rss(), peak: Math.max(peak, process.memoryUsage.rss()) });
  else if (msg.type === 'reset') {
    peak = process.memoryUsage.rss();
    send({ type: 'rss', rss: peak, peak });
  } else {
    clearInterval(sampler);
    // Exit explicitly: a heartbeat timer of a consumer on the closed connection may linger (see main.ts).
    void shutdown().finally(() => process.exit(0));
  }
});
send({ type: 'ready' });
