/**
 * Deploying handler projects to the fleet: the archive goes to the Object Store as `<api>/v<N>`, then the API's
 * entry in JETBATCH_DEPLOYMENTS points to it (CAS, so two concurrent deploys get different versions). Versions
 * are immutable; a job records the version it was submitted against and runs on it to the end.
 */
import { existsSync } from 'node:fs';
import { mkdir, readlink, rm, symlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join, sep } from 'node:path';
import type { FleetContext } from './context.js';
import { ErrorCodes, JetbatchError } from '../errors.js';
import { API_NAME_PATTERN, decodeJson, encodeJson, projectObjectName } from './protocol.js';
import { DEFAULT_ARCHIVE_LIMITS, packProject, projectPath, unpackArchive, type ArchiveLimits } from '../project/archive.js';

export interface Deployment {
  api_name: string;
  version: number;
  object: string;
  sha256: string;
  /** Archive size in bytes. */
  size: number;
  files: number;
  deployed_at: string;
}

export async function currentDeployment(ctx: FleetContext, api: string): Promise<{ deployment: Deployment; revision: number } | null> {
  const e = await ctx.deployments.get(api);
  if (e === null || e.operation !== 'PUT' || e.value.length === 0) return null;
  return { deployment: decodeJson(e.value) as Deployment, revision: e.revision };
}

export async function deployProject(ctx: FleetContext, dir: string, api: string, limits: ArchiveLimits = DEFAULT_ARCHIVE_LIMITS): Promise<Deployment & { skipped: string[] }> {
  if (!API_NAME_PATTERN.test(api)) {
    throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `API name "${api}" must match ${API_NAME_PATTERN.source} (use --name)`);
  }
  if (!existsSync(dir)) throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `project folder ${dir} does not exist`);
  const packed = await packProject(dir, limits);
  for (let attempt = 0; attempt < 20; attempt++) {
    const current = await currentDeployment(ctx, api);
    const version = (current?.deployment.version ?? 0) + 1;
    const object = projectObjectName(api, version);
    // The object first, then the pointer: a deployment entry never names a missing object.
    await ctx.projects.putBlob({ name: object, description: `jetbatch project ${api} v${version} sha256:${packed.sha256}` }, packed.bytes);
    const deployment: Deployment = {
      api_name: api,
      version,
      object,
      sha256: packed.sha256,
      size: packed.bytes.byteLength,
      files: packed.files,
      deployed_at: new Date().toISOString(),
    };
    try {
      if (current === null) await ctx.deployments.create(api, encodeJson(deployment));
      else await ctx.deployments.update(api, encodeJson(deployment), current.revision);
      return { ...deployment, skipped: packed.skipped };
    } catch {
      // Someone deployed the same API meanwhile: take the next version.
    }
  }
  throw new JetbatchError(ErrorCodes.INTERNAL, `could not deploy ${api}: too many concurrent deployments`);
}

/** Every deployment of every API, newest version first per API (from the bucket's history). */
export async function listDeployments(ctx: FleetContext): Promise<Deployment[]> {
  const out: Deployment[] = [];
  for await (const e of await ctx.deployments.history()) {
    if (e.operation === 'PUT' && e.value.length > 0) out.push(decodeJson(e.value) as Deployment);
  }
  return out.sort((a, b) => a.api_name.localeCompare(b.api_name) || b.version - a.version);
}

/**
 * Deployed projects are unpacked under `<state_dir>/projects/…`, far from jetbatch's own node_modules. A link
 * `<state_dir>/node_modules` → jetbatch's node_modules lets their imports fall back to the packages jetbatch ships
 * (onnxruntime-node, …) after the project's own `node_modules`, as for a local project inside a jetbatch checkout.
 */
async function linkSharedModules(stateDir: string): Promise<void> {
  const link = join(stateDir, 'node_modules');
  const resolved = createRequire(import.meta.url).resolve('piscina');
  const ours = resolved.slice(0, resolved.lastIndexOf(`${sep}node_modules${sep}`) + `${sep}node_modules`.length);
  const current = await readlink(link).catch(() => null);
  if (current === ours) return;
  await mkdir(stateDir, { recursive: true });
  await rm(link, { force: true, recursive: false }).catch(() => undefined);
  await symlink(ours, link, 'dir').catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
}

/** Downloads and unpacks a version into the state dir (once; versions never change) and returns its folder. */
export async function fetchProject(ctx: FleetContext, stateDir: string, api: string, version: number, limits: ArchiveLimits = DEFAULT_ARCHIVE_LIMITS): Promise<string> {
  await linkSharedModules(stateDir);
  const target = projectPath(stateDir, api, version);
  if (existsSync(target)) return target;
  const name = projectObjectName(api, version);
  const info = await ctx.projects.info(name);
  if (info === null || info.deleted) throw new JetbatchError(ErrorCodes.HANDLER_LOAD_FAILED, `deployed project ${name} is missing from the object store`);
  if (info.size > limits.maxBytes + 16 * 1024 * 1024) {
    throw new JetbatchError(ErrorCodes.PAYLOAD_TOO_LARGE, `deployed project ${name} is ${info.size} bytes; the limit is ${limits.maxBytes}`);
  }
  const bytes = await ctx.projects.getBlob(name);
  if (bytes === null) throw new JetbatchError(ErrorCodes.HANDLER_LOAD_FAILED, `deployed project ${name} could not be read`);
  await unpackArchive(bytes, target, limits);
  return target;
}
