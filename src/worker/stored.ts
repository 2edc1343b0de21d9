/**
 * `ctx.open(url)` in a worker thread: a stream of a stored object's bytes, for any of the three store schemes. The
 * thread keeps one store per scheme, opened on first use; `obj://` needs NATS, so the first `obj://` read opens the
 * thread's own connection (with the daemon's connection settings, as `ctx.client()` does) and keeps it for the
 * thread's life.
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
  #nc: Promise<NatsConnection> | undefined;

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
      store = this.#storeFor(url, scheme);
      this.#stores.set(scheme, store);
      // A failed open (no NATS, S3 misconfigured) is not kept: the next call tries again.
      store.catch(() => this.#stores.delete(scheme));
    }
    return (await store).open(url);
  }

  async #storeFor(url: string, scheme: string): Promise<OpenStore> {
    if (scheme !== 'obj') return storeFor(url, { s3: this.#s3 });
    // Failing fast, as ctx.client() does: the batch fails (and is retried) rather than hang.
    this.#nc ??= connectNats({ ...this.#nats, name: this.#name }, { reconnectForever: false });
    this.#nc.catch(() => (this.#nc = undefined));
    return new ObjStore(jetstream(await this.#nc));
  }
}
