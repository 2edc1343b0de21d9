#!/usr/bin/env node
// Runs the compiled CLI when present (installed package), else the TypeScript source through tsx (a clone).
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const compiled = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
if (existsSync(compiled)) {
  await import(pathToFileURL(compiled).href);
} else {
  const { tsImport } = await import('tsx/esm/api');
  await tsImport(fileURLToPath(new URL('../src/cli/main.ts', import.meta.url)), import.meta.url);
}
