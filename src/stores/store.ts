/**
 * Stored data: the three kinds of store a job can read its input from and write its output to, named by URL.
 *
 * - `file:///abs/path/` — a filesystem every daemon mounts at the same path.
 * - `obj://BUCKET/prefix` — the NATS Object Store on the fleet's own NATS server.
 * - `s3://bucket/prefix` — S3 or an S3-compatible store (MinIO, …): endpoint, region and credentials from the usual
 *   AWS environment variables, or from the daemon config's `s3` section.
 *
 * A URL names an object (`…/part-0.jsonl`) or, ending in `/` or used as a listing root, a prefix. Listing is
 * recursive and in a stable order (byte order of the keys), so two daemons listing the same store see the same
 * sequence: the fleet-side enqueuer relies on that to resume without duplicates.
 */
import type { Readable } from 'node:stream';

export type StoreScheme = 'file' | 'obj' | 's3';

/** One stored object found by a listing. */
export interface StoredObject {
  /** Full URL of the object, in the same scheme as the listing root. */
  readonly url: string;
  /** Size in bytes, when the store tells it. */
  readonly size: number | null;
}

export interface ListOptions {
  /** Globs (picomatch syntax) matched against the key relative to the listing root; none = everything. */
  readonly includes?: readonly string[];
  /** Globs excluded after includes. */
  readonly excludes?: readonly string[];
}

/** A store reachable from this process. Every method throws JetbatchError with a stable code. */
export interface Store {
  readonly scheme: StoreScheme;
  /** Every object under `rootUrl` (recursive), filtered by the globs, in byte order of the key. */
  list(rootUrl: string, options?: ListOptions): AsyncIterable<StoredObject>;
  /** A stream of the object's bytes (JB_STORE_NOT_FOUND if missing). */
  open(url: string): Promise<Readable>;
  /** Writes (replaces) the object at `url` with `data`. Whole objects only: a reader never sees half of one. */
  write(url: string, data: Uint8Array | Readable): Promise<void>;
}
