/** Reads items or batches for `submit`: a JSON array, or JSON Lines (one value per line); `-` is stdin. */
import { readFile } from 'node:fs/promises';
import { ErrorCodes, JetbatchError } from '../errors.js';

/** Stdin can be read once: a second `-` (say `--items - --batches -`) gets the same text. */
let stdinText: Promise<string> | undefined;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function readText(file: string): Promise<string> {
  if (file === '-') return (stdinText ??= readStdin());
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `cannot read ${file}: ${(err as Error).message}`);
  }
}

/**
 * A text that parses as one JSON array is that array; a single other JSON value is one item. Anything else is read
 * as JSON Lines (so `[1,2]\n[3]` is two batches). Errors name the line, counted in the original text.
 */
export function parseValues(text: string, source: string): unknown[] {
  if (text.trim().length === 0) throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `${source} is empty`);
  let whole: { value: unknown } | undefined;
  try {
    whole = { value: JSON.parse(text) };
  } catch {
    // not a single JSON document: JSON Lines
  }
  if (whole !== undefined) {
    if (Array.isArray(whole.value)) return whole.value;
    if (text.trim().includes('\n')) {
      throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `${source} line 1: expected a JSON array or JSON Lines, found a multi-line JSON ${typeof whole.value}`);
    }
    return [whole.value];
  }
  const out: unknown[] = [];
  const lines = text.split('\n');
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
