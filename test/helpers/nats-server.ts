/** Starts a private nats-server with JetStream on a free loopback port and a temp store dir; kill/restart at will. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as tcpConnect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitUntil } from './wait.js';

export function natsServerBinary(): string {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/local/bin', '/usr/bin'])) {
    const p = join(dir, 'nats-server');
    if (dir && existsSync(p)) return p;
  }
  throw new Error('nats-server not found on PATH or in /usr/sbin: run scripts/ensure-nats.sh (installs Debian\'s nats-server)');
}

export async function freePort(): Promise<number> {
  return (await freePorts(1))[0]!;
}

/**
 * `n` distinct free loopback ports. They are held open together until all are known: asked for one at a time, a
 * port just released can be handed out again (a cluster node once got the same port as client and route port, could
 * not start, and the "3-node" cluster ran on two).
 */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () =>
      new Promise<Server>((resolve, reject) => {
        const s = createServer();
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => resolve(s));
      }),
    ),
  );
  const ports = servers.map((s) => {
    const a = s.address();
    return typeof a === 'object' && a !== null ? a.port : 0;
  });
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const listening = (): Promise<boolean> =>
    new Promise<boolean>((resolve) => {
      const c = tcpConnect(port, '127.0.0.1');
      c.once('connect', () => { c.destroy(); resolve(true); });
      c.once('error', () => resolve(false));
    });
  await waitUntil(`nats-server to listen on ${port}`, listening, { timeoutMs });
}

export interface NatsServerOptions {
  /** Extra nats-server configuration text (authorization, tls, cluster…). */
  config?: string;
  port?: number;
}

export class NatsServer {
  readonly port: number;
  readonly storeDir: string;
  readonly #config: string | undefined;
  #proc: ChildProcess | undefined;
  readonly #dir: string;

  private constructor(port: number, dir: string, config: string | undefined) {
    this.port = port;
    this.#dir = dir;
    this.storeDir = join(dir, 'store');
    this.#config = config;
  }

  static async start(opts: NatsServerOptions = {}): Promise<NatsServer> {
    const dir = mkdtempSync(join(tmpdir(), 'jetbatch-nats-'));
    const server = new NatsServer(opts.port ?? (await freePort()), dir, opts.config);
    await server.restart();
    return server;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** The server process's pid while it runs (the benchmark reads its CPU time). */
  get pid(): number | undefined {
    return this.#proc?.pid;
  }

  async restart(): Promise<void> {
    if (this.#proc !== undefined) throw new Error('already running');
    const conf = join(this.#dir, 'nats.conf');
    writeFileSync(
      conf,
      `listen: 127.0.0.1:${this.port}\njetstream { store_dir: "${this.storeDir}" }\n${this.#config ?? ''}\n`,
    );
    const proc = spawn(natsServerBinary(), ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.#proc = proc;
    // Its own word that it is up, not just something listening on the port (which may have been taken meanwhile).
    let log = '';
    proc.stderr?.on('data', (d: Buffer) => {
      if (log.length < 64_000) log += d.toString();
    });
    await waitUntil(`nats-server on port ${this.port} to be ready`, () => {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        this.#proc = undefined;
        throw new Error(`nats-server on port ${this.port} exited at start (${proc.exitCode ?? proc.signalCode}):\n${log.trim()}`);
      }
      return log.includes('Server is ready');
    }, { timeoutMs: 10_000, detail: () => log.trim().slice(-1000) });
    await waitForPort(this.port, 10_000);
  }

  /** Stops the server (SIGKILL by default, to simulate a crash). */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = this.#proc;
    if (p === undefined) return;
    this.#proc = undefined;
    // Already gone (by an exit code or a signal): its 'exit' has fired and will not fire again.
    if (p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill(signal);
    });
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
