/**
 * Which files of a handler project travel with it (the anchor's rules): everything except dotfiles and
 * dot-folders, the API config file at the root, symbolic links, and what `.jetbatchignore` or `.cortexignore`
 * exclude (gitignore syntax). `.env` at the root is the one dotfile kept: it becomes the API's environment. Python's
 * compiled files (`__pycache__` folders, `*.pyc`, `*.pyo`) stay behind too: each host compiles for its interpreter.
 */
import { readdir, readFile, lstat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import ignore, { type Ignore } from 'ignore';

export const IGNORE_FILES = ['.jetbatchignore', '.cortexignore'] as const;
/** API config files that stay behind (ours and the anchor's). */
export const CONFIG_FILES = ['jetbatch.yaml', 'jetbatch.yml', 'cortex.yaml', 'cortex.yml'] as const;
/** Build products of Python that never travel. */
const isPythonCache = (name: string, directory: boolean): boolean => (directory ? name === '__pycache__' : /\.py[co]$/.test(name));

export interface ProjectFile {
  /** POSIX path relative to the project root. */
  path: string;
  absolute: string;
  size: number;
  executable: boolean;
}

export interface Listing {
  files: ProjectFile[];
  /** Paths left out because they are symbolic links or special files. */
  skipped: string[];
}

async function loadIgnore(root: string): Promise<Ignore> {
  const ig = ignore();
  for (const name of IGNORE_FILES) {
    try {
      ig.add(await readFile(join(root, name), 'utf8'));
    } catch {
      // no such file
    }
  }
  return ig;
}

export async function listProjectFiles(root: string): Promise<Listing> {
  const ig = await loadIgnore(root);
  const files: ProjectFile[] = [];
  const skipped: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const entries = await readdir(join(root, rel), { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const path = rel === '' ? e.name : posix.join(rel, e.name);
      const atRoot = rel === '';
      if (e.name.startsWith('.') && !(atRoot && e.name === '.env' && e.isFile())) continue;
      if (atRoot && (CONFIG_FILES as readonly string[]).includes(e.name)) continue;
      if (isPythonCache(e.name, e.isDirectory())) continue;
      if (e.isDirectory()) {
        if (ig.ignores(`${path}/`)) continue;
        await walk(path);
        continue;
      }
      if (ig.ignores(path)) continue;
      if (!e.isFile()) {
        skipped.push(path);
        continue;
      }
      const absolute = join(root, path);
      const st = await lstat(absolute);
      files.push({ path, absolute, size: st.size, executable: (st.mode & 0o111) !== 0 });
    }
  };
  await walk('');
  return { files, skipped };
}
