/**
 * `obj://BUCKET/key` store: the NATS Object Store on the fleet's own connection. The bucket is the URL's first
 * segment, the object name is the rest (names may hold `/`; a "directory" is just a shared name prefix).
 *
 * - A write creates the bucket when it is missing, with the library's defaults (file storage, one replica, no
 *   limits); create it beforehand (`nats object add BUCKET --replicas 3`) for anything else. A put replaces the
 *   whole object: its chunks are written first and the new metadata last, and a reader checks the SHA-256 digest,
 *   so a reader never takes half an object for a whole one.
 * - A listing or read of a missing bucket is JB_STORE_NOT_FOUND (it is not created by reading).
 * - The listing reads every object's metadata of the bucket (one message each) and sorts it in memory: fine for
 *   hundreds of thousands of objects, not for billions.
 * - Object names must be printable ASCII (JB_INVALID_STORE_URL otherwise): the library cannot encode others the
 *   way other NATS clients do.
 * - Reading an object: the library delivers its chunks as fast as the server sends them, without waiting for the
 *   reader, so a slow reader of a very large object holds much of it in memory. Objects of up to a few hundred MB
 *   are the intended use; keep larger datasets in S3 or on a filesystem.
 */
import type { JetStreamClient } from '@nats-io/jetstream';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { Readable } from 'node:stream';
import { ErrorCodes, JetbatchError } from '../errors.js';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { compareKeys, keyFilter } from './listing.js';
import type { ListOptions, Store, StoredObject } from './store.js';
import { notAnObject, storeFailed, storeNotFound } from './store-errors.js';
import { formatStoreUrl, parseStoreUrl, withSlash } from './url.js';

interface ObjLocation {
  readonly bucket: string;
  readonly key: string;
}

function locate(url: string): ObjLocation {
  const loc = parseStoreUrl(url);
  if (loc.scheme !== 'obj') throw storeFailed(url, 'use', new Error('not an obj:// URL'));
  // @nats-io/obj turns a name into its subject with btoa(): characters above U+00FF throw, and U+0080-U+00FF would be
  // encoded as Latin-1 where other NATS clients use UTF-8. So only ASCII names, refused clearly.
  if (!/^[\x20-\x7e]*$/.test(loc.key)) {
    throw new JetbatchError(ErrorCodes.INVALID_STORE_URL, `bad store URL "${url}": object store names may hold only printable ASCII characters`);
  }
  return loc;
}

function isBucketMissing(err: unknown): boolean {
  return err instanceof Error && /object store not found|stream not found/i.test(err.message);
}

export class ObjStore implements Store {
  readonly scheme = 'obj' as const;
  readonly #objm: Objm;
  /** Opened buckets; a failed open is not remembered (the bucket may be created later). */
  readonly #buckets = new Map<string, Promise<ObjectStore>>();

  constructor(js: JetStreamClient) {
    this.#objm = new Objm(js);
  }

  async *list(rootUrl: string, options: ListOptions = {}): AsyncIterable<StoredObject> {
    const { bucket, key } = locate(rootUrl);
    const keep = keyFilter(options);
    const os = await this.#bucket(bucket, rootUrl, false);
    let infos;
    try {
      if (key !== '' && !key.endsWith('/')) {
        // A root naming one object lists that object; globs see the last segment of its name.
        const one = await os.info(key);
        if (one !== null && !one.deleted) {
          if (keep(key.slice(key.lastIndexOf('/') + 1))) yield { url: objUrl(bucket, key), size: one.size };
          return;
        }
      }
      infos = await os.list();
    } catch (err) {
      throw storeFailed(rootUrl, 'list', err);
    }
    const prefix = withSlash(key);
    const found: { name: string; size: number }[] = [];
    for (const info of infos) {
      if (info.deleted || !info.name.startsWith(prefix) || info.name === prefix) continue;
      if (keep(info.name.slice(prefix.length))) found.push({ name: info.name, size: info.size });
    }
    found.sort((a, b) => compareKeys(a.name, b.name));
    for (const { name, size } of found) yield { url: objUrl(bucket, name), size };
  }

  async open(url: string): Promise<Readable> {
    const { bucket, key } = locate(url);
    if (key === '' || key.endsWith('/')) throw notAnObject(url);
    const os = await this.#bucket(bucket, url, false);
    let result;
    try {
      result = await os.get(key);
    } catch (err) {
      throw storeFailed(url, 'open', err);
    }
    if (result === null) throw storeNotFound(url, `no object "${key}" in object store bucket ${bucket}`);
    // The same failure also errors the data stream, where the reader sees it; this promise must not go unhandled.
    result.error.catch(() => undefined);
    return Readable.fromWeb(result.data as NodeReadableStream<Uint8Array>);
  }

  async write(url: string, data: Uint8Array | Readable): Promise<void> {
    const { bucket, key } = locate(url);
    if (key === '' || key.endsWith('/')) throw notAnObject(url);
    const os = await this.#bucket(bucket, url, true);
    const body =
      data instanceof Readable
        ? (Readable.toWeb(data) as unknown as ReadableStream<Uint8Array>)
        : new ReadableStream<Uint8Array>({
            start(c) {
              if (data.byteLength > 0) c.enqueue(data);
              c.close();
            },
          });
    try {
      await os.put({ name: key }, body);
    } catch (err) {
      throw storeFailed(url, 'write', err);
    }
  }

  /** The connection is the caller's: nothing to release. */
  async close(): Promise<void> {}

  #bucket(bucket: string, url: string, create: boolean): Promise<ObjectStore> {
    const known = this.#buckets.get(bucket);
    if (known !== undefined) return known;
    const opening = (async () => {
      try {
        return await this.#objm.open(bucket);
      } catch (err) {
        if (!isBucketMissing(err)) throw storeFailed(url, 'open the bucket of', err);
        if (!create) throw storeNotFound(url, `no object store bucket ${bucket}`, err);
      }
      try {
        return await this.#objm.create(bucket);
      } catch (err) {
        throw storeFailed(url, 'create the bucket of', err);
      }
    })();
    this.#buckets.set(bucket, opening);
    opening.catch(() => this.#buckets.delete(bucket));
    return opening;
  }
}

function objUrl(bucket: string, name: string): string {
  return formatStoreUrl({ scheme: 'obj', bucket, key: name });
}
