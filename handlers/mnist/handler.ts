/**
 * Batch inference with ONNX Runtime: classifies 28×28 handwritten digits with handlers/mnist/model.onnx (built by
 * scripts/train-mnist.ts). Any ONNX model with one float input [N, features] works the same way; see docs/handlers.md.
 *
 * Item:   { id, pixels }  where pixels are 784 grey levels 0–255, row-major (a number[] or MessagePack bin).
 * Result: one { id, label, score } per item, in item order (`score` = softmax probability of `label`).
 *
 * Config (API config in the daemon YAML, overridable per job):
 * - `model`: path of the .onnx file, relative to the project folder. @defaultValue "model.onnx"
 * - `intra_op_threads`: ONNX Runtime threads per worker thread; keep threads × this ≤ cores. @defaultValue 1
 * - `probabilities`: also return all 10 probabilities per item. @defaultValue false
 * - `cpu_fallback`: when the worker has a GPU (ctx.gpu) but the CUDA provider cannot start, run on the CPU with a
 *   warning instead of failing every batch. @defaultValue false
 */
import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { HandlerContext, JobSpec } from '../../src/handler.js';

/**
 * A failure no retry can fix: the batch is dead-lettered at once. jetbatch recognises it by `permanent: true`, not by
 * its class (errors cross threads as plain data), so this local twin of `PermanentError` from 'jetbatch/handler'
 * keeps the project free of runtime imports from jetbatch: it runs as is from any folder, e.g. after `jetbatch deploy`.
 */
class PermanentError extends Error {
  readonly permanent = true;
  readonly code: string;

  constructor(message: string, options: { cause?: unknown; code?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PermanentError';
    this.code = options.code ?? 'JB_HANDLER_PERMANENT';
  }
}

const PIXELS = 784;
const CLASSES = 10;

export interface DigitItem {
  id: string | number;
  pixels: number[] | Uint8Array;
}

export interface Prediction {
  id: string | number;
  label: number;
  score: number;
  probabilities?: number[];
}

interface Loaded {
  session: ort.InferenceSession;
  provider: 'cuda' | 'cpu';
}

/**
 * Sessions of this worker thread, by model file (and its version), GPU and thread count. Module scope lives as long
 * as the thread, so a model is loaded once per thread, not once per job; handler instances (one per job per thread)
 * share it. ONNX Runtime allows concurrent run() calls on one session.
 */
const sessions = new Map<string, Promise<Loaded>>();

function cudaUnavailable(gpu: number, cause: unknown): PermanentError {
  return new PermanentError(
    `cannot start ONNX Runtime's CUDA provider on GPU ${gpu}: ${(cause as Error).message.split('\n')[0]}. ` +
      'The CUDA provider needs CUDA 12 + cuDNN 9 and onnxruntime-node installed with its CUDA binaries ' +
      '(`ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js` after `npm ci`); ' +
      'or set `cpu_fallback: true` in the API config to run on the CPU.',
    { cause, code: 'MNIST_CUDA_UNAVAILABLE' },
  );
}

async function createSession(model: Uint8Array, gpu: number | null, threads: number, cpuFallback: boolean, ctx: HandlerContext): Promise<Loaded> {
  const common: ort.InferenceSession.SessionOptions = { intraOpNumThreads: threads, interOpNumThreads: 1 };
  if (gpu !== null) {
    try {
      // Nodes the CUDA provider cannot run are placed on the CPU provider by ONNX Runtime itself.
      const session = await ort.InferenceSession.create(model, { ...common, executionProviders: [{ name: 'cuda', deviceId: gpu }, 'cpu'] });
      return { session, provider: 'cuda' };
    } catch (err) {
      if (!cpuFallback) throw cudaUnavailable(gpu, err);
      ctx.log.warn({ gpu, err: (err as Error).message.split('\n')[0] }, 'CUDA provider unavailable; running on the CPU (cpu_fallback)');
    }
  }
  try {
    return { session: await ort.InferenceSession.create(model, { ...common, executionProviders: ['cpu'] }), provider: 'cpu' };
  } catch (err) {
    throw new PermanentError(`ONNX Runtime cannot load the model: ${(err as Error).message}`, { cause: err, code: 'MNIST_BAD_MODEL' });
  }
}

function pixelsOf(item: unknown, index: number): ArrayLike<number> {
  const it = item as Partial<DigitItem> | null;
  const where = `item ${index}${it !== null && typeof it === 'object' && it.id !== undefined ? ` (id ${JSON.stringify(it.id)})` : ''}`;
  if (it === null || typeof it !== 'object' || (typeof it.id !== 'string' && typeof it.id !== 'number')) {
    throw new PermanentError(`${where}: expected { id: string | number, pixels: number[784] }`, { code: 'MNIST_BAD_ITEM' });
  }
  const px = it.pixels;
  if (!(px instanceof Uint8Array) && !Array.isArray(px)) throw new PermanentError(`${where}: pixels must be an array of ${PIXELS} numbers`, { code: 'MNIST_BAD_ITEM' });
  if (px.length !== PIXELS) throw new PermanentError(`${where}: pixels has ${px.length} values, not ${PIXELS} (28×28)`, { code: 'MNIST_BAD_ITEM' });
  return px;
}

export default class MnistHandler {
  readonly #loaded: Promise<Loaded>;
  readonly #probabilities: boolean;

  constructor(config: Record<string, unknown>, _jobSpec: JobSpec, ctx: HandlerContext) {
    const path = resolve(ctx.projectDir, typeof config.model === 'string' ? config.model : 'model.onnx');
    const threads = typeof config.intra_op_threads === 'number' ? config.intra_op_threads : 1;
    this.#probabilities = config.probabilities === true;
    // Synchronous on purpose: a missing model file throws here, which fails the job as worker_error at once.
    // Size and mtime are in the key, so a model replaced in place is loaded afresh by the next job.
    const { size, mtimeMs } = statSync(path);
    const key = `${path}|${size}|${mtimeMs}|${ctx.gpu ?? 'cpu'}|${threads}`;
    let loaded = sessions.get(key);
    if (loaded === undefined) {
      const bytes = readFileSync(path);
      const started = performance.now();
      loaded = createSession(bytes, ctx.gpu, threads, config.cpu_fallback === true, ctx);
      sessions.set(key, loaded);
      loaded.then(
        ({ provider }) => ctx.log.info({ model: path, provider, gpu: ctx.gpu, load_ms: Math.round(performance.now() - started) }, 'ONNX model loaded'),
        () => sessions.delete(key), // the next job on this thread tries again
      );
    }
    // The constructor cannot await: handleBatch awaits this promise, so a load error fails the batch (permanently).
    this.#loaded = loaded;
  }

  async handleBatch(payload: unknown[], _batchId: string, ctx: HandlerContext): Promise<Prediction[]> {
    if (payload.length === 0) return [];
    const input = new Float32Array(payload.length * PIXELS);
    const ids = payload.map((item, i) => {
      input.set(pixelsOf(item, i), i * PIXELS);
      for (let p = i * PIXELS; p < (i + 1) * PIXELS; p++) {
        if (!Number.isFinite(input[p])) throw new PermanentError(`item ${i}: pixel ${p - i * PIXELS} is not a number`, { code: 'MNIST_BAD_ITEM' });
      }
      return (item as DigitItem).id;
    });
    const { session } = await this.#loaded;
    if (ctx.signal.aborted) throw ctx.signal.reason;
    const tensor = new ort.Tensor('float32', input, [payload.length, PIXELS]);
    const out = await session.run({ pixels: tensor });
    const labels = out.label?.data as BigInt64Array | undefined;
    const probs = out.probabilities?.data as Float32Array | undefined;
    if (labels === undefined || probs === undefined) throw new PermanentError('the model has no `label` and `probabilities` outputs', { code: 'MNIST_BAD_MODEL' });
    return ids.map((id, i) => {
      const label = Number(labels[i]);
      const p: Prediction = { id, label, score: probs[i * CLASSES + label]! };
      if (this.#probabilities) p.probabilities = Array.from(probs.subarray(i * CLASSES, (i + 1) * CLASSES));
      return p;
    });
  }
}
