/**
 * Store URLs: parsing, validation and joining a listing root with a relative key.
 *
 * - `file:///abs/path` — percent-encoded as RFC 8089 says (`pathToFileURL`); the host must be empty or `localhost`.
 * - `obj://BUCKET/key` and `s3://bucket/key` — the key is taken verbatim (no percent-decoding, as the AWS CLI
 *   does), so every object name a store can hold has exactly one URL.
 *
 * A URL ending in `/` names a prefix (a directory); otherwise it names an object, or a prefix when used as a
 * listing root. `.` and `..` segments are refused everywhere: a key never escapes its root.
 */
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ErrorCodes, JetbatchError } from '../errors.js';
import type { StoreScheme } from './store.js';

export type StoreUrl =
  | {
      readonly scheme: 'file';
      /** Absolute filesystem path, decoded; ends in `/` when the URL does. */
      readonly path: string;
    }
  | {
      readonly scheme: 'obj' | 's3';
      readonly bucket: string;
      /** The object key or prefix after `bucket/`, verbatim; `''` for the whole bucket. */
      readonly key: string;
    };

// NATS stream names allow these (the object store's bucket is a stream `OBJ_<bucket>`).
const OBJ_BUCKET = /^[A-Za-z0-9_-]+$/;
// S3's rules for new buckets (3-63 lowercase letters, digits, dots, hyphens; letter or digit at both ends).
const S3_BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

function invalid(url: string, why: string): JetbatchError {
  return new JetbatchError(ErrorCodes.INVALID_STORE_URL, `bad store URL "${url}": ${why}`, {
    details: ['expected file:///absolute/path, obj://BUCKET/key or s3://bucket/key (a trailing / names a prefix)'],
  });
}

function hasDotSegment(path: string): boolean {
  return path.split('/').some((s) => s === '.' || s === '..');
}

/** Parses and validates a store URL (JB_INVALID_STORE_URL when it is not one). */
export function parseStoreUrl(url: string): StoreUrl {
  const m = /^([a-z0-9]+):\/\/(.*)$/is.exec(url);
  if (m === null) throw invalid(url, 'no scheme:// at the start');
  const scheme = m[1]!.toLowerCase();
  const rest = m[2]!;
  if (scheme === 'file') return { scheme: 'file', path: parseFilePath(url, rest) };
  if (scheme !== 'obj' && scheme !== 's3') throw invalid(url, `unknown scheme "${scheme}"`);
  const slash = rest.indexOf('/');
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  const key = slash < 0 ? '' : rest.slice(slash + 1);
  if (bucket === '') throw invalid(url, 'no bucket name');
  if (scheme === 'obj' && !OBJ_BUCKET.test(bucket)) throw invalid(url, `object store bucket "${bucket}" may hold only letters, digits, _ and -`);
  if (scheme === 's3' && !S3_BUCKET.test(bucket)) throw invalid(url, `S3 bucket "${bucket}" must be 3-63 lowercase letters, digits, dots or hyphens`);
  if (key.startsWith('/')) throw invalid(url, 'the key starts with / (two slashes after the bucket)');
  if (hasDotSegment(key)) throw invalid(url, 'a . or .. segment in the key');
  if (key.includes('\0')) throw invalid(url, 'a NUL character in the key');
  return { scheme, bucket, key };
}

function parseFilePath(url: string, rest: string): string {
  if (!rest.startsWith('/') && !rest.toLowerCase().startsWith('localhost/')) {
    throw invalid(url, 'a file URL needs an absolute path and no host: file:///data/in/');
  }
  // Checked on the raw text: WHATWG URL parsing would silently resolve `..` away.
  if (hasDotSegment(rest.replace(/^localhost/i, '')) || /%2e%2e|%2f/i.test(rest)) throw invalid(url, 'a . or .. segment (or an encoded / or ..) in the path');
  if (/[?#]/.test(rest)) throw invalid(url, 'a query or fragment (? or #; write them as %3F and %23)');
  let path: string;
  try {
    path = fileURLToPath(new URL(`file://${rest}`));
  } catch (err) {
    throw invalid(url, (err as Error).message);
  }
  if (path.includes('\0')) throw invalid(url, 'a NUL character in the path');
  return rest.endsWith('/') && !path.endsWith('/') ? `${path}/` : path;
}

/** The URL of a parsed store location (normalized: `file:` percent-encoded, bucket as given). */
export function formatStoreUrl(loc: StoreUrl): string {
  if (loc.scheme === 'file') {
    const href = pathToFileURL(loc.path).href;
    return loc.path.endsWith('/') && !href.endsWith('/') ? `${href}/` : href;
  }
  return `${loc.scheme}://${loc.bucket}/${loc.key}`;
}

/** The scheme of a URL, validated (JB_INVALID_STORE_URL). */
export function schemeOf(url: string): StoreScheme {
  return parseStoreUrl(url).scheme;
}

/**
 * The location of `relativeKey` (slash-separated, no leading `/`, no `.`/`..`) under the prefix `root`.
 * The root is a prefix whether or not it ends in `/`: `joinStoreUrl('s3://b/out', 'part-0.jsonl')` is
 * `s3://b/out/part-0.jsonl`.
 */
export function joinStoreUrl(root: string | StoreUrl, relativeKey: string): string {
  const loc = typeof root === 'string' ? parseStoreUrl(root) : root;
  const shown = typeof root === 'string' ? root : formatStoreUrl(root);
  if (relativeKey === '' || relativeKey.startsWith('/') || hasDotSegment(relativeKey) || relativeKey.includes('\0')) {
    throw invalid(`${shown} + ${relativeKey}`, 'a relative key must be non-empty, not start with / and hold no . or .. segment');
  }
  if (loc.scheme === 'file') return formatStoreUrl({ scheme: 'file', path: withSlash(loc.path) + relativeKey });
  return formatStoreUrl({ scheme: loc.scheme, bucket: loc.bucket, key: withSlash(loc.key) + relativeKey });
}

/** `p` as a prefix: with a trailing `/`, except the empty prefix (a whole bucket). */
export function withSlash(p: string): string {
  return p === '' || p.endsWith('/') ? p : `${p}/`;
}
