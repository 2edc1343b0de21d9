/** The daemon's HTTP endpoints: /metrics (Prometheus text), /healthz (alive), /readyz (connected, pools up, not draining). */
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import { ErrorCodes, JetbatchError } from '../errors.js';

export interface HttpDeps {
  registry: Registry;
  ready(): { ready: boolean; reasons: string[] };
}

export async function startHttp(listen: string, deps: HttpDeps): Promise<Server> {
  const i = listen.lastIndexOf(':');
  const host = listen.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(listen.slice(i + 1));
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405).end();
      return;
    }
    if (path === '/metrics') {
      deps.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': deps.registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const r = deps.ready();
      res.writeHead(r.ready ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(r) + '\n');
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'EADDRINUSE' ? 'the address is already in use (another daemon on this host?)' : err.message;
      reject(new JetbatchError(ErrorCodes.INVALID_CONFIG, `metrics.listen ${listen}: cannot listen: ${why}`, { cause: err }));
    });
    server.listen(port, host, () => resolve());
  });
  return server;
}
