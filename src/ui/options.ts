/**
 * The options of `jetbatch ui`, validated once: where to listen, the token, which Host names a loopback listener
 * answers. Every rule breaks with JB_INVALID_CONFIG (exit code 2 from the CLI).
 */
import { isIP } from 'node:net';
import { ErrorCodes, JetbatchError } from '../errors.js';

export interface UiOptions {
  /** Address to bind: an IPv4/IPv6 address or a host name. */
  host: string;
  /** TCP port; 0 picks a free one. */
  port: number;
  /** Whether `host` is a loopback address (127.0.0.0/8, ::1, localhost). */
  loopback: boolean;
  /**
   * Needed for stop and replay (always, as `Authorization: Bearer`), and for every request when not on loopback.
   * null: read-only page on loopback, stop and replay disabled.
   */
  token: string | null;
  /** Extra Host header names accepted on a loopback listener (a reverse proxy that forwards its own Host). */
  allowHosts: readonly string[];
}

/** Shortest token accepted: it guards stopping jobs, so it must not be guessable. */
export const MIN_TOKEN_LENGTH = 16;

export const DEFAULT_LISTEN = '127.0.0.1:8080';

export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  return isIP(h) === 4 && h.startsWith('127.');
}

/** Splits `host:port`, `[v6]:port` or `:port` (all interfaces). */
export function parseListen(listen: string): { host: string; port: number } {
  const bad = (why: string): JetbatchError => new JetbatchError(ErrorCodes.INVALID_CONFIG, `--listen ${JSON.stringify(listen)}: ${why} (expected host:port, e.g. ${DEFAULT_LISTEN})`);
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(listen.trim());
  if (m === null) throw bad('not host:port');
  const host = m[1] ?? (m[2] === '' ? '0.0.0.0' : m[2]!);
  const port = Number(m[3]);
  if (port > 65535) throw bad('port above 65535');
  if (m[1] !== undefined && isIP(host) !== 6) throw bad('not an IPv6 address in brackets');
  if (m[1] === undefined && !/^[A-Za-z0-9.-]+$/.test(host)) throw bad('not a host name or IPv4 address');
  return { host, port };
}

export interface UiFlags {
  listen?: string;
  token?: string;
  allowHost?: string[];
}

/** Validates the flags; binding beyond loopback without a token is refused. */
export function uiOptions(flags: UiFlags): UiOptions {
  const { host, port } = parseListen(flags.listen ?? DEFAULT_LISTEN);
  const loopback = isLoopbackHost(host);
  const token = flags.token === undefined || flags.token === '' ? null : flags.token;
  if (token !== null && (token.length < MIN_TOKEN_LENGTH || /\s/.test(token))) {
    throw new JetbatchError(ErrorCodes.INVALID_CONFIG, `the UI token must be at least ${MIN_TOKEN_LENGTH} characters without spaces (e.g. \`openssl rand -hex 24\`)`);
  }
  if (!loopback && token === null) {
    throw new JetbatchError(
      ErrorCodes.INVALID_CONFIG,
      `refusing to serve the fleet on ${host} without a token: anyone who reaches that address could read every job and its data. ` +
        'Pass --token (or set JETBATCH_UI_TOKEN), or listen on 127.0.0.1 behind a reverse proxy',
    );
  }
  const allowHosts = (flags.allowHost ?? []).flatMap((h) => h.split(',')).map((h) => h.trim().toLowerCase()).filter(Boolean);
  for (const h of allowHosts) {
    if (!/^[a-z0-9.-]+$|^\[[0-9a-f:.]+\]$/.test(h)) throw new JetbatchError(ErrorCodes.INVALID_CONFIG, `--allow-host ${JSON.stringify(h)} is not a host name`);
  }
  return Object.freeze({ host, port, loopback, token, allowHosts: Object.freeze(allowHosts) });
}
