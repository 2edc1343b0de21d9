/**
 * Credentials in NATS server URLs: `nats://user:pass@host:4222` and `nats://token@host:4222`, the convention of the
 * `nats` CLI and nats.go. NATS.js v3 drops the userinfo of a server URL (its `hostPort()` keeps host and port only,
 * and reads `user:1234@host` as port 1234), so jetbatch takes the credentials out itself, hands the library bare
 * URLs, and shows URLs only redacted.
 */
import { ErrorCodes, JetbatchError } from '../errors.js';

/** Credentials found in a server URL, percent-decoded. */
export type UrlCredentials = { kind: 'user'; user: string; pass: string } | { kind: 'token'; token: string };

export interface ServerList {
  /** The URLs without their userinfo, in the order given. */
  servers: string[];
  /** The one set of credentials the URLs carry, if any. */
  credentials?: UrlCredentials;
}

interface SplitUrl {
  /** Scheme with `://`, or '' for a bare `host:port`. */
  scheme: string;
  /** Raw (still percent-encoded) userinfo without the `@`, or undefined when there is none. */
  userinfo?: string;
  /** Everything after the userinfo. */
  rest: string;
}

function split(url: string): SplitUrl {
  const trimmed = url.trim();
  const m = /^([a-z][a-z0-9+.-]*:\/\/)?(.*)$/is.exec(trimmed);
  const scheme = m?.[1] ?? '';
  const afterScheme = m?.[2] ?? trimmed;
  // The authority ends at the first '/', '?' or '#'; the userinfo ends at its last '@' (as WHATWG URL does, so an
  // unencoded '@' in a password still parses).
  const end = afterScheme.search(/[/?#]/);
  const authority = end === -1 ? afterScheme : afterScheme.slice(0, end);
  const at = authority.lastIndexOf('@');
  if (at === -1) return { scheme, rest: afterScheme };
  return { scheme, userinfo: afterScheme.slice(0, at), rest: afterScheme.slice(at + 1) };
}

function decode(part: string, index: number): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new JetbatchError(ErrorCodes.INVALID_CONFIG, `server URL #${index + 1}: the credentials are not valid percent-encoding (encode reserved characters such as % / @ : as %25 %2F %40 %3A)`);
  }
}

function credentialsOf(userinfo: string, index: number): UrlCredentials | undefined {
  if (userinfo === '') return undefined;
  const colon = userinfo.indexOf(':');
  // As in nats.go: userinfo without a password is a token.
  if (colon === -1) return { kind: 'token', token: decode(userinfo, index) };
  return { kind: 'user', user: decode(userinfo.slice(0, colon), index), pass: decode(userinfo.slice(colon + 1), index) };
}

function same(a: UrlCredentials, b: UrlCredentials): boolean {
  if (a.kind === 'token') return b.kind === 'token' && a.token === b.token;
  return b.kind === 'user' && a.user === b.user && a.pass === b.pass;
}

/**
 * Splits server URLs into bare URLs and the credentials they carry. URLs without credentials share those of the
 * others (one connection authenticates once, whichever server it reaches). Two URLs with different credentials are
 * refused with JB_INVALID_CONFIG: which set would be used would depend on the server picked.
 */
export function parseServerUrls(urls: readonly string[]): ServerList {
  let credentials: UrlCredentials | undefined;
  let first = -1;
  const servers = urls.map((url, i) => {
    const s = split(url);
    if (s.userinfo === undefined) return url;
    const c = credentialsOf(s.userinfo, i);
    if (c !== undefined) {
      if (credentials === undefined) {
        credentials = c;
        first = i;
      } else if (!same(credentials, c)) {
        throw new JetbatchError(
          ErrorCodes.INVALID_CONFIG,
          `server URLs #${first + 1} (${redactUrl(urls[first] ?? '')}) and #${i + 1} (${redactUrl(url)}) carry different credentials: give the same credentials in every URL, or none in the URLs and user/pass or token as options`,
        );
      }
    }
    return s.scheme + s.rest;
  });
  return credentials === undefined ? { servers } : { servers, credentials };
}

/** A server URL fit to print: `nats://user:***@host:4222`, `nats://***@host:4222` (a token), others unchanged. */
export function redactUrl(url: string): string {
  const s = split(url);
  if (s.userinfo === undefined) return url;
  if (s.userinfo === '') return s.scheme + s.rest;
  const colon = s.userinfo.indexOf(':');
  return `${s.scheme}${colon === -1 ? '***' : `${s.userinfo.slice(0, colon)}:***`}@${s.rest}`;
}
