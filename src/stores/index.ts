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

/**
 * Loads a module of this folder on first use. Run from source inside a worker thread, once tsx's tsImport has loaded
 * a handler, Node no longer maps a dynamic import of `./x.js` to `./x.ts` (ERR_MODULE_NOT_FOUND) nor loads a `.ts`
 * (ERR_UNKNOWN_FILE_EXTENSION); the module is then loaded through tsImport, as handlers are (a copy of its own, which
 * only that thread's stores use). From dist/ the plain import always works.
 */
async function lazy<T>(name: string): Promise<T> {
  try {
    return (await import(`./${name}.js`)) as T;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (!import.meta.url.endsWith('.ts') || (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'ERR_UNKNOWN_FILE_EXTENSION')) throw err;
    const { tsImport } = await import('tsx/esm/api');
    return (await tsImport(new URL(`./${name}.ts`, import.meta.url).href, import.meta.url)) as T;
  }
}

/** The store for `url`'s scheme (JB_INVALID_STORE_URL for a bad URL). Call `close()` when done with it. */
export async function storeFor(url: string, deps: StoreDeps = {}): Promise<OpenStore> {
  const loc = parseStoreUrl(url);
  switch (loc.scheme) {
    case 'file': {
      const { FileStore } = await lazy<typeof import('./file-store.js')>('file-store');
      return new FileStore();
    }
    case 'obj': {
      if (deps.js === undefined) {
        throw new JetbatchError(ErrorCodes.STORE_FAILED, `${url}: obj:// needs a NATS connection (StoreDeps.js), and none was given`);
      }
      const { ObjStore } = await lazy<typeof import('./obj-store.js')>('obj-store');
      return new ObjStore(deps.js);
    }
    case 's3': {
      const { S3Store } = await lazy<typeof import('./s3-store.js')>('s3-store');
      return new S3Store(deps.s3);
    }
  }
}
