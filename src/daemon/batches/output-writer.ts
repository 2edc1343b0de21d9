/**
 * Writes the results of a job that has an `output` (fleet/output.ts): one part per batch, whole, before the batch
 * is acked. Only jobs with an output have a writer; the others pay nothing for it.
 */
import { partUrl, resultLine } from '../../fleet/output.js';
import { decodeValue } from '../../fleet/protocol.js';
import { storeFor, type OpenStore, type StoreDeps } from '../../stores/index.js';
import { makeFolderUnder } from '../../stores/file-store.js';
import { parseStoreUrl } from '../../stores/url.js';
import { ErrorCodes, JetbatchError } from '../../errors.js';
import type { BatchIdentity } from './batch-headers.js';

export class OutputWriter {
  readonly #output: string;
  readonly #deps: StoreDeps;
  #store: Promise<OpenStore> | undefined;
  /**
   * file:// only: the output folder was found and `<job id>/` made under it (once per job on this daemon). A host
   * without the volume mounted must fail the write, not create the path locally and ack the batch.
   */
  #folder: Promise<void> | undefined;

  constructor(output: string, deps: StoreDeps) {
    this.#output = output;
    this.#deps = deps;
  }

  /**
   * Writes the part of a succeeded batch (`result` = the handler's value as MessagePack). Throws with the store's
   * error (JB_STORE_FAILED, JB_STORE_NOT_FOUND for a file:// output folder missing on this host, …) when it cannot:
   * the caller counts that as a failed attempt, so the batch is retried and never acked without its result. A batch
   * id that is not a decimal index throws JB_INVALID_SUBMISSION, which no retry fixes.
   */
  async write(id: BatchIdentity, attempt: number, durationMs: number, result: Uint8Array): Promise<void> {
    const url = partUrl(this.#output, id.jobId, id.batchId);
    if (url === null) {
      // No retry gives it a part name: not a store failure, and permanent (settle.ts: dead-lettered at once).
      throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `batch id "${id.batchId}" is not a decimal index: its result has no part name in the job's output`);
    }
    const line = resultLine({ job_id: id.jobId, batch_id: id.batchId, duration_ms: durationMs, attempt, result: decodeValue(result) });
    if (parseStoreUrl(this.#output).scheme === 'file') await this.#jobFolder(id.jobId);
    const store = await this.#open();
    await store.write(url, Buffer.from(line, 'utf8'));
  }

  #jobFolder(jobId: string): Promise<void> {
    // Checked again on the next write after a failure (the volume mounted meanwhile, a file in the way removed).
    this.#folder ??= makeFolderUnder(this.#output, `${jobId}/`).catch((err: unknown) => {
      this.#folder = undefined;
      throw err;
    });
    return this.#folder;
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
