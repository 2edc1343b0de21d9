/**
 * The store layer's public surface: `storeFor(url, deps)` gives the Store that speaks a URL's scheme, plus URL
 * helpers. Each scheme's implementation is loaded on first use (the S3 SDK is large; a CLI command that never
 * touches S3 does not pay for it).
 */
import type { JetStreamClient } from '@nats-io/jetstream';
import { ErrorCodes, JetbatchError } from '../errors.js';
import type { S3Settings } from './s3-config.js';
import type { Store } from './store.js';
import { parseStoreUrl } from './url.js';
import { lazyImport } from '../util/lazy-import.js';

export type { ListOptions, Store, StoredObject, StoreScheme } from './store.js';
export { formatStoreUrl, joinStoreUrl, parseStoreUrl, type StoreUrl } from './url.js';
export type { S3Settings } from './s3-config.js';

/** What a store needs from its process; pass what you have (a missing one fails only the scheme needing it). */
export interface StoreDeps {
  /** The fleet's JetStream client (`FleetContext.js`): needed by `obj://`. */
  readonly js?: JetStreamClient;
  /** The daemon config's `s3` section (`DaemonOptions.s3`); AWS environment variables fill what it leaves unset. */
  readonly s3?: S3Settings;
}

/** A Store that may hold clients (sockets) to release. */
export interface OpenStore extends Store {
  /** Releases the store's clients; idempotent and time-bounded. Does not close a NATS connection it was given. */
  close(): Promise<void>;
}

/** The store for `url`'s scheme (JB_INVALID_STORE_URL for a bad URL). Call `close()` when done with it. */
export async function storeFor(url: string, deps: StoreDeps = {}): Promise<OpenStore> {
  const loc = parseStoreUrl(url);
  switch (loc.scheme) {
    case 'file': {
      const { FileStore } = await lazyImport<typeof import('./file-store.js')>(new URL('./file-store.js', import.meta.url));
      return new FileStore();
    }
    case 'obj': {
      if (deps.js === undefined) {
        throw new JetbatchError(ErrorCodes.STORE_FAILED, `${url}: obj:// needs a NATS connection (StoreDeps.js), and none was given`);
      }
      const { ObjStore } = await lazyImport<typeof import('./obj-store.js')>(new URL('./obj-store.js', import.meta.url));
      return new ObjStore(deps.js);
    }
    case 's3': {
      const { S3Store } = await lazyImport<typeof import('./s3-store.js')>(new URL('./s3-store.js', import.meta.url));
      return new S3Store(deps.s3);
    }
  }
}
