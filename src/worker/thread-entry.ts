/**
 * Where a worker-thread entry file is and how its thread must start: from dist/ it is JavaScript; run from source (a
 * clone without dist/) it is TypeScript, and its thread needs the tsx loader too.
 */
import { extname } from 'node:path';

export interface ThreadEntry {
  url: URL;
  execArgv: string[];
}

/** `name` is a file of src/worker/ without extension ('worker', 'probe'). */
export function threadEntry(name: string): ThreadEntry {
  const url = new URL(`./${name}${extname(new URL(import.meta.url).pathname)}`, import.meta.url);
  const execArgv = url.pathname.endsWith('.ts') && !process.execArgv.some((a) => a.includes('tsx'))
    ? [...process.execArgv, '--import', 'tsx']
    : process.execArgv;
  return { url, execArgv };
}
