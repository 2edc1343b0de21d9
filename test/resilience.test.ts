/**
 * Resilience: nothing is lost and nothing is counted twice when a daemon is killed with SIGKILL, when a daemon
 * shuts down gracefully (SIGTERM, with a long or a short grace), or when the nats-server itself crashes and
 * restarts. Every test starts its own nats-server (random port, temp store) and its own daemons.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { JetbatchClient } from '../src/client/client.js';
import type { Daemon } from '../src/daemon/daemon.js';
import { Streams, consumerName } from '../src/fleet/protocol.js';
import type { JobStatus } from '../src/types.js';
import { DaemonProcess, FIXTURES, readRecords, startDaemon, tempDir, type TestApi } from './helpers/daemon.js';
import { NatsServer } from './helpers/nats-server.js';
import { waitUntil } from './helpers/wait.js';

type Rec = Record<string, unknown>;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it holds (a probe that throws, e.g. during an outage, counts as not yet); fails with `what`. */
function until<T>(what: string, fn: () => T | Promise<T>, timeoutMs: number, intervalMs = 20) {
  return waitUntil(what, fn, { timeoutMs, intervalMs, retryErrors: true });
}

/** Recorder lines of one job, tolerating a line being written while we read (for polling only). */
function liveRecords(dir: string, job: string): Rec[] {
  const out: Rec[] = [];
  for (const f of readdirSync(dir)) {
    if (!f.endsWith('.jsonl')) continue;
    for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
      if (!line) continue;
      try {
        const r = JSON.parse(line) as Rec;
        if (r.job === job) out.push(r);
      } catch {
        // a half-written last line: it will be complete on the next poll
      }
    }
  }
  return out;
}

function jobRecords(dir: string, job: string): Rec[] {
  return readRecords(dir).filter((r) => r.job === job);
}

const ofPid = (records: Rec[], ev: string, pid: number | undefined): Rec[] => records.filter((r) => r.ev === ev && r.pid === pid);
const batchesOf = (records: Rec[]): Set<string> => new Set(records.map((r) => String(r.batch)));

/** Batches whose handler started on `pid` but never ended there (it was killed or aborted mid-batch). */
function unfinishedOn(records: Rec[], pid: number | undefined): string[] {
  const ended = batchesOf(ofPid(records, 'end', pid));
  return [...batchesOf(ofPid(records, 'start', pid))].filter((b) => !ended.has(b));
}

/** Every item in `ends` once, sorted (duplicates from redeliveries collapse). */
function itemsSeen(records: Rec[]): number[] {
  const seen = new Set(records.filter((r) => r.ev === 'end').flatMap((r) => r.items as number[]));
  return [...seen].sort((a, b) => a - b);
}

function isRunning(d: DaemonProcess): boolean {
  return d.proc.exitCode === null && d.proc.signalCode === null;
}

/** Status polling that rides out a NATS outage (a status read may fail while the server is down). */
async function waitTerminal(client: JetbatchClient, jobId: string, timeoutMs: number): Promise<JobStatus> {
  const terminal = new Set(['succeeded', 'completed_with_failures', 'worker_error', 'worker_oom', 'timed_out', 'stopped', 'enqueue_failed']);
  let last: JobStatus | undefined;
  return until(
    `job ${jobId} to end`,
    async () => {
      last = await client.status(jobId);
      return terminal.has(last.status) ? last : null;
    },
    timeoutMs,
    100,
  ).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}; last status: ${JSON.stringify(last)}`);
  });
}

/** Everything one test started; disposed in after() whatever happened. */
class Env {
  server: NatsServer | undefined;
  readonly procs: DaemonProcess[] = [];
  readonly daemons: Daemon[] = [];
  readonly clients: JetbatchClient[] = [];
  readonly conns: NatsConnection[] = [];
  readonly dirs: string[] = [];

  async startServer(): Promise<NatsServer> {
    this.server = await NatsServer.start();
    return this.server;
  }

  recordDir(): string {
    const d = tempDir('jetbatch-res-');
    this.dirs.push(d);
    return d;
  }

  async spawnDaemons(n: number, apis: TestApi[], extra: Record<string, unknown> = {}): Promise<DaemonProcess[]> {
    const started = await Promise.allSettled(Array.from({ length: n }, () => DaemonProcess.spawn(this.server!.url, apis, extra)));
    for (const s of started) if (s.status === 'fulfilled') this.procs.push(s.value);
    for (const s of started) if (s.status === 'rejected') throw s.reason;
    return started.map((s) => (s as PromiseFulfilledResult<DaemonProcess>).value);
  }

  async client(): Promise<JetbatchClient> {
    const c = await JetbatchClient.connect({ servers: [this.server!.url] });
    this.clients.push(c);
    return c;
  }

  /** A connection that keeps reconnecting (the client's own gives up on the first disconnect). */
  async connection(): Promise<NatsConnection> {
    const nc = await connect({ servers: this.server!.url, maxReconnectAttempts: -1, reconnectTimeWait: 250, reconnectJitter: 100 });
    this.conns.push(nc);
    return nc;
  }

  async dispose(): Promise<void> {
    for (const c of this.clients) await c.close().catch(() => undefined);
    for (const nc of this.conns) await nc.close().catch(() => undefined);
    for (const d of this.daemons) await Promise.race([d.close().catch(() => undefined), sleep(15_000)]);
    await Promise.all(
      this.procs.filter(isRunning).map((p) => Promise.race([p.kill('SIGKILL').catch(() => undefined), sleep(10_000)])),
    );
    await this.server?.dispose();
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
  }
}

function recorderApi(recordDir: string, threads: number): TestApi {
  return { name: 'recorder', project: join(FIXTURES, 'recorder'), threads, config: { record_dir: recordDir } };
}

/** The final status is `succeeded` with exact counts and onJobComplete ran exactly once with those counts. */
function assertCompletedOnce(final: JobStatus, records: Rec[], total: number): Rec {
  assert.equal(final.status, 'succeeded', JSON.stringify(final));
  assert.deepEqual([final.batch_metrics.succeeded, final.batch_metrics.failed], [total, 0], 'exact counts despite redeliveries');
  assert.equal(final.batches_in_queue, 0);
  const complete = records.filter((r) => r.ev === 'complete');
  assert.equal(complete.length, 1, `onJobComplete exactly once, ran ${complete.length} times`);
  const summary = complete[0]!.summary as { status: string; batch_metrics: { succeeded: number; failed: number } };
  assert.equal(summary.status, 'succeeded');
  assert.deepEqual([summary.batch_metrics.succeeded, summary.batch_metrics.failed], [total, 0], 'onJobComplete got the exact counts');
  return complete[0]!;
}

describe('resilience: kill -9 of a daemon mid-job', () => {
  const env = new Env();
  after(() => env.dispose());

  test('the other daemon finishes the job: every item processed, exact counts, onJobComplete once', async (t) => {
    await env.startServer();
    const recordDir = env.recordDir();
    const [victim, survivor] = await env.spawnDaemons(2, [recorderApi(recordDir, 2)]);
    const client = await env.client();
    const vpid = victim!.proc.pid;
    const spid = survivor!.proc.pid;

    const items = Array.from({ length: 200 }, (_, i) => i);
    const job = await client.submit({ api_name: 'recorder', items, batch_size: 1, workers: 4, config: { delay_ms: 30 } });

    // Kill once a good part of the job is done, both daemons work on it, and the victim is inside a batch that
    // started moments ago (so it is certainly killed mid-batch, not between an end and its ack).
    const atKill = await until(
      'both daemons to be running batches',
      () => {
        const rs = liveRecords(recordDir, job.job_id);
        if (batchesOf(rs.filter((r) => r.ev === 'end')).size < 50) return null;
        if (ofPid(rs, 'end', vpid).length < 5 || ofPid(rs, 'end', spid).length < 5) return null;
        const ended = batchesOf(ofPid(rs, 'end', vpid));
        const fresh = ofPid(rs, 'start', vpid).some((r) => !ended.has(String(r.batch)) && Date.now() - (r.t as number) < 12);
        return fresh ? rs : null;
      },
      60_000,
      3,
    );
    assert.equal(await victim!.kill('SIGKILL'), 'SIGKILL');
    const killedAt = Date.now();
    const endedBeforeKill = batchesOf(atKill.filter((r) => r.ev === 'end')).size;
    assert.ok(endedBeforeKill < 200, `killed mid-job (${endedBeforeKill}/200 batches had ended)`);

    const final = await client.wait(job.job_id, { intervalMs: 100, timeoutMs: 120_000 });
    const records = jobRecords(recordDir, job.job_id);
    const complete = assertCompletedOnce(final, records, 200);
    assert.equal(complete.pid, spid, 'the survivor ran onJobComplete');
    assert.deepEqual(itemsSeen(records), items, 'every item processed at least once');

    // The batches the victim was running when it died came back (after the lease) and the survivor finished them.
    const orphans = unfinishedOn(records, vpid);
    t.diagnostic(`killed after ${endedBeforeKill}/200 batches; ${orphans.length} cut mid-batch; job ended ${Date.now() - killedAt} ms after the kill`);
    assert.ok(orphans.length >= 1, 'the victim died inside a batch');
    const survivorEnds = batchesOf(ofPid(records, 'end', spid));
    for (const b of orphans) {
      assert.ok(survivorEnds.has(b), `batch ${b} (running on the killed daemon) was finished by the survivor`);
      const redelivered = ofPid(records, 'start', spid).filter((r) => r.batch === b);
      assert.ok(redelivered.some((r) => (r.attempt as number) >= 2), `batch ${b} came back as a redelivery: ${JSON.stringify(redelivered)}`);
    }
    assert.ok(ofPid(records, 'end', spid).some((r) => (r.t as number) > killedAt), 'the survivor kept working after the kill');
    assert.equal(ofPid(records, 'end', vpid).filter((r) => (r.t as number) > killedAt).length, 0, 'the victim really died');
  });
});

describe('resilience: SIGTERM with a long shutdown grace', () => {
  const env = new Env();
  after(() => env.dispose());

  test('in-flight batches finish on the leaving daemon, it exits 0 once they are done, the job ends with exact counts', async () => {
    const graceMs = 20_000;
    await env.startServer();
    const recordDir = env.recordDir();
    const [victim, survivor] = await env.spawnDaemons(2, [recorderApi(recordDir, 2)], { shutdown_grace: `${graceMs}ms` });
    const client = await env.client();
    const vpid = victim!.proc.pid;
    const spid = survivor!.proc.pid;

    const items = Array.from({ length: 60 }, (_, i) => i);
    const job = await client.submit({ api_name: 'recorder', items, batch_size: 1, workers: 4, config: { delay_ms: 300 } });

    // Signal while the victim is inside a batch that has most of its 300 ms still to run.
    await until(
      'the victim to be mid-batch',
      () => {
        const rs = liveRecords(recordDir, job.job_id);
        if (ofPid(rs, 'end', vpid).length < 2 || ofPid(rs, 'end', spid).length < 2) return false;
        const ended = batchesOf(ofPid(rs, 'end', vpid));
        return ofPid(rs, 'start', vpid).some((r) => !ended.has(String(r.batch)) && Date.now() - (r.t as number) < 100);
      },
      60_000,
      5,
    );
    const signalledAt = Date.now();
    const code = await victim!.kill('SIGTERM');
    const exitMs = Date.now() - signalledAt;
    assert.equal(code, 0, `graceful exit code 0; output:\n${victim!.output.slice(-4000)}`);
    assert.ok(exitMs < graceMs + 5000, `exited within the grace (+5 s margin): took ${exitMs} ms`);
    assert.match(victim!.output, /shutting down/);

    const final = await client.wait(job.job_id, { intervalMs: 100, timeoutMs: 120_000 });
    const records = jobRecords(recordDir, job.job_id);
    assertCompletedOnce(final, records, 60);
    assert.deepEqual(itemsSeen(records), items, 'every item processed at least once');

    // Graceful: every batch the leaving daemon started, it also finished (nothing aborted within the grace).
    assert.deepEqual(unfinishedOn(records, vpid), [], 'no batch was cut off on the leaving daemon');
    const vEnds = ofPid(records, 'end', vpid);
    assert.ok(vEnds.some((r) => (r.t as number) >= signalledAt), 'the daemon waited for its in-flight batch after SIGTERM');
    assert.ok(ofPid(records, 'end', spid).some((r) => (r.t as number) > signalledAt), 'the survivor kept working');
    // A batch acknowledged before leaving is not run again.
    const vEnded = batchesOf(vEnds);
    const rerun = records.filter((r) => r.ev === 'start' && r.pid === spid && vEnded.has(String(r.batch)));
    assert.deepEqual(rerun, [], 'batches finished by the leaving daemon were acknowledged, not redelivered');

    // Once its in-flight batches (a few × 300 ms) are done there is nothing left to wait for: the process must
    // exit then, not sit out the rest of the grace period (systemd restarts would take the full grace every time).
    const lastWork = Math.max(...vEnds.map((r) => r.t as number)) - signalledAt;
    const stoppedLine = victim!.output.split('\n').find((l) => l.includes('"daemon stopped"'));
    const stoppedMs = stoppedLine === undefined ? NaN : (JSON.parse(stoppedLine) as { time: number }).time - signalledAt;
    assert.ok(
      exitMs < lastWork + 5000,
      `the process exits soon after its last batch: the last batch ended ${lastWork} ms and 'daemon stopped' was logged ` +
        `${stoppedMs} ms after SIGTERM, yet the process exited only ${exitMs} ms after it (grace ${graceMs} ms)`,
    );
  });
});

describe('resilience: SIGTERM with a short shutdown grace', () => {
  const env = new Env();
  after(() => env.dispose());

  test('exits 0 promptly and hands its running batches back to the other daemon at once', async (t) => {
    await env.startServer();
    const recordDir = env.recordDir();
    // A long lease (JetStream ack wait), so a batch handed back (NAK) is distinguishable from one whose lease lapsed.
    const extra = { shutdown_grace: '500ms', lease: '10s' };
    const [victim] = await env.spawnDaemons(1, [recorderApi(recordDir, 2)], extra);
    const client = await env.client();
    const jsm = await jetstreamManager(await env.connection());
    const vpid = victim!.proc.pid;

    const delayMs = 12_000;
    const items = [0, 1, 2, 3];
    const job = await client.submit({ api_name: 'recorder', items, batch_size: 1, workers: 4, config: { delay_ms: delayMs } });
    const ackPending = async (): Promise<number> => (await jsm.consumers.info(Streams.batches, consumerName(job.job_id))).num_ack_pending;

    // The victim takes 2 batches and runs both (12 s batches get no prefetch: it holds no more than its 2 threads run);
    // then a survivor with 4 threads joins, takes the other 2 and keeps 2 threads idle, ready for what is handed back.
    await until(
      'the victim to hold 2 batches and run both',
      async () => (await ackPending()) === 2 && ofPid(liveRecords(recordDir, job.job_id), 'start', vpid).length === 2,
      30_000,
      50,
    );
    const [survivor] = await env.spawnDaemons(1, [recorderApi(recordDir, 4)], extra);
    const spid = survivor!.proc.pid;
    await until('the survivor to run the other 2', () => ofPid(liveRecords(recordDir, job.job_id), 'start', spid).length === 2, 30_000, 50);
    const atSignal = liveRecords(recordDir, job.job_id);
    const runningOnVictim = unfinishedOn(atSignal, vpid);
    const victimRunFor = Date.now() - Math.min(...ofPid(atSignal, 'start', vpid).map((r) => r.t as number));
    t.diagnostic(`signalling the victim ${victimRunFor} ms into its ${delayMs} ms batches`);
    assert.equal(runningOnVictim.length, 2, `the victim is still inside its two batches (${victimRunFor} ms in)`);

    const signalledAt = Date.now();
    const code = await victim!.kill('SIGTERM');
    const exitMs = Date.now() - signalledAt;
    assert.equal(code, 0, `graceful exit code 0; output:\n${victim!.output.slice(-4000)}`);
    assert.ok(exitMs < 4000, `a 500 ms grace does not wait for ${delayMs} ms batches: exit took ${exitMs} ms`);

    const final = await client.wait(job.job_id, { intervalMs: 200, timeoutMs: 120_000 });
    const records = jobRecords(recordDir, job.job_id);
    assertCompletedOnce(final, records, 4);
    assert.deepEqual(itemsSeen(records), items, 'every item processed at least once');
    assert.equal(ofPid(records, 'end', vpid).length, 0, 'no batch could finish on the victim within the 500 ms grace');

    // Both batches the victim held (and ran) were finished by the survivor as redeliveries, and the first of them
    // started right away: handed back, not left to lapse after the 10 s lease.
    const victimHeld = items.map(String).filter((b) => !ofPid(records, 'start', spid).some((r) => r.batch === b && r.attempt === 1));
    assert.equal(victimHeld.length, 2, `the victim held 2 batches: ${JSON.stringify(victimHeld)}`);
    const survivorEnds = batchesOf(ofPid(records, 'end', spid));
    const redeliveredStarts: number[] = [];
    for (const b of victimHeld) {
      assert.ok(survivorEnds.has(b), `batch ${b} (held by the victim) was finished by the survivor`);
      const s = ofPid(records, 'start', spid).find((r) => r.batch === b && (r.attempt as number) >= 2);
      assert.ok(s, `batch ${b} was redelivered to the survivor`);
      redeliveredStarts.push((s.t as number) - signalledAt);
    }
    const first = Math.min(...redeliveredStarts);
    t.diagnostic(`victim exited ${exitMs} ms after SIGTERM; the first redelivered batch started ${first} ms after SIGTERM`);
    // Had the batches merely been abandoned, the 10 s ack wait (last extended ≤ 3.4 s before the signal) would hold
    // them for at least 6.6 s.
    assert.ok(first < 5000, `handed back at once: the first redelivered batch started ${first} ms after SIGTERM (the lease is 10 s)`);
  });
});

/** A crash-and-restart scenario of the nats-server under one in-process daemon. */
async function natsRestartScenario(env: Env, signal: NodeJS.Signals, t: { diagnostic(msg: string): void }): Promise<void> {
  const server = await env.startServer();
  const recordDir = env.recordDir();
  const daemon = await startDaemon(server.url, [recorderApi(recordDir, 2)], { log_level: 'error' });
  env.daemons.push(daemon);
  const addr = daemon.metricsAddress;
  assert.ok(addr, 'metrics endpoint listening');
  const readyz = async (): Promise<{ status: number; body: { ready: boolean; reasons: string[] } }> => {
    const res = await fetch(`http://${addr.host}:${addr.port}/readyz`, { signal: AbortSignal.timeout(2000) });
    return { status: res.status, body: (await res.json()) as { ready: boolean; reasons: string[] } };
  };
  // Ready once its threads have booted (503 for a moment right after the start).
  await until('/readyz to report 200 before the outage', async () => (await readyz()).status === 200, 15_000, 50);

  const nc = await env.connection();
  const client = await JetbatchClient.fromConnection(nc);
  const items = Array.from({ length: 100 }, (_, i) => i);
  const job = await client.submit({ api_name: 'recorder', items, batch_size: 1, workers: 4, config: { delay_ms: 50 } });

  const atCrash = await until('a good part of the job to end', () => {
    const rs = liveRecords(recordDir, job.job_id);
    return batchesOf(rs.filter((r) => r.ev === 'end')).size >= 25 ? rs : null;
  }, 60_000, 5);
  await server.stop(signal);
  const downAt = Date.now();
  const endedBeforeCrash = batchesOf(atCrash.filter((r) => r.ev === 'end'));
  assert.ok(endedBeforeCrash.size < 100, 'stopped mid-job');

  const down = await until('/readyz to report 503', async () => {
    const r = await readyz();
    return r.status === 503 ? r : null;
  }, 10_000, 50);
  assert.equal(down.body.ready, false);
  assert.ok(down.body.reasons.some((s) => /NATS/i.test(s)), `the reason names NATS: ${JSON.stringify(down.body)}`);

  // Not a synchronization: the outage lasting at least 1 s is part of the scenario, and /readyz must stay 503 through it.
  await sleep(Math.max(0, 1000 - (Date.now() - downAt)));
  assert.equal((await readyz()).status, 503, 'still not ready while NATS is down');
  await server.restart();
  const restartedAt = Date.now();
  await until('/readyz to report 200 after the reconnect', async () => (await readyz()).status === 200, 30_000, 100);
  const readyAfterMs = Date.now() - restartedAt;

  let final: JobStatus;
  try {
    final = await waitTerminal(client, job.job_id, 60_000);
  } catch (err) {
    // Explain a stuck job: which batches are still in the work queue, and had they already been processed?
    const jsm = await jetstreamManager(nc);
    const state = (await jsm.streams.info(Streams.batches)).state;
    const ci = await jsm.consumers.info(Streams.batches, consumerName(job.job_id)).catch(() => null);
    const left: string[] = [];
    for (let seq = state.first_seq; seq <= state.last_seq && left.length < 20; seq++) {
      const m = await jsm.streams.getMessage(Streams.batches, { seq }).catch(() => null);
      const b = m?.header.get('Jetbatch-Batch-Id');
      if (b) left.push(`seq ${seq} = batch ${b}${endedBeforeCrash.has(b) ? ' (ended before the crash)' : ''}`);
    }
    throw new Error(
      `${(err as Error).message}\n  still in ${Streams.batches}: ${left.join(', ')}` +
        `\n  job consumer: num_pending ${ci?.num_pending}, num_ack_pending ${ci?.num_ack_pending}, ack floor stream seq ${ci?.ack_floor.stream_seq}`,
    );
  }
  t.diagnostic(`stopped after ${endedBeforeCrash.size}/100 batches; ready ${readyAfterMs} ms after the restart; job ended ${Date.now() - restartedAt} ms after the restart`);
  const records = jobRecords(recordDir, job.job_id);
  assertCompletedOnce(final, records, 100);
  assert.deepEqual(itemsSeen(records), items, 'every item processed at least once');
  assert.ok(records.some((r) => r.ev === 'end' && (r.t as number) > restartedAt), 'batches ran after the restart');
  assert.equal((await readyz()).status, 200, 'ready after the job');
}

describe('resilience: nats-server restart mid-job', () => {
  const env = new Env();
  after(() => env.dispose());

  test('clean restart (SIGTERM): the daemon reconnects and finishes the job with exact counts; /readyz 503 while down', async (t) => {
    await natsRestartScenario(env, 'SIGTERM', t);
  });
});

describe('resilience: nats-server crash (SIGKILL) and restart mid-job', () => {
  const env = new Env();
  after(() => env.dispose());

  test('the daemon reconnects and finishes the job with exact counts; /readyz 503 while down', async (t) => {
    await natsRestartScenario(env, 'SIGKILL', t);
  });
});
