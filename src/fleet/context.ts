/** Handles to the JetStream objects jetbatch uses, opened once per connection. */
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { ErrorCodes, JetbatchError } from '../errors.js';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { Buckets, ProjectsBucket } from './protocol.js';

export interface FleetContext {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly jobs: KV;
  readonly apis: KV;
  readonly stats: KV;
  readonly deployments: KV;
  /** Daemon presence (heartbeats), by daemon id. */
  readonly daemons: KV;
  readonly projects: ObjectStore;
}

export async function openContext(nc: NatsConnection): Promise<FleetContext> {
  const jsm = await jetstreamManager(nc).catch((err: unknown) => {
    throw new JetbatchError(ErrorCodes.CONNECTION_FAILED, `JetStream is not enabled on this NATS server/account: ${(err as Error).message}`, { cause: err });
  });
  const js = jetstream(nc);
  const kvm = new Kvm(js);
  const open = async (name: string): Promise<KV> => {
    try {
      // Reads go to the stream leader, never to a follower (direct get): a compare-and-set loop that decides
      // "nothing to do" from a follower's stale copy would skip a write it owes (a follower of nats-server before
      // 2.9.17 can even answer with a value from before its restart, nats-server#4162).
      const kv = await kvm.open(name, { allow_direct: false });
      await kv.status();
      return kv;
    } catch (err) {
      throw new JetbatchError(
        ErrorCodes.CONNECTION_FAILED,
        `bucket ${name} is missing: start a jetbatch daemon once against this NATS server (it provisions the streams and buckets)`,
        { cause: err },
      );
    }
  };
  const [jobs, apis, stats, deployments, daemons] = await Promise.all([
    open(Buckets.jobs),
    open(Buckets.apis),
    open(Buckets.stats),
    open(Buckets.deployments),
    open(Buckets.daemons),
  ]);
  const projects = await new Objm(js).open(ProjectsBucket).catch((err: unknown) => {
    throw new JetbatchError(ErrorCodes.CONNECTION_FAILED, `object store ${ProjectsBucket} is missing: start a jetbatch daemon once against this NATS server`, { cause: err });
  });
  return { nc, js, jsm, jobs, apis, stats, deployments, daemons, projects };
}
