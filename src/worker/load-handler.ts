/** Finds and imports a handler module (TypeScript through tsx, no build step) and returns its class. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ErrorCodes, JetbatchError } from '../errors.js';
import type { HandlerClass } from '../handler.js';

/** JavaScript first; `handler.py` makes a Python API (its module is run by a Python process, not imported here). */
const CANDIDATES = ['handler.ts', 'handler.mts', 'handler.js', 'handler.mjs', 'handler.cjs', 'handler.py'];

export function resolveHandlerPath(projectDir: string, explicit: string | undefined): string {
  if (explicit !== undefined) {
    if (!existsSync(explicit)) throw new JetbatchError(ErrorCodes.HANDLER_LOAD_FAILED, `handler module ${explicit} does not exist`);
    return explicit;
  }
  for (const name of CANDIDATES) {
    const p = join(projectDir, name);
    if (existsSync(p)) return p;
  }
  throw new JetbatchError(
    ErrorCodes.HANDLER_LOAD_FAILED,
    `no handler module in ${projectDir} (looked for ${CANDIDATES.join(', ')}; or set \`handler\` in the API config)`,
  );
}

export async function importHandler(path: string): Promise<HandlerClass> {
  let mod: Record<string, unknown>;
  try {
    if (/\.(c|m)?ts$/.test(path) && isCommonJs(path)) {
      // tsx's ESM loader would run a CommonJS-format module from a data: URL, and its stack traces would show that
      // URL-encoded source; its CommonJS loader keeps the file's path and source-mapped lines.
      const { require: tsRequire } = await import('tsx/cjs/api');
      mod = tsRequire(path, import.meta.url) as Record<string, unknown>;
    } else if (/\.(c|m)?ts$/.test(path)) {
      const { tsImport } = await import('tsx/esm/api');
      mod = (await tsImport(path, import.meta.url)) as Record<string, unknown>;
    } else {
      mod = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
    }
  } catch (err) {
    throw new JetbatchError(ErrorCodes.HANDLER_LOAD_FAILED, `cannot import handler ${path}: ${(err as Error).message}`, { cause: err });
  }
  // One rule: the handler is the module's default export (a CommonJS-compiled module arrives as { default: { default: Class } }).
  const inner = mod.default as { default?: unknown } | undefined;
  const candidate = typeof mod.default === 'function' ? mod.default : inner?.default;
  if (typeof candidate !== 'function') {
    const named = Object.keys(mod).filter((k) => k !== 'default' && typeof mod[k] === 'function');
    const hint = named.length > 0 ? ` (it exports ${named.map((n) => `\`${n}\``).join(', ')} by name: write \`export default class ${named[0]} …\`)` : '';
    throw new JetbatchError(ErrorCodes.HANDLER_LOAD_FAILED, `handler ${path} has no default-exported class${hint}`);
  }
  const proto = (candidate as { prototype?: Record<string, unknown> }).prototype ?? {};
  if (typeof proto.handleBatch !== 'function' && typeof proto.handle_batch !== 'function') {
    throw new JetbatchError(ErrorCodes.HANDLER_LOAD_FAILED, `handler ${path}: the default export has no handleBatch method`);
  }
  return candidate as HandlerClass;
}

/** Whether Node treats a TypeScript file as CommonJS: `.cts`, or `.ts` outside a package of `"type": "module"`. */
function isCommonJs(path: string): boolean {
  if (path.endsWith('.cts')) return true;
  if (path.endsWith('.mts')) return false;
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    try {
      return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { type?: unknown }).type !== 'module';
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return true;
    }
    if (dirname(dir) === dir) return true;
  }
}
