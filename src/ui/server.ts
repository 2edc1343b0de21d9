/**
 * `jetbatch ui`: an HTTP server (node:http, no framework: a dozen routes) showing the fleet from NATS. It is a
 * client of the fleet like the CLI: it follows the job registry and the daemons' heartbeats with KV watches and reads
 * the rest on demand. close() is idempotent and bounded: it ends the event streams, stops accepting, drops
 * connections still open after CLOSE_GRACE_MS, and stops the watches; the NATS connection is the caller's.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { NatsConnection } from '@nats-io/transport-node';
import { JetbatchClient } from '../client/client.js';
import { openContext } from '../fleet/context.js';
import { loadAssets } from './assets.js';
import { checkHost } from './auth.js';
import { FleetCache } from './fleet-cache.js';
import { JobCache } from './job-cache.js';
import type { UiOptions } from './options.js';
import { HttpError, Routes, scrub, sendError } from './routes.js';
import { StatusSource } from './rows.js';
import { SseHub } from './sse.js';

const CLOSE_GRACE_MS = 2000;

/**
 * No inline script or style, nothing from another origin: a string that slipped through escaping still could not
 * run. Charts are images served here; progress bars are SVG attributes.
 */
export const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': CONTENT_SECURITY_POLICY,
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

/** Where warnings go (watch restarts, failed reads); a pino logger fits. */
export interface UiLog {
  warn(obj: { err: unknown }, msg: string): void;
}

export interface UiServerOptions extends UiOptions {
  log: UiLog;
}

export class UiServer {
  readonly #server: Server;
  readonly #jobs: JobCache;
  readonly #fleet: FleetCache;
  readonly #sse: SseHub;
  readonly #client: JetbatchClient;
  #closing: Promise<void> | undefined;

  private constructor(server: Server, jobs: JobCache, fleet: FleetCache, sse: SseHub, client: JetbatchClient, options: UiServerOptions) {
    this.#server = server;
    this.#jobs = jobs;
    this.#fleet = fleet;
    this.#sse = sse;
    this.#client = client;
  }

  /** Opens the buckets on `nc` (which stays the caller's), starts following them, and listens. */
  static async start(nc: NatsConnection, options: UiServerOptions): Promise<UiServer> {
    const assets = loadAssets();
    const ctx = await openContext(nc);
    const client = await JetbatchClient.fromConnection(nc);
    const onError = (err: unknown): void => options.log.warn({ err }, 'jetbatch ui: a read from NATS failed');
    const jobs = new JobCache(ctx, onError);
    const fleet = new FleetCache(ctx, onError);
    const sse = new SseHub();
    const statuses = new StatusSource(ctx, fleet);
    const routes = new Routes({ ctx, client, jobs, fleet, statuses, sse, options, assets, onError });
    const server = createServer((req, res) => void handle(req, res));
    const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
      for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
      const url = new URL(req.url ?? '/', 'http://ui.invalid');
      try {
        const host = checkHost(req, options);
        if (!host.ok) throw new HttpError(host.status, host.message);
        await routes.handle(req, res, url);
      } catch (err) {
        if (err instanceof HttpError) sendError(res, url, err.status, err.message, options.token !== null);
        else {
          onError(err);
          sendError(res, url, 502, `reading from NATS failed: ${scrub((err as Error).message ?? String(err))}`, options.token !== null);
        }
      }
    };
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    jobs.start();
    fleet.start();
    const ui = new UiServer(server, jobs, fleet, sse, client, options);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(options.port, options.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      await ui.close();
      throw err;
    }
    return ui;
  }

  /** The address it listens on, e.g. http://127.0.0.1:8080. */
  get url(): string {
    const a = this.#server.address() as AddressInfo;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return `http://${host}:${a.port}`;
  }

  /** Resolves once the job list has been read (the first page shows every job). */
  get ready(): Promise<void> {
    return this.#jobs.ready;
  }

  /** Idempotent; resolves within about CLOSE_GRACE_MS + 5 s whatever the browsers and NATS do. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#sse.closeAll();
      const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
      this.#server.closeIdleConnections();
      const grace = setTimeout(() => this.#server.closeAllConnections(), CLOSE_GRACE_MS);
      await closed;
      clearTimeout(grace);
      await Promise.allSettled([this.#jobs.stop(), this.#fleet.stop(), this.#client.close()]);
    })();
    return this.#closing;
  }
}
