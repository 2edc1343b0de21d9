/**
 * Task of a one-thread Piscina pool that checks a JS/TS handler project the way a pool's thread loads it: resolves
 * and imports the handler module, and returns null (usable) or the error. It runs in its own thread, with the API's
 * environment, so a module's import-time side effects never touch the daemon's main thread.
 */
import { ErrorCodes, toErrorInfo } from '../errors.js';
import type { ErrorInfo } from '../types.js';
import { importHandler, resolveHandlerPath } from './load-handler.js';

export interface ProbeTask {
  projectDir: string;
  handlerPath: string | undefined;
}

export default async function probe(task: ProbeTask): Promise<ErrorInfo | null> {
  try {
    await importHandler(resolveHandlerPath(task.projectDir, task.handlerPath));
    return null;
  } catch (err) {
    return toErrorInfo(err, ErrorCodes.HANDLER_LOAD_FAILED);
  }
}
