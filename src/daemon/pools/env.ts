/** The environment of an API's worker threads: the daemon's environment plus the project's `.env` (project wins). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'dotenv';

export function apiEnvironment(projectDir: string, base: Readonly<Record<string, string>>): Record<string, string> {
  const env: Record<string, string> = { ...base };
  let text: string | undefined;
  try {
    text = readFileSync(join(projectDir, '.env'), 'utf8');
  } catch {
    return env;
  }
  return { ...env, ...parse(text) };
}
