/**
 * `npm run demo`: runs a job end to end. Uses the NATS server in NATS_URL when set; otherwise starts a private
 * nats-server (random port, temp store) and removes it afterwards. Starts a daemon from config/jetbatch.yaml,
 * submits a job, shows progress, prints a summary and the first results, and shuts everything down.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { JetbatchClient } from '../src/client/client.js';
import { progressView } from '../src/cli/progress.js';
import { loadConfig } from '../src/daemon/config.js';
import { Daemon } from '../src/daemon/daemon.js';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => res(typeof a === 'object' && a !== null ? a.port : 0));
    });
  });
}

async function startPrivateNats(bin: string): Promise<{ url: string; stop: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'jetbatch-demo-'));
  const port = await freePort();
  const conf = join(dir, 'nats.conf');
  writeFileSync(conf, `listen: 127.0.0.1:${port}\njetstream { store_dir: "${join(dir, 'store')}" }\n`);
  const proc: ChildProcess = spawn(bin, ['-c', conf], { stdio: 'ignore' });
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((r) => {
      const c = tcpConnect(port, '127.0.0.1');
      c.once('connect', () => { c.destroy(); r(true); });
      c.once('error', () => r(false));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    stop: async () => {
      await new Promise<void>((r) => { proc.once('exit', () => r()); proc.kill('SIGTERM'); });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const natsBin = process.argv[2] ?? 'nats-server';
const external = process.env.NATS_URL;
const nats = external ? { url: external, stop: async () => {} } : await startPrivateNats(natsBin);
console.log(external ? `using NATS at ${external}` : `started a private nats-server at ${nats.url}`);

const options = await loadConfig(join(root, 'config', 'jetbatch.yaml'), { servers: [nats.url] });
const demoOptions = { ...options, metrics: { ...options.metrics, listen: '127.0.0.1:0' } };
const daemon = await Daemon.start(demoOptions, { logger: pino({ level: 'warn' }) });
const client = await JetbatchClient.connect({ servers: [nats.url] });
try {
  const items = Array.from({ length: 2000 }, (_, i) => ({ id: i, text: `document ${i}` }));
  const started = Date.now();
  const record = await client.submit({ api_name: 'echo', items, batch_size: 20, workers: 4, config: { delay_ms: 5 } });
  console.log(`submitted job ${record.job_id}: ${items.length} items in ${record.total_batch_count} batches`);
  const view = progressView(process.stdout);
  const final = await client.wait(record.job_id, { intervalMs: 200, onStatus: (s) => view.update(s) });
  view.stop();
  const seconds = (Date.now() - started) / 1000;
  let returned = 0;
  let sample = '';
  for await (const r of client.results(record.job_id)) {
    returned += Array.isArray(r.result) ? r.result.length : 0;
    if (r.batch_id === '0') sample = JSON.stringify(r).slice(0, 160);
  }
  console.log(`\njob ${final.job_id} ${final.status}: ${final.batch_metrics.succeeded} batches succeeded, ${final.batch_metrics.failed} failed`);
  console.log(`${items.length} items in ${seconds.toFixed(2)} s (${(items.length / seconds).toFixed(0)} items/s); ${returned} items came back as results`);
  console.log(`result of batch 0 (as \`jetbatch results ${final.job_id}\` prints it): ${sample}…`);
  process.exitCode = final.status === 'succeeded' && returned === items.length ? 0 : 1;
} finally {
  await client.close();
  await daemon.close();
  await nats.stop();
}
