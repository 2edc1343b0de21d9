/**
 * A full garbage collection of this process's heap before a measured interval, so what a step allocated while
 * preparing (publishing its batches, a warm-up job) is not collected during the measurement of what follows.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as (() => void) | undefined;

export function collectGarbage(): void {
  gc?.();
}
