/** One place that turns connection options (daemon config or CLI flags) into a NATS connection. */
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { checkServerIdentity } from 'node:tls';
import { connect, credsAuthenticator, nkeyAuthenticator, type NatsConnection, type ConnectionOptions } from '@nats-io/transport-node';
import { ErrorCodes, JetbatchError } from '../errors.js';
import { parseServerUrls, redactUrl } from './server-url.js';
import { receiveIntoExactBuffers } from './exact-buffers.js';

export interface NatsOptions {
  /**
   * Server URLs. They may carry credentials (`nats://user:pass@host:4222`, `nats://token@host:4222`,
   * percent-encoded), used when none of `user`, `pass` and `token` is given; different credentials in two URLs are
   * refused (JB_INVALID_CONFIG).
   */
  servers: string[];
  /** User name; with `pass` (or `token`), replaces any credentials in the server URLs. */
  user?: string;
  pass?: string;
  token?: string;
  /** Path to a file holding an NKey seed (`SU…`). */
  nkey_seed_file?: string;
  /** Path to a `.creds` file (JWT + seed). */
  creds_file?: string;
  tls?: { ca?: string; cert?: string; key?: string };
  /** Connection name shown by the server. */
  name?: string;
}

export interface ConnectBehaviour {
  /** Keep reconnecting forever (daemon) or give up after the first failure (CLI). */
  reconnectForever: boolean;
  /** How long the first connection attempt may take, in milliseconds. */
  timeoutMs?: number;
}

export async function connectNats(options: NatsOptions, behaviour: ConnectBehaviour): Promise<NatsConnection> {
  // NATS.js ignores userinfo in server URLs: take it out here, and hand the library bare URLs.
  const { servers, credentials } = parseServerUrls(options.servers);
  const opts: ConnectionOptions = {
    servers,
    name: options.name ?? 'jetbatch',
    timeout: behaviour.timeoutMs ?? 5000,
    maxReconnectAttempts: behaviour.reconnectForever ? -1 : 0,
    reconnectTimeWait: 1000,
    reconnectJitter: 500,
    waitOnFirstConnect: false,
    pingInterval: 10_000,
  };
  if (options.user !== undefined) opts.user = options.user;
  if (options.pass !== undefined) opts.pass = options.pass;
  if (options.token !== undefined) opts.token = options.token;
  // Explicit options win as a whole: a `--user/--password` or `--token` overrides a NATS_URL that carries
  // credentials (no mixing of a URL's user with an option's password).
  const explicit = options.user !== undefined || options.pass !== undefined || options.token !== undefined;
  if (credentials !== undefined && !explicit) {
    if (credentials.kind === 'token') opts.token = credentials.token;
    else {
      opts.user = credentials.user;
      opts.pass = credentials.pass;
    }
  }
  const enc = new TextEncoder();
  if (options.creds_file !== undefined) {
    opts.authenticator = credsAuthenticator(enc.encode(await readSecret(options.creds_file, 'creds_file')));
  } else if (options.nkey_seed_file !== undefined) {
    const seed = (await readSecret(options.nkey_seed_file, 'nkey_seed_file')).trim();
    opts.authenticator = nkeyAuthenticator(enc.encode(seed));
  }
  if (options.tls !== undefined) {
    const tls: NonNullable<ConnectionOptions['tls']> & { checkServerIdentity?: typeof checkServerIdentity } = {};
    // The NATS client sends no server name when a server is given by IP address, so Node would check the
    // certificate against "localhost" (nats.js#303). Accept a certificate valid for one of the configured IPs.
    const ips = servers.map(hostOf).filter((h) => isIP(h) !== 0);
    if (ips.length > 0) {
      tls.checkServerIdentity = (host, cert) => {
        const direct = checkServerIdentity(host, cert);
        if (direct === undefined || ips.some((ip) => checkServerIdentity(ip, cert) === undefined)) return undefined;
        return direct;
      };
    }
    if (options.tls.ca !== undefined) tls.caFile = options.tls.ca;
    if (options.tls.cert !== undefined) tls.certFile = options.tls.cert;
    if (options.tls.key !== undefined) tls.keyFile = options.tls.key;
    opts.tls = tls;
  }
  let nc: NatsConnection;
  try {
    nc = await connect(opts);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new JetbatchError(
      ErrorCodes.CONNECTION_FAILED,
      `cannot connect to NATS at ${options.servers.map(redactUrl).join(', ')}: ${reason}`,
      { cause: err },
    );
  }
  receiveIntoExactBuffers(nc);
  return nc;
}

async function readSecret(path: string, key: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new JetbatchError(ErrorCodes.INVALID_CONFIG, `${key}: cannot read ${path}`, { cause: err });
  }
}

function hostOf(server: string): string {
  const withScheme = /^[a-z]+:\/\//i.test(server) ? server : `nats://${server}`;
  try {
    return new URL(withScheme).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return '';
  }
}
