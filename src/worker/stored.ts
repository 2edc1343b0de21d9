/**
 * `ctx.open(url)` in a worker thread: a stream of a stored object's bytes, for any of the three store schemes. The
 * thread keeps one store per scheme, opened on first use; `obj://` needs NATS, so the first `obj://` read opens the
 * thread's own connection (with the daemon's connection settings, as `ctx.client()` does). That connection does not
 * reconnect (a batch fails fast rather than hang): once it closes (a NATS restart, a network cut), the connection and
 * its store are dropped, and the next `obj://` read connects again.
 */
import type { Readable } from 'node:stream';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectNats, type NatsOptions } from '../fleet/connect.js';
import { storeFor, type OpenStore, type S3Settings } from '../stores/index.js';
import { ObjStore } from '../stores/obj-store.js';
import { parseStoreUrl } from '../stores/url.js';

export class StoredObjects {
  readonly #nats: NatsOptions;
  readonly #s3: S3Settings;
  readonly #name: string;
  readonly #stores = new Map<string, Promise<OpenStore>>();
  /** The obj:// connection while it is open. */
  #nc: NatsConnection | undefined;

  constructor(nats: NatsOptions, s3: S3Settings, name: string) {
    this.#nats = nats;
    this.#s3 = s3;
    this.#name = name;
  }

  /** The object's bytes (JB_STORE_NOT_FOUND, JB_STORE_FAILED, JB_INVALID_STORE_URL as the store says). */
  async open(url: string): Promise<Readable> {
    const scheme = parseStoreUrl(url).scheme;
    let store = this.#stores.get(scheme);
    if (store === undefined) {
      const opened = scheme === 'obj' ? this.#objStore() : storeFor(url, { s3: this.#s3 });
      store = opened;
      this.#stores.set(scheme, opened);
      // A failed open (no NATS, S3 misconfigured) is not kept: the next call tries again.
      opened.catch(() => this.#forget(scheme, opened));
    }
    return (await store).open(url);
  }

  /** Releases the stores and the obj:// connection (a later open starts over). */
  async close(): Promise<void> {
    const stores = [...this.#stores.values()];
    this.#stores.clear();
    await Promise.allSettled(stores.map(async (s) => (await s).close()));
    const nc = this.#nc;
    this.#nc = undefined;
    await nc?.close().catch(() => undefined);
  }

  /** Drops the store `scheme` if it is still `store` (not one opened since). */
  #forget(scheme: string, store: Promise<OpenStore>): void {
    if (this.#stores.get(scheme) === store) this.#stores.delete(scheme);
  }

  #objStore(): Promise<OpenStore> {
    const opened: Promise<OpenStore> = (async () => {
      // Failing fast, as ctx.client() does: the batch fails (and is retried) rather than hang.
      const nc = await connectNats({ ...this.#nats, name: this.#name }, { reconnectForever: false });
      this.#nc = nc;
      // closed() resolves (never rejects) once the connection is gone for good.
      void nc.closed().then(() => {
        this.#forget('obj', opened);
        if (this.#nc === nc) this.#nc = undefined;
      });
      return new ObjStore(jetstream(nc));
    })();
    return opened;
  }
}
