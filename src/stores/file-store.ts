/**
 * `file://` store: a directory tree every daemon mounts at the same path.
 *
 * Writes are atomic: the bytes go to a temp file in the target's directory (`.jetbatch-tmp-…`, fsynced), which is
 * then renamed over the target, so a reader sees the old object or the new one, never half of one. Listings skip
 * such temp files. Symbolic links are followed (a directory link that loops back to an ancestor is skipped);
 * entries that are neither files nor directories (sockets, FIFOs) are not listed.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream, type Stats } from 'node:fs';
import { mkdir, open, readdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { compareKeys, keyFilter } from './listing.js';
import type { ListOptions, Store, StoredObject } from './store.js';
import { notAnObject, storeFailed, storeNotFound } from './store-errors.js';
import { formatStoreUrl, parseStoreUrl, withSlash } from './url.js';

/** Names of in-progress writes; never listed. */
const TEMP_PREFIX = '.jetbatch-tmp-';

function errno(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

const MISSING = new Set(['ENOENT', 'ENOTDIR']);

function filePathOf(url: string): string {
  const loc = parseStoreUrl(url);
  if (loc.scheme !== 'file') throw storeFailed(url, 'use', new Error('not a file:// URL'));
  return loc.path;
}

function fileUrl(path: string): string {
  return formatStoreUrl({ scheme: 'file', path });
}

export class FileStore implements Store {
  readonly scheme = 'file' as const;

  async *list(rootUrl: string, options: ListOptions = {}): AsyncIterable<StoredObject> {
    const root = filePathOf(rootUrl);
    const keep = keyFilter(options);
    let st: Stats;
    try {
      st = await stat(root);
    } catch (err) {
      if (MISSING.has(errno(err) ?? '')) throw storeNotFound(rootUrl, 'no such file or directory', err);
      throw storeFailed(rootUrl, 'list', err);
    }
    if (st.isFile() && !root.endsWith('/')) {
      // A root naming one file lists that file; globs see its name.
      if (keep(basename(root))) yield { url: fileUrl(root), size: st.size };
      return;
    }
    if (!st.isDirectory()) throw storeNotFound(rootUrl, 'not a directory');
    yield* walk(withSlash(root), '', keep, [`${st.dev}:${st.ino}`], rootUrl);
  }

  async open(url: string): Promise<Readable> {
    const path = filePathOf(url);
    if (path.endsWith('/')) throw notAnObject(url);
    let fh;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      if (MISSING.has(errno(err) ?? '')) throw storeNotFound(url, 'no such file', err);
      throw storeFailed(url, 'open', err);
    }
    try {
      if (!(await fh.stat()).isFile()) throw storeNotFound(url, 'not a file');
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw storeFailed(url, 'open', err);
    }
    return fh.createReadStream();
  }

  async write(url: string, data: Uint8Array | Readable): Promise<void> {
    const path = filePathOf(url);
    if (path.endsWith('/')) throw notAnObject(url);
    const dir = dirname(path);
    const temp = `${dir}/${TEMP_PREFIX}${randomBytes(8).toString('hex')}`;
    try {
      await mkdir(dir, { recursive: true });
      // `flush`: fsync before close, so the rename never publishes a name whose bytes are not on disk yet.
      if (data instanceof Readable) await pipeline(data, createWriteStream(temp, { flags: 'wx', mode: 0o644, flush: true }));
      else await writeFile(temp, data, { flag: 'wx', mode: 0o644, flush: true });
      await rename(temp, path);
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      throw storeFailed(url, 'write', err);
    }
  }

  async close(): Promise<void> {}
}

/**
 * Checks that the folder `prefixUrl` exists (JB_STORE_NOT_FOUND naming it if not), then creates the folder `name`
 * directly under it (if missing). Unlike a write, which creates every missing folder on its path, this never
 * creates the prefix itself: a volume that is not mounted on this host is an error, not a local folder that looks
 * like it (outputs, fleet/output.ts).
 */
export async function makeFolderUnder(prefixUrl: string, name: string): Promise<void> {
  const prefix = withSlash(filePathOf(prefixUrl));
  let st: Stats;
  try {
    st = await stat(prefix);
  } catch (err) {
    if (MISSING.has(errno(err) ?? '')) throw storeNotFound(prefixUrl, `no such directory ${prefix} on this host (it must exist, e.g. the volume mounted, before anything is written under it)`, err);
    throw storeFailed(prefixUrl, 'use', err);
  }
  if (!st.isDirectory()) throw storeNotFound(prefixUrl, `${prefix} is not a directory`);
  const folder = prefix + name;
  try {
    await mkdir(folder);
  } catch (err) {
    if (errno(err) === 'EEXIST' && (await stat(folder).catch(() => null))?.isDirectory() === true) return;
    throw storeFailed(fileUrl(withSlash(folder)), 'create', err);
  }
}

/**
 * Yields the files under `dir` in byte order of their full relative keys. Sorting each directory's names is not
 * enough by itself ("a-b" < "a/x" < "a0" because '-' < '/' < '0'); sorting each directory by name with `/`
 * appended to subdirectories is, since every key under `a/` shares that prefix and so is contiguous in the global
 * order. That keeps the walk streaming: one directory's entries in memory per level, not the whole tree.
 */
async function* walk(
  dir: string,
  prefix: string,
  keep: (key: string) => boolean,
  ancestors: readonly string[],
  rootUrl: string,
): AsyncGenerator<StoredObject> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if (MISSING.has(errno(err) ?? '')) return; // removed while we listed
    throw storeFailed(rootUrl, 'list', err);
  }
  const entries: { name: string; sortKey: string; st: Stats }[] = [];
  for (const name of names) {
    if (name.startsWith(TEMP_PREFIX)) continue;
    let st: Stats;
    try {
      st = await stat(dir + name); // follows symbolic links
    } catch (err) {
      if (MISSING.has(errno(err) ?? '')) continue; // a dangling link, or removed while we listed
      throw storeFailed(rootUrl, 'list', err);
    }
    if (st.isDirectory()) entries.push({ name, sortKey: `${name}/`, st });
    else if (st.isFile()) entries.push({ name, sortKey: name, st });
  }
  entries.sort((a, b) => compareKeys(a.sortKey, b.sortKey));
  for (const { name, st } of entries) {
    const key = prefix + name;
    if (st.isDirectory()) {
      const id = `${st.dev}:${st.ino}`;
      if (ancestors.includes(id)) continue; // a link back up the tree
      yield* walk(`${dir}${name}/`, `${key}/`, keep, [...ancestors, id], rootUrl);
    } else if (keep(key)) {
      yield { url: fileUrl(dir + name), size: st.size };
    }
  }
}
