/** Deep merge for configs: `override` wins; plain objects merge, everything else replaces. */

const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype']);

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Returns a new object; keys that could reach a prototype (`__proto__`, `constructor`, `prototype`) are dropped. */
export function deepMerge(base: Record<string, unknown>, override: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const source of [base, override]) {
    for (const key of Object.keys(source)) {
      if (FORBIDDEN.has(key)) continue;
      const value = source[key];
      const prev = out[key];
      out[key] = isPlainObject(prev) && isPlainObject(value) ? deepMerge(prev, value) : clean(value);
    }
  }
  return out;
}

function clean(value: unknown): unknown {
  if (isPlainObject(value)) return deepMerge({}, value);
  if (Array.isArray(value)) return value.map(clean);
  return value;
}
