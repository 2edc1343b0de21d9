/**
 * onJobComplete once per job, fleet-wide, under the conditions that broke it: a hook longer than the lease on a busy
 * daemon, a claimer frozen (SIGSTOP) for longer than its lease, a claimer killed or frozen past its presence
 * timeout mid-hook (a second run, flagged `rerun`), and the job registry's leader killed while the hook runs.
 * Daemons run as processes (lease 3 s, presence timeout 6 s, checks every 300 ms: test/helpers/daemon.ts).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { JetbatchClient } from '../src/client/client.js';
import { openContext, type FleetContext } from '../src/fleet/context.js';
import { countSubject } from '../src/fleet/progress.js';
import { Streams, Subjects } from '../src/fleet/protocol.js';
import { claimCompletion, type ClaimDeps } from '../src/daemon/completion/completion.js';
import { Peers } from '../src/daemon/completion/peers.js';
import { provision } from '../src/fleet/provision.js';
import { encodeJson } from '../src/fleet/protocol.js';
import { createJob, getJob, transitionJob } from '../src/fleet/registry.js';
import type { JobRecord } from '../src/types.js';
import { jetstreamManager } from '@nats-io/jetstream';
import { DaemonProcess, FIXTURES, tempDir, type TestApi } from './helpers/daemon.js';
import { NatsCluster } from './helpers/nats-cluster.js';
import { NatsServer } from './helpers/nats-server.js';
import { waitUntil } from './helpers/wait.js';

interface Hook {
  ev: 'hook-start' | 'hook-end';
  job: string;
  pid: number;
  attempt: number;
  rerun: boolean;
}

function hooks(dir: string, job: string): Hook[] {
  const file = join(dir, 'hooks.jsonl');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Hook).filter((h) => h.job === job);
}

/** Polls `probe` every 100 ms until it returns something (not undefined, null or false); fails with `what`. */
function until<T>(what: string, timeoutMs: number, probe: () => T | Promise<T>) {
  return waitUntil(what, probe, { timeoutMs, intervalMs: 100 });
}

function daemonIdOf(d: DaemonProcess): string {
  const line = d.output.split('\n').find((l) => l.includes('"daemon started"'));
  return (JSON.parse(line!) as { daemon: string }).daemon;
}

class Fleet {
  readonly dir = tempDir('jetbatch-completion-');
  readonly daemons: DaemonProcess[] = [];
  client!: JetbatchClient;
  nc!: NatsConnection;
  ctx!: FleetContext;
  readonly api: TestApi;

  constructor(readonly servers: string[], readonly extra: Record<string, unknown> = {}) {
    this.api = { name: 'slowhook', project: join(FIXTURES, 'slow-hook'), threads: 2, config: { record_dir: this.dir } };
  }

  async start(n: number): Promise<void> {
    for (let i = 0; i < n; i++) await this.spawn(i);
    this.client = await JetbatchClient.connect({ servers: this.servers });
    this.nc = await connect({ servers: this.servers });
    this.ctx = await openContext(this.nc);
  }

  async spawn(i: number): Promise<void> {
    const servers = [...this.servers.slice(i % this.servers.length), ...this.servers.slice(0, i % this.servers.length)];
    this.daemons[i] = await DaemonProcess.spawn(servers[0]!, [this.api], { nats: { servers }, ...this.extra });
  }

  byPid(pid: number): DaemonProcess {
    const d = this.daemons.find((x) => x.proc.pid === pid);
    assert.ok(d !== undefined, `no daemon with pid ${pid}`);
    return d;
  }

  async submit(config: Record<string, unknown>, extra: { max_attempts?: number; workers?: number } = {}): Promise<string> {
    const job = await this.client.submit({ api_name: 'slowhook', items: Array.from({ length: 40 }, (_, i) => i), batch_size: 2, workers: 4, config, ...extra });
    return job.job_id;
  }

  async final(jobId: string, timeoutMs = 90_000): Promise<JobRecord> {
    await this.client.wait(jobId, { intervalMs: 100, timeoutMs });
    return (await getJob(this.ctx.jobs, jobId))!.record;
  }

  /** Completion events of the job, once the first has been published (it follows the final status). */
  async completionEvents(jobId: string): Promise<number> {
    const count = (): Promise<number> => countSubject(this.ctx, Streams.events, Subjects.event('slowhook', jobId, 'completed'));
    await until('the completion event', 30_000, async () => ((await count()) > 0 ? true : undefined));
    return count();
  }

  /** Log lines of every daemon about completing `jobId`, for assertion messages. */
  story(jobId: string): string {
    return this.daemons
      .flatMap((d) => d.output.split('\n').filter((l) => l.includes(jobId) && /complet|onJobComplete|claim/.test(l)))
      .join('\n');
  }

  async dispose(): Promise<void> {
    await this.client?.close();
    await this.nc?.close();
    for (const d of this.daemons) {
      d.proc.kill('SIGCONT');
      await d.kill('SIGKILL');
    }
  }
}

describe('completion: two daemons on one server', () => {
  let server: NatsServer;
  let fleet: Fleet;

  before(async () => {
    server = await NatsServer.start();
    fleet = new Fleet([server.url]);
    await fleet.start(2);
  });

  after(async () => {
    await fleet?.dispose();
    await server?.dispose();
  });

  test('a hook three times longer than the lease, on a thread kept busy, while the daemons run another job: one run', async () => {
    const jobId = await fleet.submit({ hook_spin_ms: 10_000 });
    await until('the hook to start', 30_000, () => hooks(fleet.dir, jobId).length > 0 || undefined);
    // Keep both daemons busy while the hook runs: a second job of many small batches.
    const busy = await fleet.client.submit({ api_name: 'slowhook', items: Array.from({ length: 6000 }, (_, i) => i), batch_size: 1, workers: 8 });
    const record = await fleet.final(jobId);
    assert.equal(record.status, 'succeeded');
    const runs = hooks(fleet.dir, jobId);
    assert.deepEqual(runs.map((h) => [h.ev, h.attempt, h.rerun]), [['hook-start', 1, false], ['hook-end', 1, false]], fleet.story(jobId));
    assert.equal(record.completion?.attempt, 1);
    assert.notEqual(record.completion?.hook_started_at, null);
    assert.equal(await fleet.completionEvents(jobId), 1);
    assert.equal((await fleet.client.wait(busy.job_id, { intervalMs: 200, timeoutMs: 120_000 })).status, 'succeeded');
  });

  test('a claimer frozen (SIGSTOP) past its lease but within its presence timeout keeps its claim: one run', async () => {
    const jobId = await fleet.submit({ hook_ms: 1000 });
    const start = await until('the hook to start', 30_000, () => hooks(fleet.dir, jobId)[0]);
    const claimer = fleet.byPid(start.pid);
    claimer.proc.kill('SIGSTOP');
    // Not a synchronization: how long the claimer stays frozen is the scenario (lease 3 s < 4.5 s < presence timeout 6 s).
    await new Promise((r) => setTimeout(r, 4500));
    // Past its lease for real, and the claim still its own: the other daemon did not take it over meanwhile.
    const frozenClaim = (await getJob(fleet.ctx.jobs, jobId))!.record.completion;
    assert.ok(frozenClaim !== null && Date.parse(frozenClaim.lease_until) < Date.now(), `the lease lapsed while frozen: ${JSON.stringify(frozenClaim)}`);
    assert.equal(frozenClaim.claimed_by, daemonIdOf(claimer), 'the frozen claimer still holds the claim');
    claimer.proc.kill('SIGCONT');
    const record = await fleet.final(jobId);
    assert.equal(record.status, 'succeeded');
    assert.deepEqual(hooks(fleet.dir, jobId).map((h) => [h.ev, h.pid, h.attempt]), [['hook-start', start.pid, 1], ['hook-end', start.pid, 1]], fleet.story(jobId));
    assert.equal(record.completion?.claimed_by, daemonIdOf(claimer));
    assert.equal(await fleet.completionEvents(jobId), 1);
  });

  test('a claimer killed (kill -9) mid-hook: another daemon runs the hook again, flagged rerun, and writes the end once', async () => {
    const jobId = await fleet.submit({ hook_ms: 120_000 });
    const start = await until('the hook to start', 30_000, () => hooks(fleet.dir, jobId)[0]);
    const victim = fleet.byPid(start.pid);
    const victimId = daemonIdOf(victim);
    const index = fleet.daemons.indexOf(victim);
    await victim.kill('SIGKILL');
    const record = await fleet.final(jobId, 60_000);
    assert.equal(record.status, 'succeeded');
    const runs = hooks(fleet.dir, jobId);
    assert.deepEqual(runs.map((h) => [h.ev, h.attempt, h.rerun]), [['hook-start', 1, false], ['hook-start', 2, true], ['hook-end', 2, true]], fleet.story(jobId));
    assert.notEqual(runs[1]!.pid, start.pid);
    assert.equal(record.completion?.attempt, 2);
    assert.equal(record.completion?.took_over?.claimed_by, victimId);
    const status = await fleet.client.status(jobId);
    assert.deepEqual([status.completion?.attempt, status.completion?.rerun], [2, true], 'the status shows the takeover');
    assert.equal(await fleet.completionEvents(jobId), 1);
    await fleet.spawn(index);
  });

  test('a claimer shut down (SIGTERM) mid-hook waits out its grace, leaves, and another daemon runs the hook again at once', async () => {
    const jobId = await fleet.submit({ hook_ms: 120_000 });
    const start = await until('the hook to start', 30_000, () => hooks(fleet.dir, jobId)[0]);
    const leaving = fleet.byPid(start.pid);
    const index = fleet.daemons.indexOf(leaving);
    assert.equal(await leaving.kill('SIGTERM'), 0, 'a graceful exit');
    assert.match(leaving.output, /completion left unfinished/);
    const record = await fleet.final(jobId, 60_000);
    assert.equal(record.status, 'succeeded');
    assert.deepEqual(hooks(fleet.dir, jobId).map((h) => [h.ev, h.attempt, h.rerun]), [['hook-start', 1, false], ['hook-start', 2, true], ['hook-end', 2, true]], fleet.story(jobId));
    assert.match(record.completion?.took_over?.claimed_by ?? '', new RegExp(`-${start.pid}-`));
    assert.equal(await fleet.completionEvents(jobId), 1);
    await fleet.spawn(index);
  });

  test('a claimer frozen past its presence timeout mid-hook, then resumed: two runs, no third, the end written once', async () => {
    const jobId = await fleet.submit({ hook_ms: 2000 });
    const start = await until('the hook to start', 30_000, () => hooks(fleet.dir, jobId)[0]);
    const frozen = fleet.byPid(start.pid);
    frozen.proc.kill('SIGSTOP');
    const record = await fleet.final(jobId, 60_000);
    assert.equal(record.status, 'succeeded');
    assert.equal(record.completion?.attempt, 2);
    assert.notEqual(record.completion?.claimed_by, daemonIdOf(frozen));
    frozen.proc.kill('SIGCONT');
    // The resumed claimer finishes the hook it was in, then finds its claim taken and writes nothing.
    await frozen.waitFor(new RegExp(`${jobId}.*completion claim lost|completion claim lost.*${jobId}`), 30_000);
    const runs = hooks(fleet.dir, jobId);
    assert.deepEqual(
      runs.map((h) => [h.ev, h.attempt, h.rerun]).sort(),
      [['hook-end', 1, false], ['hook-end', 2, true], ['hook-start', 1, false], ['hook-start', 2, true]],
      fleet.story(jobId),
    );
    assert.equal(await fleet.completionEvents(jobId), 1);
    const after = (await getJob(fleet.ctx.jobs, jobId))!.record;
    assert.deepEqual([after.status, after.end_time, after.completion?.attempt], [record.status, record.end_time, 2], 'the final status was written once');
  });
});

describe('completion: dead-letter replay of a job still running', () => {
  let server: NatsServer;
  let fleet: Fleet;

  before(async () => {
    server = await NatsServer.start();
    fleet = new Fleet([server.url]);
    await fleet.start(1);
  });

  after(async () => {
    await fleet?.dispose();
    await server?.dispose();
  });

  test('the job is held in enqueuing (no completion) while its dead letters are re-published; a second replay at the same time is refused', async () => {
    const jobId = await fleet.submit({ delay_ms: 150, fail: ['0'] }, { max_attempts: 1, workers: 2 });
    await until('the first dead letter', 30_000, async () => ((await fleet.client.deadLetters(jobId)).length > 0 ? true : undefined));
    const replays = await Promise.allSettled([fleet.client.replayDeadLetters(jobId), fleet.client.replayDeadLetters(jobId)]);
    const done = replays.filter((r) => r.status === 'fulfilled');
    const refused = replays.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.equal(done.length, 1, 'one replay runs');
    assert.equal(refused.length, 1, 'the other is refused');
    assert.match(String(refused[0]!.reason), /changed state during replay.*enqueuing/);
    assert.equal((done[0] as PromiseFulfilledResult<{ replayed: number; record: JobRecord }>).value.record.status, 'running', 'a running job resumes as running');
    const record = await fleet.final(jobId);
    assert.equal(record.status, 'completed_with_failures');
    assert.deepEqual([record.batch_metrics?.succeeded, record.batch_metrics?.failed], [19, 1]);
    const letters = await fleet.client.deadLetters(jobId);
    assert.deepEqual(letters.map((l) => [l.batch_id, l.generation]), [['0', 1]], 'the replayed batch failed again, once');
    assert.deepEqual(hooks(fleet.dir, jobId).map((h) => h.ev), ['hook-start', 'hook-end']);
  });
});

describe('completion: the job registry leader killed mid-hook (3-node cluster)', () => {
  let cluster: NatsCluster;
  let fleet: Fleet;

  before(async () => {
    cluster = await NatsCluster.start();
    fleet = new Fleet(cluster.urls, { replicas: 3 });
    await fleet.start(2);
  });

  after(async () => {
    await fleet?.dispose();
    await cluster?.dispose();
  });

  test('renewals and writes fail for seconds while NATS elects a leader: the claimer keeps its claim, one run', async () => {
    const jobId = await fleet.submit({ hook_ms: 8000 });
    await until('the hook to start', 30_000, () => hooks(fleet.dir, jobId)[0]);
    const info = await fleet.ctx.jsm.streams.info(`KV_${'JETBATCH_JOBS'}`);
    const leader = info.cluster?.leader ?? '';
    const node = cluster.nodes[Number(leader.replace(/^jb/, '')) - 1];
    assert.ok(node !== undefined, `leader ${leader} is one of the nodes`);
    await node.stop('SIGKILL');
    // The node stays down until NATS has elected another leader for the job registry (requests fail meanwhile).
    await waitUntil(`a new leader of the job registry (was ${leader})`, async () => {
      const now = (await fleet.ctx.jsm.streams.info(`KV_${'JETBATCH_JOBS'}`)).cluster?.leader;
      return now !== undefined && now !== '' && now !== leader;
    }, { timeoutMs: 60_000, intervalMs: 200, retryErrors: true });
    await node.restart();
    const record = await fleet.final(jobId, 90_000);
    assert.equal(record.status, 'succeeded');
    assert.deepEqual(hooks(fleet.dir, jobId).map((h) => [h.ev, h.attempt]), [['hook-start', 1], ['hook-end', 1]], fleet.story(jobId));
    assert.equal(await fleet.completionEvents(jobId), 1);
  });
});

describe('completion: daemons claiming one job at the same instant (3-node cluster, replicas 3)', () => {
  let cluster: NatsCluster;
  const conns: NatsConnection[] = [];
  const ctxs: FleetContext[] = [];

  before(async () => {
    cluster = await NatsCluster.start();
    for (const url of cluster.urls) {
      const nc = await connect({ servers: [url] });
      conns.push(nc);
    }
    const day = 86_400_000;
    await provision(conns[0]!, await jetstreamManager(conns[0]!, { timeout: 20_000 }), { replicas: 3, retentionMs: { results: day, deadLetters: day, events: day, jobs: day } });
    for (const nc of conns) ctxs.push(await openContext(nc));
  });

  after(async () => {
    for (const nc of conns) await nc.close();
    await cluster?.dispose();
  });

  const record = (jobId: string): JobRecord => {
    const now = new Date().toISOString();
    return {
      job_id: jobId, api_name: 'race', status: 'running', workers: 1, total_batch_count: 1, config: {}, timeout: null, batch_timeout: null,
      max_attempts: null, backoff: null, spec_hash: 'race', start_time: now, end_time: null, enqueue_deadline: now, error: null,
      batch_metrics: null, batches_in_queue: null, completion: null,
    };
  };

  test('exactly one daemon claims each job, where a bare compare-and-set lets several win', async () => {
    const daemons = ctxs.map((ctx, i): ClaimDeps => ({ ctx, daemonId: `racer-${i}`, leaseMs: 3000, presenceTimeoutMs: 6000, peers: new Peers(ctx.daemons), present: () => true }));
    for (const d of daemons) await d.ctx.daemons.put(d.daemonId, encodeJson({ daemon: d.daemonId, presence_timeout_ms: 6000 }));
    const rounds = 60;
    let bareDoubles = 0;
    const winners: number[] = [];
    for (let i = 0; i < rounds; i++) {
      // The pattern that ran onJobComplete twice: every daemon reads `running` and claims with a CAS at once.
      const bare = `bare-${i}`;
      await createJob(ctxs[0]!.jobs, record(bare));
      const bareWins = await Promise.all(ctxs.map((ctx, k) => transitionJob(ctx.jobs, bare, (r) => (r.status === 'running' ? { ...r, status: 'completing', completion: { claimed_by: `racer-${k}`, attempt: 1, claimed_at: '', lease_until: new Date(Date.now() + 3000).toISOString(), hook_started_at: null, rerun: false } } : null))));
      if (bareWins.filter((w) => w?.changed).length > 1) bareDoubles++;

      const jobId = `race-${i}`;
      await createJob(ctxs[0]!.jobs, record(jobId));
      const claims = await Promise.all(daemons.map((d) => claimCompletion(d, jobId)));
      winners.push(claims.filter((c) => c !== null).length);
      const stored = (await getJob(ctxs[0]!.jobs, jobId))!.record;
      const winner = daemons[claims.findIndex((c) => c !== null)]!;
      assert.deepEqual([stored.status, stored.completion?.claimed_by, stored.completion?.attempt], ['completing', winner.daemonId, 1]);
    }
    console.log(`claim race: ${rounds} rounds of 3 daemons; bare compare-and-set let two or more win in ${bareDoubles}; claimCompletion winners per round: ${JSON.stringify(winners)}`);
    assert.deepEqual(winners, Array.from({ length: rounds }, () => 1), 'one winner per job');
  });

  test('a takeover overwritten in the record by a late write of the claimer it replaced: the log winner writes it again, nobody else claims', async () => {
    const deps = (i: number, leaseMs = 3000): ClaimDeps => ({ ctx: ctxs[i]!, daemonId: `late-${i}`, leaseMs, presenceTimeoutMs: 6000, peers: new Peers(ctxs[i]!.daemons), present: () => true });
    const [a, b, c] = [deps(0, 1), deps(1), deps(2)];
    for (const d of [a, b, c]) await d.ctx.daemons.put(d.daemonId, encodeJson({ daemon: d.daemonId, presence_timeout_ms: 6000 }));
    const jobId = 'late-write';
    await createJob(ctxs[0]!.jobs, record(jobId));
    const first = await claimCompletion(a, jobId);
    assert.equal(first?.claimed.record.completion?.attempt, 1);
    // a is gone (its heartbeat deleted, its 1 ms lease lapsed): b takes over as attempt 2.
    await ctxs[0]!.daemons.delete(a.daemonId);
    const leaseUntil = Date.parse(first!.claimed.record.completion!.lease_until);
    await waitUntil('a\'s 1 ms lease to lapse', () => Date.now() >= leaseUntil, { timeoutMs: 1000, intervalMs: 1 });
    const takeover = await claimCompletion(b, jobId);
    assert.deepEqual([takeover?.claimed.record.completion?.claimed_by, takeover?.claimed.record.completion?.attempt], [b.daemonId, 2]);
    // a was only frozen: it resumes, and its lease renewal lands over b's claim (as two CAS writes expecting the same
    // revision can on a clustered nats-server before 2.9.21); then it finds attempt 2 taken and stops renewing.
    await ctxs[0]!.daemons.put(a.daemonId, encodeJson({ daemon: a.daemonId, presence_timeout_ms: 6000 }));
    const stored = (await getJob(ctxs[0]!.jobs, jobId))!;
    await ctxs[0]!.jobs.put(jobId, encodeJson({ ...stored.record, completion: { ...first!.claimed.record.completion!, lease_until: new Date(Date.now() - 1).toISOString() } }));
    assert.equal(await claimCompletion(a, jobId), null, 'a: attempt 2 is b\'s, and b is alive');
    assert.equal(await claimCompletion(c, jobId), null, 'c: b is alive');
    const again = await claimCompletion(b, jobId);
    assert.deepEqual([again?.claimed.record.completion?.claimed_by, again?.claimed.record.completion?.attempt], [b.daemonId, 2], 'b writes its claim again');
  });
});
