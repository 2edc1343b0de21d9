/**
 * `s3://bucket/key` store: S3 or an S3-compatible store (MinIO, Ceph RGW, …) through `@aws-sdk/client-s3`,
 * configured by `s3ClientConfig` (daemon config `s3` section, then AWS environment variables).
 *
 * - Listing pages through ListObjectsV2 and sorts the keys in byte order itself before yielding any: S3 and MinIO
 *   list in that order already, but not every S3-compatible store does (s3rver walks its directories), and the
 *   fleet's resumable enqueuing needs one order everywhere. So a listing holds its keys in memory (~150 bytes per
 *   object: fine for millions of objects, not for billions). "Directory marker" objects (keys ending in `/`, made
 *   by consoles) are not listed.
 * - A write of bytes is one PutObject; a write of a stream is a multipart upload (`@aws-sdk/lib-storage`) in parts
 *   of 8 MiB, at most 4 in flight (so at most ~32 MiB buffered, whatever the object's size), or one PutObject when
 *   the stream is shorter than one part. S3 makes the object visible only when the upload completes: a reader
 *   never sees half of it; a failed multipart upload is aborted.
 * - Buckets are never created: a missing bucket is JB_STORE_NOT_FOUND for every call.
 */
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type ListObjectsV2CommandOutput,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { compareKeys, keyFilter } from './listing.js';
import { s3ClientConfig, type S3Settings } from './s3-config.js';
import type { ListOptions, Store, StoredObject } from './store.js';
import { notAnObject, storeFailed, storeNotFound } from './store-errors.js';
import { formatStoreUrl, parseStoreUrl, withSlash } from './url.js';

/** Part size of multipart uploads (S3's minimum is 5 MiB). */
const PART_SIZE = 8 * 1024 * 1024;
/** Parts uploaded at once; PART_SIZE × this bounds the memory a streamed write buffers. */
const PARTS_IN_FLIGHT = 4;

function locate(url: string): { bucket: string; key: string } {
  const loc = parseStoreUrl(url);
  if (loc.scheme !== 's3') throw storeFailed(url, 'use', new Error('not an s3:// URL'));
  return loc;
}

function s3Url(bucket: string, key: string): string {
  return formatStoreUrl({ scheme: 's3', bucket, key });
}

function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
}

function nameOf(err: unknown): string {
  const e = err as { name?: unknown; Code?: unknown } | null;
  return typeof e?.name === 'string' ? e.name : typeof e?.Code === 'string' ? e.Code : '';
}

function isMissing(err: unknown): boolean {
  return ['NoSuchKey', 'NoSuchBucket', 'NotFound'].includes(nameOf(err)) || statusOf(err) === 404;
}

function missing(url: string, bucket: string, err: unknown): never {
  throw nameOf(err) === 'NoSuchBucket' ? storeNotFound(url, `no S3 bucket ${bucket}`, err) : storeNotFound(url, 'no such object', err);
}

export class S3Store implements Store {
  readonly scheme = 's3' as const;
  readonly #client: S3Client;
  #closed = false;

  constructor(settings: S3Settings = {}) {
    this.#client = new S3Client(s3ClientConfig(settings));
  }

  async *list(rootUrl: string, options: ListOptions = {}): AsyncIterable<StoredObject> {
    const { bucket, key } = locate(rootUrl);
    const keep = keyFilter(options);
    if (key !== '' && !key.endsWith('/')) {
      // A root naming one object lists that object; globs see the last segment of its key.
      const size = await this.#sizeIfExists(rootUrl, bucket, key);
      if (size !== undefined) {
        if (keep(key.slice(key.lastIndexOf('/') + 1))) yield { url: s3Url(bucket, key), size };
        return;
      }
    }
    const prefix = withSlash(key);
    const found: { key: string; size: number | null }[] = [];
    let token: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await this.#client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
      } catch (err) {
        if (isMissing(err)) missing(rootUrl, bucket, err);
        throw storeFailed(rootUrl, 'list', err);
      }
      for (const o of page.Contents ?? []) {
        if (o.Key === undefined || o.Key.endsWith('/')) continue;
        if (keep(o.Key.slice(prefix.length))) found.push({ key: o.Key, size: o.Size ?? null });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    found.sort((a, b) => compareKeys(a.key, b.key));
    for (const o of found) yield { url: s3Url(bucket, o.key), size: o.size };
  }

  async open(url: string): Promise<Readable> {
    const { bucket, key } = locate(url);
    if (key === '' || key.endsWith('/')) throw notAnObject(url);
    try {
      const out = await this.#client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      const body = out.Body;
      if (body instanceof Readable) return body;
      if (body !== undefined && 'transformToWebStream' in body) {
        return Readable.fromWeb(body.transformToWebStream() as NodeReadableStream<Uint8Array>);
      }
      throw new Error('GetObject returned no body');
    } catch (err) {
      if (isMissing(err)) missing(url, bucket, err);
      throw storeFailed(url, 'open', err);
    }
  }

  async write(url: string, data: Uint8Array | Readable): Promise<void> {
    const { bucket, key } = locate(url);
    if (key === '' || key.endsWith('/')) throw notAnObject(url);
    try {
      if (data instanceof Readable) {
        const upload = new Upload({
          client: this.#client,
          params: { Bucket: bucket, Key: key, Body: data },
          partSize: PART_SIZE,
          queueSize: PARTS_IN_FLIGHT,
          leavePartsOnError: false,
        });
        await upload.done();
      } else {
        await this.#client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: data, ContentLength: data.byteLength }));
      }
    } catch (err) {
      if (nameOf(err) === 'NoSuchBucket') missing(url, bucket, err);
      throw storeFailed(url, 'write', err);
    }
  }

  /** Closes the client's sockets at once (in-flight calls fail); idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#client.destroy();
  }

  async #sizeIfExists(url: string, bucket: string, key: string): Promise<number | null | undefined> {
    try {
      const head = await this.#client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return head.ContentLength ?? null;
    } catch (err) {
      if (isMissing(err)) return undefined; // not an object: a prefix (or a missing bucket, which the listing reports)
      throw storeFailed(url, 'list', err);
    }
  }
}
