/**
 * A private nats-server with jetbatch's streams and buckets provisioned and a FleetContext on it: for tests of the
 * daemon's parts (puller, fleet view, bodies) without a daemon.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { openContext, type FleetContext } from '../../src/fleet/context.js';
import { provision } from '../../src/fleet/provision.js';
import { NatsServer } from './nats-server.js';

const DAY = 86_400_000;

export interface ProvisionedFleet {
  server: NatsServer;
  nc: NatsConnection;
  ctx: FleetContext;
  /** Closes the connection and stops the server. */
  close(): Promise<void>;
}

export async function provisionedFleet(): Promise<ProvisionedFleet> {
  const server = await NatsServer.start();
  const nc = await connect({ servers: server.url });
  await provision(nc, await jetstreamManager(nc), { replicas: 1, retentionMs: { results: DAY, deadLetters: DAY, events: DAY, jobs: DAY } });
  const ctx = await openContext(nc);
  return {
    server,
    nc,
    ctx,
    close: async () => {
      await nc.close();
      await server.dispose();
    },
  };
}
