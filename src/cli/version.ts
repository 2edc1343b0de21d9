/** The package's version, read from its package.json: the CLI runs from src/cli (tsx) or dist/cli (built), both two levels below the package root. */
import { readFileSync } from 'node:fs';

export function packageVersion(): string {
  const pkg: unknown = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  const version = typeof pkg === 'object' && pkg !== null && 'version' in pkg ? pkg.version : undefined;
  if (typeof version !== 'string') throw new Error('package.json has no version');
  return version;
}
