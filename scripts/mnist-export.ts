/**
 * Writes the digits of scripts/mnist-data.ts and its fixed train / held-out split to one binary file, for programs
 * that are not TypeScript (scripts/train-mnist-torch.py): `node --import tsx scripts/mnist-export.ts --out FILE`.
 * The split is computed here, in one place, so the PyTorch model trains on exactly the digits the ONNX one did.
 *
 * Layout, little-endian, no padding:
 *   8 bytes  magic "JBMNIST1"
 *   4 × u32  count, pixels per digit (784), training count, held-out count
 *   count × 784 u8   grey levels 0–255, row-major, package order
 *   count u8         true digit of each sample
 *   train u32 ×      training indices, in training order
 *   test u32 ×       held-out indices, ascending
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { PIXELS, loadDigits, split } from './mnist-data.js';

export const MAGIC = 'JBMNIST1';

export function exportBytes(): Buffer {
  const digits = loadDigits();
  const { train, test } = split(digits);
  const header = Buffer.alloc(8 + 16);
  header.write(MAGIC, 0, 'latin1');
  [digits.count, PIXELS, train.length, test.length].forEach((v, i) => header.writeUInt32LE(v, 8 + 4 * i));
  const indices = (values: number[]) => {
    const b = Buffer.alloc(4 * values.length);
    values.forEach((v, i) => b.writeUInt32LE(v, 4 * i));
    return b;
  };
  return Buffer.concat([header, Buffer.from(digits.pixels.buffer, digits.pixels.byteOffset, digits.pixels.byteLength), Buffer.from(digits.labels), indices(train), indices(test)]);
}

function main(): void {
  const { values } = parseArgs({ options: { out: { type: 'string' } } });
  if (values.out === undefined) {
    console.error('usage: node --import tsx scripts/mnist-export.ts --out FILE');
    process.exitCode = 2;
    return;
  }
  writeFileSync(resolve(values.out), exportBytes());
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
