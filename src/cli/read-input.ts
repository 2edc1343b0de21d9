/** Reads items or batches for `submit`: a JSON array, or JSON Lines (one value per line); `-` is stdin. */
import { readFile } from 'node:fs/promises';
import { ErrorCodes, JetbatchError } from '../errors.js';

async function readText(file: string): Promise<string> {
  if (file === '-') {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `cannot read ${file}: ${(err as Error).message}`);
  }
}

export function parseValues(text: string, source: string): unknown[] {
  const trimmed = text.trim();
  if (trimmed.length === 0) throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `${source} is empty`);
  if (trimmed.startsWith('[')) {
    let value: unknown;
    try {
      value = JSON.parse(trimmed);
    } catch (err) {
      throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `${source} is not valid JSON: ${(err as Error).message}`);
    }
    if (!Array.isArray(value)) throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `${source} must hold a JSON array`);
    return value;
  }
  const out: unknown[] = [];
  const lines = trimmed.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line.length === 0) continue;
    try {
      out.push(JSON.parse(line));
    } catch (err) {
      throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `${source} line ${i + 1} is not valid JSON: ${(err as Error).message}`);
    }
  }
  return out;
}

export async function readValues(file: string): Promise<unknown[]> {
  return parseValues(await readText(file), file === '-' ? 'stdin' : file);
}
