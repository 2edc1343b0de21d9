/**
 * The project archive shipped through the Object Store: MessagePack `{format, files: [{path, mode, data}]}`.
 * No links, no compression, no absolute or parent paths: unpacking checks every entry before writing anything,
 * so a hostile archive cannot escape its folder or declare more bytes than it carries.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, posix, resolve, sep } from 'node:path';
import { ErrorCodes, JetbatchError } from '../errors.js';
import { decodeValue, encodeValue } from '../fleet/protocol.js';
import { listProjectFiles } from './files.js';

export const ARCHIVE_FORMAT = 'jetbatch-project/1';

export interface ArchiveLimits {
  /** Most bytes of file content. @defaultValue 256 MiB */
  maxBytes: number;
  /** Most files. @defaultValue 20,000 */
  maxFiles: number;
}

export const DEFAULT_ARCHIVE_LIMITS: ArchiveLimits = { maxBytes: 256 * 1024 * 1024, maxFiles: 20_000 };

interface Entry {
  path: string;
  mode: number;
  data: Uint8Array;
}

export interface Packed {
  bytes: Uint8Array;
  sha256: string;
  files: number;
  contentBytes: number;
  skipped: string[];
}

const tooLarge = (what: string): JetbatchError => new JetbatchError(ErrorCodes.PAYLOAD_TOO_LARGE, what);

export async function packProject(root: string, limits: ArchiveLimits = DEFAULT_ARCHIVE_LIMITS): Promise<Packed> {
  const { files, skipped } = await listProjectFiles(root);
  if (files.length === 0) throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `${root} holds no project files`);
  if (files.length > limits.maxFiles) throw tooLarge(`project has ${files.length} files; the limit is ${limits.maxFiles} (add an ignore file)`);
  const total = files.reduce((n, f) => n + f.size, 0);
  if (total > limits.maxBytes) {
    const biggest = [...files].sort((a, b) => b.size - a.size).slice(0, 3).map((f) => `${f.path} (${f.size} B)`).join(', ');
    throw tooLarge(`project is ${total} bytes; the limit is ${limits.maxBytes} (largest: ${biggest}; exclude files with .jetbatchignore)`);
  }
  const entries: Entry[] = [];
  for (const f of files) entries.push({ path: f.path, mode: f.executable ? 0o755 : 0o644, data: await readFile(f.absolute) });
  const bytes = encodeValue({ format: ARCHIVE_FORMAT, files: entries });
  return { bytes, sha256: createHash('sha256').update(bytes).digest('hex'), files: entries.length, contentBytes: total, skipped };
}

/** Checks a relative archive path; returns it normalised or throws. */
export function safeRelativePath(path: unknown): string {
  if (typeof path !== 'string' || path.length === 0 || path.length > 1024 || path.includes('\0') || path.includes('\\')) {
    throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `archive entry has an invalid path: ${JSON.stringify(path)?.slice(0, 100)}`);
  }
  const norm = posix.normalize(path);
  if (posix.isAbsolute(norm) || norm === '..' || norm.startsWith('../') || norm === '.' || norm !== path) {
    throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `archive entry escapes the project folder: ${path}`);
  }
  return norm;
}

/** Validates an archive completely and returns its entries; nothing is written. */
export function readArchive(bytes: Uint8Array, limits: ArchiveLimits = DEFAULT_ARCHIVE_LIMITS): Entry[] {
  if (bytes.byteLength > limits.maxBytes + 16 * 1024 * 1024) throw tooLarge(`archive is ${bytes.byteLength} bytes; the limit is ${limits.maxBytes}`);
  let doc: unknown;
  try {
    doc = decodeValue(bytes);
  } catch (err) {
    throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `not a project archive: ${(err as Error).message}`);
  }
  const d = doc as { format?: unknown; files?: unknown };
  if (d === null || typeof d !== 'object' || d.format !== ARCHIVE_FORMAT || !Array.isArray(d.files)) {
    throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `not a ${ARCHIVE_FORMAT} archive`);
  }
  if (d.files.length > limits.maxFiles) throw tooLarge(`archive has ${d.files.length} files; the limit is ${limits.maxFiles}`);
  const seen = new Set<string>();
  let total = 0;
  return d.files.map((raw: unknown) => {
    const e = raw as { path?: unknown; mode?: unknown; data?: unknown };
    const path = safeRelativePath(e.path);
    if (seen.has(path)) throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `archive lists ${path} twice`);
    seen.add(path);
    if (!(e.data instanceof Uint8Array)) throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `archive entry ${path} has no data`);
    total += e.data.byteLength;
    if (total > limits.maxBytes) throw tooLarge(`archive content exceeds ${limits.maxBytes} bytes`);
    const mode = e.mode === 0o755 ? 0o755 : 0o644;
    return { path, mode, data: e.data };
  });
}

/**
 * Unpacks into `target` atomically: written into a sibling temp folder, then renamed. An existing `target` is
 * kept as is (versions are immutable).
 */
export async function unpackArchive(bytes: Uint8Array, target: string, limits: ArchiveLimits = DEFAULT_ARCHIVE_LIMITS): Promise<void> {
  const entries = readArchive(bytes, limits);
  const temp = `${target}.tmp-${randomBytes(4).toString('hex')}`;
  const root = resolve(temp);
  await mkdir(root, { recursive: true });
  try {
    for (const e of entries) {
      const dest = resolve(root, e.path);
      if (!dest.startsWith(root + sep)) throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `archive entry escapes the project folder: ${e.path}`);
      await mkdir(dirname(dest), { recursive: true });
      await writeFile(dest, e.data, { mode: e.mode, flag: 'wx' });
    }
    await mkdir(dirname(target), { recursive: true });
    await rename(root, target).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
      await rm(root, { recursive: true, force: true });
    });
  } catch (err) {
    await rm(root, { recursive: true, force: true });
    throw err;
  }
}

export function projectPath(stateDir: string, api: string, version: number): string {
  return join(stateDir, 'projects', api, `v${version}`);
}
