/**
 * Imports a module of this package on first use (what most processes or threads never need stays unloaded: the S3
 * SDK, the client in a worker thread). `url` names the compiled `.js` file, relative to the caller's
 * `import.meta.url`.
 *
 * Run from source inside a worker thread, once tsx's tsImport has loaded a handler, Node no longer maps a dynamic
 * import of `x.js` to `x.ts` (ERR_MODULE_NOT_FOUND) nor loads a `.ts` (ERR_UNKNOWN_FILE_EXTENSION): the module is
 * then loaded through tsImport, as handlers are (a copy of its own, used only by that thread). From dist/ the plain
 * import always works.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export async function lazyImport<T>(url: URL): Promise<T> {
  try {
    return (await import(url.href)) as T;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw err;
    const source = new URL(url.href.replace(/\.js$/, '.ts'));
    if (source.href === url.href || !existsSync(fileURLToPath(source))) throw err;
    const { tsImport } = await import('tsx/esm/api');
    return (await tsImport(source.href, import.meta.url)) as T;
  }
}
