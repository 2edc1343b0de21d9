/**
 * Creates the streams and buckets jetbatch needs, idempotently. An existing stream whose retention, subjects or
 * storage differ from ours is refused loudly (JB_PROVISION_CONFLICT) rather than silently changed: it may belong to
 * someone else, and a WorkQueue stream cannot be converted. Stream retention ages are updated to the configured
 * values; a KV bucket's TTL applies when the bucket is created (change it with `nats kv` tools afterwards).
 */
import {
  DiscardPolicy,
  JetStreamApiError,
  RetentionPolicy,
  jetstream,
  jetstreamManager,
  StorageType,
  type JetStreamManager,
  type StreamConfig,
} from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { ErrorCodes, JetbatchError } from '../errors.js';
import { Objm } from '@nats-io/obj';
import { Buckets, ProjectsBucket, Streams, Subjects } from './protocol.js';

export interface ProvisionOptions {
  replicas: number;
  retentionMs: { results: number; deadLetters: number; events: number; jobs: number };
}

const NANOS_PER_MS = 1_000_000;
/** Window in which a repeated Nats-Msg-Id is stored once (a resubmission or a retried publish). */
const DUPLICATE_WINDOW_MS = 10 * 60_000;

/** JetStream API timeout while provisioning: creating replicated streams on a cluster can take seconds. */
const PROVISION_TIMEOUT_MS = 20_000;

/**
 * Provisions, retrying transient failures (timeouts, no JetStream leader yet) for up to `retryForMs` so a daemon
 * that starts together with its cluster waits for it; configuration conflicts fail at once.
 */
export async function provisionWithRetry(nc: NatsConnection, opts: ProvisionOptions, retryForMs: number, onRetry: (err: unknown) => void): Promise<void> {
  const deadline = Date.now() + retryForMs;
  let notEnabledSince: number | undefined;
  for (let delay = 500; ; delay = Math.min(delay * 2, 5000)) {
    try {
      await provision(nc, await jetstreamManager(nc, { timeout: PROVISION_TIMEOUT_MS }), opts);
      return;
    } catch (err) {
      if (err instanceof JetbatchError || Date.now() + delay > deadline) throw err;
      // Nothing answers the JetStream API: a server without JetStream (a cluster electing its leader still answers).
      // Retried briefly (a server still starting), then reported as what it is.
      if ((err as Error).name === 'JetStreamNotEnabled') {
        notEnabledSince ??= Date.now();
        if (Date.now() - notEnabledSince > JETSTREAM_MISSING_MS) {
          throw new JetbatchError(ErrorCodes.CONNECTION_FAILED, 'the NATS server has no JetStream: start nats-server with -js (or a jetstream {} block in its config)', { cause: err });
        }
      } else notEnabledSince = undefined;
      onRetry(err);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/** How long the JetStream API may stay unanswered before the server counts as one without JetStream. */
const JETSTREAM_MISSING_MS = 5000;

type StreamSpec = Partial<StreamConfig> & { name: string; subjects: string[]; retention: RetentionPolicy };

/** A stream that keeps what it holds for `retentionMs` (0: forever). */
function limited(name: string, subject: string, retentionMs: number): StreamSpec {
  return { name, subjects: [subject], retention: RetentionPolicy.Limits, max_age: retentionMs * NANOS_PER_MS };
}

export async function provision(nc: NatsConnection, jsm: JetStreamManager, opts: ProvisionOptions): Promise<void> {
  const streams: StreamSpec[] = [
    {
      name: Streams.batches,
      subjects: [Subjects.batchWildcard],
      retention: RetentionPolicy.Workqueue,
      max_age: 0,
    },
    limited(Streams.deadLetters, Subjects.deadLetterWildcard, opts.retentionMs.deadLetters),
    limited(Streams.results, Subjects.resultWildcard, opts.retentionMs.results),
    limited(Streams.events, Subjects.eventWildcard, opts.retentionMs.events),
    limited(Streams.claims, Subjects.claimWildcard, opts.retentionMs.jobs),
  ];
  for (const s of streams) {
    await ensureStream(jsm, {
      ...s,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      num_replicas: opts.replicas,
      duplicate_window: DUPLICATE_WINDOW_MS * NANOS_PER_MS,
    });
  }
  const js = jetstream(nc, { timeout: PROVISION_TIMEOUT_MS });
  const kvm = new Kvm(js);
  await kvm.create(Buckets.jobs, { history: 1, ttl: opts.retentionMs.jobs, replicas: opts.replicas });
  await kvm.create(Buckets.apis, { history: 1, replicas: opts.replicas });
  await kvm.create(Buckets.stats, { history: 1, ttl: opts.retentionMs.jobs, replicas: opts.replicas });
  await kvm.create(Buckets.deployments, { history: 64, replicas: opts.replicas });
  // A daemon that died without deleting its entry leaves it behind; a day later the bucket forgets it.
  await kvm.create(Buckets.daemons, { history: 1, ttl: 86_400_000, replicas: opts.replicas });
  await new Objm(js).create(ProjectsBucket, { replicas: opts.replicas });
}

async function ensureStream(jsm: JetStreamManager, want: Partial<StreamConfig> & { name: string; subjects: string[] }): Promise<void> {
  let existing: StreamConfig | undefined;
  try {
    existing = (await jsm.streams.info(want.name)).config;
  } catch (err) {
    if (!(err instanceof JetStreamApiError) || err.status !== 404) throw err;
  }
  if (existing === undefined) {
    try {
      await jsm.streams.add(want);
      return;
    } catch (err) {
      // Another daemon may have created it in between; fall through to the compatibility check.
      existing = (await jsm.streams.info(want.name).catch(() => { throw err; })).config;
    }
  }
  const problems: string[] = [];
  if (existing.retention !== want.retention) problems.push(`retention is ${existing.retention}, need ${want.retention}`);
  if (existing.storage !== want.storage) problems.push(`storage is ${existing.storage}, need ${want.storage}`);
  const subjects = [...(existing.subjects ?? [])].sort().join(',');
  if (subjects !== [...want.subjects].sort().join(',')) problems.push(`subjects are [${subjects}], need [${want.subjects.join(',')}]`);
  if (problems.length > 0) {
    throw new JetbatchError(
      ErrorCodes.PROVISION_CONFLICT,
      `stream ${want.name} exists with an incompatible configuration: ${problems.join('; ')}. ` +
        `Remove it (nats stream rm ${want.name}) or point jetbatch at another account.`,
      { details: problems },
    );
  }
  if (existing.max_age !== want.max_age || existing.duplicate_window !== want.duplicate_window) {
    await jsm.streams.update(want.name, { ...existing, max_age: want.max_age ?? 0, duplicate_window: want.duplicate_window ?? existing.duplicate_window });
  }
}
