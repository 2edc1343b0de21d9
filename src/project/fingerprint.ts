/**
 * A cheap fingerprint of a local project: the files that travel with it (files.ts rules) with their sizes and
 * modification times. SIGHUP compares it to tell whether a project's code changed since its pool was created.
 */
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { listProjectFiles } from './files.js';

export async function projectFingerprint(root: string): Promise<string> {
  const hash = createHash('sha256');
  try {
    const { files } = await listProjectFiles(root);
    for (const f of files) {
      const { mtimeMs } = await stat(f.absolute);
      hash.update(`${f.path}\0${f.size}\0${mtimeMs}\n`);
    }
  } catch (err) {
    hash.update(`unreadable: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return hash.digest('hex');
}
