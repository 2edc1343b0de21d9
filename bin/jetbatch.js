#!/usr/bin/env node
// The `jetbatch` command. Runs the compiled CLI in dist/ (built by `npm ci` / `npm install` through the `prepare`
// script, or by `npm run build`), unless src/ holds a file newer than that build — a clone edited or pulled since,
// or never built — and then the TypeScript source, through tsx.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const compiled = join(root, 'dist', 'cli', 'main.js');
const source = join(root, 'src', 'cli', 'main.ts');

/** The newest modification time of any file under `dir`, in ms. */
function newest(dir) {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return latest;
}

const fromSource = existsSync(source) && (!existsSync(compiled) || newest(join(root, 'src')) > statSync(compiled).mtimeMs);
if (fromSource) {
  // tsx resolved from this package, not from the working directory (a daemon may start anywhere). It is registered
  // for this thread and added to process.execArgv, which the daemon hands to its worker threads (they load
  // TypeScript too): a bare `--import tsx` there would be resolved from the working directory.
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  process.execArgv.push('--import', tsx);
  await import(tsx);
  await import(pathToFileURL(source).href);
} else {
  await import(pathToFileURL(compiled).href);
}
