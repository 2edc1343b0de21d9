/** docs/errors.md documents every error code of src/errors.ts, and no code that does not exist. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ErrorCodes } from '../src/errors.js';

const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
const codes: string[] = Object.values(ErrorCodes);

test('every error code has a row in docs/errors.md', () => {
  const missing = codes.filter((code) => !doc.includes(`| \`${code}\` |`));
  assert.deepEqual(missing, [], `codes without a row in docs/errors.md: ${missing.join(', ')}`);
});

test('docs/errors.md names no code that src/errors.ts lacks', () => {
  const named = new Set(doc.match(/\bJB_[A-Z0-9_]+\b/g) ?? []);
  const unknown = [...named].filter((code) => !codes.includes(code));
  assert.deepEqual(unknown, [], `codes in docs/errors.md that do not exist: ${unknown.join(', ')}`);
});
