/**
 * The page's static files (src/ui/assets/: app.js, style.css, favicon.svg), read once into memory. They ship in the
 * package as they are (no build step); tsc does not copy them to dist/, so from dist/ui/ they are found in
 * ../../src/ui/assets, as the Python runtime finds src/python.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface Asset {
  body: Buffer;
  type: string;
}

const TYPES: Record<string, string> = {
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
  'favicon.svg': 'image/svg+xml',
};

export function assetsDir(): string {
  for (const rel of ['./assets', '../../src/ui/assets']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(`${p}/app.js`)) return p;
  }
  throw new Error(`jetbatch ui: its assets (app.js, style.css) are missing next to ${fileURLToPath(import.meta.url)}`);
}

/** Every asset by file name. Throws at start when one is missing, rather than serving a broken page. */
export function loadAssets(dir = assetsDir()): ReadonlyMap<string, Asset> {
  return new Map(Object.entries(TYPES).map(([name, type]) => [name, { body: readFileSync(`${dir}/${name}`), type }]));
}
