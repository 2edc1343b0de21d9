/**
 * Who may do what. Reads: anyone on a loopback listener; elsewhere the token (HTTP Basic with the token as the
 * password, which browsers ask for and resend, or Bearer). Stop and replay: always `Authorization: Bearer <token>`.
 * A header a page must set itself, never a cookie or Basic credentials a browser attaches on its own, so a foreign
 * page cannot make a visitor's browser stop a job (a cross-origin request with an Authorization header needs a CORS
 * preflight, which this server never grants).
 *
 * A loopback listener also checks the Host header: a DNS-rebinding page (evil.example resolving to 127.0.0.1) reads
 * with Host: evil.example and is refused.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { UiOptions } from './options.js';

export type Verdict = { ok: true } | { ok: false; status: 401 | 403 | 421; message: string; basic?: boolean };

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

function sameToken(given: string, token: string): boolean {
  return timingSafeEqual(digest(given), digest(token));
}

function bearer(req: IncomingMessage): string | null {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  return m === null ? null : m[1]!;
}

function basicPassword(req: IncomingMessage): string | null {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(req.headers.authorization ?? '');
  if (m === null) return null;
  const text = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  return colon < 0 ? null : text.slice(colon + 1);
}

/** The host name of a Host header, lower case, without the port (`[::1]:80` → `[::1]`). */
function hostName(header: string | undefined): string {
  const h = (header ?? '').trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  const colon = h.lastIndexOf(':');
  return colon < 0 ? h : h.slice(0, colon);
}

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '[::1]']);

export function checkHost(req: IncomingMessage, options: UiOptions): Verdict {
  if (!options.loopback) return { ok: true };
  const name = hostName(req.headers.host);
  if (LOOPBACK_NAMES.has(name) || /^127\.\d+\.\d+\.\d+$/.test(name) || options.allowHosts.includes(name)) return { ok: true };
  return { ok: false, status: 421, message: `Host "${name}" is not served here: this page answers to localhost / 127.0.0.1 (add --allow-host for a reverse proxy that forwards its own Host)` };
}

export function checkRead(req: IncomingMessage, options: UiOptions): Verdict {
  if (options.loopback || options.token === null) return { ok: true };
  const given = bearer(req) ?? basicPassword(req);
  if (given !== null && sameToken(given, options.token)) return { ok: true };
  return { ok: false, status: 401, message: 'this page needs the UI token (as the password; any user name)', basic: true };
}

export function checkMutation(req: IncomingMessage, options: UiOptions): Verdict {
  if (options.token === null) {
    return { ok: false, status: 403, message: 'stop and replay are disabled: start jetbatch ui with --token (or JETBATCH_UI_TOKEN) to enable them' };
  }
  const given = bearer(req);
  if (given === null) return { ok: false, status: 401, message: 'this action needs the UI token: enter it in the token field' };
  if (!sameToken(given, options.token)) return { ok: false, status: 403, message: 'wrong UI token' };
  // Defence in depth: a browser names the page that sent the request; it must be this server.
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== 'null') {
    let originHost = '';
    try {
      originHost = new URL(origin).host.toLowerCase();
    } catch {
      // An unparsable Origin matches nothing.
    }
    const same = originHost !== '' && (originHost === (req.headers.host ?? '').toLowerCase() || options.allowHosts.includes(hostName(originHost)));
    if (!same) return { ok: false, status: 403, message: `cross-origin request from ${origin} refused (a reverse proxy's public name goes in --allow-host)` };
  }
  return { ok: true };
}
