/**
 * Where a worker-thread entry file is and how its thread must start: from dist/ it is JavaScript; run from source (a
 * clone without dist/) it is TypeScript, and its thread needs the tsx loader too.
 */
import { createRequire } from 'node:module';
import { extname } from 'node:path';
import { pathToFileURL } from 'node:url';

export interface ThreadEntry {
  url: URL;
  execArgv: string[];
}

/**
 * `name` is a file without extension next to `base` (a module's `import.meta.url`; by default src/worker/:
 * 'worker', 'probe').
 */
export function threadEntry(name: string, base: string = import.meta.url): ThreadEntry {
  const url = new URL(`./${name}${extname(new URL(base).pathname)}`, base);
  // tsx resolved from this package, not from the working directory (a daemon may start anywhere).
  const execArgv = url.pathname.endsWith('.ts') && !process.execArgv.some((a) => a.includes('tsx'))
    ? [...process.execArgv, '--import', pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href]
    : process.execArgv;
  return { url, execArgv };
}
