/**
 * Follows a KV bucket: a watch that replays every current entry, then every change; restarted after a second if it
 * fails. stop() is idempotent and waits (at most 5 s) for a watch still being set up, whose timers would otherwise
 * keep the process alive.
 */
import type { KV, KvWatchEntry } from '@nats-io/kv';
import type { Logger } from 'pino';
import { sleep } from './sleep.js';

export class KvFollower {
  readonly #kv: KV;
  readonly #log: Logger;
  readonly #what: string;
  readonly #onEntry: (entry: KvWatchEntry) => void;
  readonly #stop = new AbortController();
  /** The watch, from the moment it is asked for until it ends. */
  #watch: Promise<{ stop(): void }> | undefined;

  /** `what` names the bucket in log lines. */
  constructor(kv: KV, log: Logger, what: string, onEntry: (entry: KvWatchEntry) => void) {
    this.#kv = kv;
    this.#log = log;
    this.#what = what;
    this.#onEntry = onEntry;
  }

  start(): void {
    void this.#loop();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    const watch = this.#watch;
    if (watch === undefined) return;
    const timeout = new AbortController();
    await Promise.race([watch.then((w) => w.stop()).catch(() => undefined), sleep(5000, timeout.signal)]);
    timeout.abort();
  }

  async #loop(): Promise<void> {
    while (!this.#stop.signal.aborted) {
      try {
        const starting = this.#kv.watch();
        this.#watch = starting;
        const watch = await starting;
        if (this.#stop.signal.aborted) return;
        try {
          for await (const entry of watch) {
            if (this.#stop.signal.aborted) break;
            this.#onEntry(entry);
          }
        } finally {
          if (this.#watch === starting) this.#watch = undefined;
        }
      } catch (err) {
        if (this.#stop.signal.aborted) return;
        this.#log.warn({ err }, `${this.#what} watch failed; restarting it`);
        await sleep(1000, this.#stop.signal);
      }
    }
  }
}
