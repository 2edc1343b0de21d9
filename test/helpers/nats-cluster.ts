/** A three-node NATS cluster with JetStream on loopback ports, for chaos tests: nodes can be killed and restarted. */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { NatsServer, freePorts } from './nats-server.js';
import { waitUntil } from './wait.js';

export class NatsCluster {
  readonly nodes: NatsServer[];

  private constructor(nodes: NatsServer[]) {
    this.nodes = nodes;
  }

  static async start(size = 3): Promise<NatsCluster> {
    const ports = await freePorts(2 * size);
    const clientPorts = ports.slice(0, size);
    const routePorts = ports.slice(size);
    const nodes = await Promise.all(
      clientPorts.map((port, i) =>
        NatsServer.start({
          port,
          config: [
            `server_name: jb${i + 1}`,
            'cluster {',
            '  name: jetbatch-test',
            `  listen: 127.0.0.1:${routePorts[i]}`,
            `  routes: [${routePorts.filter((_, j) => j !== i).map((p) => `nats-route://127.0.0.1:${p}`).join(', ')}]`,
            '}',
          ].join('\n'),
        }),
      ),
    );
    const cluster = new NatsCluster(nodes);
    await cluster.waitForJetStream(60_000);
    return cluster;
  }

  get urls(): string[] {
    return this.nodes.map((n) => n.url);
  }

  /** Waits until the cluster has a JetStream meta leader (account info answers). */
  async waitForJetStream(timeoutMs: number): Promise<void> {
    await waitUntil('the JetStream cluster to answer account info', async () => {
      const nc = await connect({ servers: this.urls, timeout: 2000 });
      try {
        const jsm = await jetstreamManager(nc, { timeout: 2000 });
        await jsm.getAccountInfo();
        return true;
      } finally {
        await nc.close();
      }
    }, { timeoutMs, intervalMs: 500, retryErrors: true });
  }

  async dispose(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.dispose()));
  }
}
