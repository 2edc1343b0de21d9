/**
 * Writes the results of a job that has an `output` (fleet/output.ts): one part per batch, whole, before the batch
 * is acked. Only jobs with an output have a writer; the others pay nothing for it.
 */
import { partUrl, resultLine } from '../../fleet/output.js';
import { decodeValue } from '../../fleet/protocol.js';
import { storeFor, type OpenStore, type StoreDeps } from '../../stores/index.js';
import { ErrorCodes, JetbatchError } from '../../errors.js';
import type { BatchIdentity } from './batch-headers.js';

export class OutputWriter {
  readonly #output: string;
  readonly #deps: StoreDeps;
  #store: Promise<OpenStore> | undefined;

  constructor(output: string, deps: StoreDeps) {
    this.#output = output;
    this.#deps = deps;
  }

  /**
   * Writes the part of a succeeded batch (`result` = the handler's value as MessagePack). Throws with the store's
   * error (JB_STORE_FAILED, …) when it cannot: the caller counts that as a failed attempt, so the batch is retried
   * and never acked without its result.
   */
  async write(id: BatchIdentity, attempt: number, durationMs: number, result: Uint8Array): Promise<void> {
    const url = partUrl(this.#output, id.jobId, id.batchId);
    if (url === null) throw new JetbatchError(ErrorCodes.STORE_FAILED, `batch id "${id.batchId}" is not a decimal index: its result has no part name`);
    const line = resultLine({ job_id: id.jobId, batch_id: id.batchId, duration_ms: durationMs, attempt, result: decodeValue(result) });
    const store = await this.#open();
    await store.write(url, Buffer.from(line, 'utf8'));
  }

  #open(): Promise<OpenStore> {
    // A store that could not be opened (credentials, endpoint) is tried again on the next write.
    this.#store ??= storeFor(this.#output, this.#deps).catch((err: unknown) => {
      this.#store = undefined;
      throw err;
    });
    return this.#store;
  }

  async close(): Promise<void> {
    const store = this.#store;
    this.#store = undefined;
    if (store !== undefined) await (await store.catch(() => null))?.close();
  }
}
