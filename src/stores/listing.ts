/** What every store's listing shares: the include/exclude filter and the byte order of keys. */
import picomatch from 'picomatch';
import type { ListOptions } from './store.js';

/**
 * A predicate over keys relative to the listing root. Globs are picomatch globs with two choices made for data
 * directories: a glob without `/` matches the key's last segment at any depth (`*.jsonl` matches
 * `2024/01/a.jsonl`), and `*` matches names starting with a dot. No include = everything; excludes win.
 */
export function keyFilter(options: ListOptions = {}): (relativeKey: string) => boolean {
  const opts = { dot: true, basename: true } as const;
  const includes = options.includes ?? [];
  const excludes = options.excludes ?? [];
  const included = includes.length > 0 ? picomatch([...includes], opts) : () => true;
  const excluded = excludes.length > 0 ? picomatch([...excludes], opts) : () => false;
  return (key) => included(key) && !excluded(key);
}

/**
 * Byte order of the keys' UTF-8 encodings: the order S3 lists in, and the one every store lists in, so two daemons
 * (or a resumed enqueuer) see one sequence. JavaScript's `<` compares UTF-16 units, which differs above U+FFFF.
 */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
