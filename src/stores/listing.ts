/** What every store's listing shares: the include/exclude filter and the byte order of keys. */
import picomatch from 'picomatch';
import type { ListOptions } from './store.js';

/**
 * A predicate over keys relative to the listing root. Globs are picomatch globs with two choices made for data
 * directories: a glob without `/` matches the key's last segment at any depth (`*.jsonl` matches
 * `2024/01/a.jsonl`), and `*` matches names starting with a dot. No include = everything; excludes win.
 */
export function keyFilter(options: ListOptions = {}): (relativeKey: string) => boolean {
  const included = options.includes !== undefined && options.includes.length > 0 ? matcher(options.includes) : () => true;
  const excluded = options.excludes !== undefined && options.excludes.length > 0 ? matcher(options.excludes) : () => false;
  return (key) => included(key) && !excluded(key);
}

/** Globs with a `/` see the whole key, the others its last segment (picomatch's own `basename` option mishandles the first kind). */
function matcher(globs: readonly string[]): (key: string) => boolean {
  const opts = { dot: true } as const;
  const whole = globs.filter((g) => g.includes('/'));
  const last = globs.filter((g) => !g.includes('/'));
  const wholeMatch = whole.length > 0 ? picomatch(whole, opts) : () => false;
  const lastMatch = last.length > 0 ? picomatch(last, opts) : () => false;
  return (key) => wholeMatch(key) || lastMatch(key.slice(key.lastIndexOf('/') + 1));
}

/**
 * Byte order of the keys' UTF-8 encodings: the order S3 lists in, and the one every store lists in, so two daemons
 * (or a resumed enqueuer) see one sequence. JavaScript's `<` compares UTF-16 units, which differs above U+FFFF.
 */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
