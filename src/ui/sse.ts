/**
 * Server-sent event streams. Each stream recomputes its payload every `intervalMs` (and when woken by a change)
 * and sends it only when it differs from the last one sent; a comment line every 15 s keeps proxies from closing an
 * idle stream. closeAll() ends every stream (on shutdown), so the HTTP server can close.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface StreamSpec {
  /** Event name (`jobs`, `job`). */
  event: string;
  intervalMs: number;
  /** The payload as JSON text, or null for nothing to send. */
  produce: () => Promise<string | null>;
  /** Called when a produce fails; the stream goes on. */
  onError: (err: unknown) => void;
  /** Subscribes `wake` to changes; returns the unsubscribe function. */
  subscribe?: (wake: () => void) => () => void;
}

const KEEPALIVE_MS = 15_000;

export class SseHub {
  readonly #open = new Set<() => void>();
  #closed = false;

  get size(): number {
    return this.#open.size;
  }

  serve(req: IncomingMessage, res: ServerResponse, spec: StreamSpec): void {
    if (this.#closed) {
      res.writeHead(503).end();
      return;
    }
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      // nginx: do not buffer this response (docs/operations.md).
      'X-Accel-Buffering': 'no',
    });
    res.write('retry: 2000\n\n');
    let last = '';
    let timer: NodeJS.Timeout | undefined;
    let running = false;
    let again = false;
    let ended = false;
    let lastWrite = Date.now();
    const end = (): void => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      unsubscribe();
      this.#open.delete(end);
      res.end();
    };
    const tick = async (): Promise<void> => {
      if (ended) return;
      if (running) {
        again = true;
        return;
      }
      running = true;
      clearTimeout(timer);
      try {
        const payload = await spec.produce();
        if (!ended && payload !== null && payload !== last) {
          last = payload;
          res.write(`event: ${spec.event}\ndata: ${payload}\n\n`);
          lastWrite = Date.now();
        } else if (!ended && Date.now() - lastWrite > KEEPALIVE_MS) {
          res.write(': keepalive\n\n');
          lastWrite = Date.now();
        }
      } catch (err) {
        spec.onError(err);
      } finally {
        running = false;
      }
      if (ended) return;
      if (again) {
        again = false;
        void tick();
      } else timer = setTimeout(() => void tick(), spec.intervalMs);
    };
    const unsubscribe = spec.subscribe?.(() => void tick()) ?? ((): void => undefined);
    this.#open.add(end);
    req.on('close', end);
    res.on('error', end);
    void tick();
  }

  /** Ends every stream; later requests get 503. Idempotent. */
  closeAll(): void {
    this.#closed = true;
    for (const end of [...this.#open]) end();
  }
}
