/** A three-node NATS cluster with JetStream on loopback ports, for chaos tests: nodes can be killed and restarted. */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { NatsServer, freePort } from './nats-server.js';

export class NatsCluster {
  readonly nodes: NatsServer[];

  private constructor(nodes: NatsServer[]) {
    this.nodes = nodes;
  }

  static async start(size = 3): Promise<NatsCluster> {
    const clientPorts = await Promise.all(Array.from({ length: size }, () => freePort()));
    const routePorts = await Promise.all(Array.from({ length: size }, () => freePort()));
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
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const nc = await connect({ servers: this.urls, timeout: 2000 });
        try {
          const jsm = await jetstreamManager(nc, { timeout: 2000 });
          await jsm.getAccountInfo();
          return;
        } finally {
          await nc.close();
        }
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`JetStream cluster not ready after ${timeoutMs} ms: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  async dispose(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.dispose()));
  }
}
