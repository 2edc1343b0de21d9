/**
 * What an item may be and how a batch of items is encoded: kept free of heavy imports, because the CLI's input
 * thread (cli/input-thread.ts) loads it before it reads the first line.
 */
import { ErrorCodes, JetbatchError } from '../errors.js';
import { encodeValue } from './protocol.js';

/** Deepest nesting accepted in a job's config and in items (objects and arrays). */
export const MAX_DEPTH = 64;

/**
 * Walks a value once: too deep (or circular) is refused before anything recurses on it elsewhere, and in items a
 * `__proto__` key is refused because the MessagePack decoder in the worker would refuse the whole batch.
 */
export function checkShape(value: unknown, where: string, forbidProto: boolean): string | null {
  // Recursion is bounded by MAX_DEPTH, and allocates nothing: this runs on every item of every submission.
  const problem = shapeProblem(value, 1, forbidProto);
  if (problem === null) return null;
  return problem === 'deep' ? `${where}: nested deeper than ${MAX_DEPTH} levels` : `${where}: a "__proto__" key is not allowed in items`;
}

function shapeProblem(v: unknown, depth: number, forbidProto: boolean): 'deep' | 'proto' | null {
  if (v === null || typeof v !== 'object' || ArrayBuffer.isView(v)) return null;
  if (depth > MAX_DEPTH) return 'deep';
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const p = shapeProblem(v[i], depth + 1, forbidProto);
      if (p !== null) return p;
    }
    return null;
  }
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (forbidProto && k === '__proto__') return 'proto';
    const p = shapeProblem(o[k], depth + 1, forbidProto);
    if (p !== null) return p;
  }
  return null;
}

/**
 * A batch's items checked (nesting, `__proto__`; unless the reader `checked` each already) and encoded;
 * JB_INVALID_SUBMISSION naming batch `index` if they cannot be.
 */
export function encodeBatch(items: unknown[], index: number, checked = false): Uint8Array {
  const shape = checked ? null : checkShape(items, `batch ${index}`, true);
  if (shape !== null) throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, shape);
  try {
    return encodeValue(items);
  } catch (err) {
    throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `batch ${index} cannot be encoded as MessagePack: ${(err as Error).message}`, { cause: err });
  }
}
