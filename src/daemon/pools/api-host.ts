/**
 * The pools of the APIs this daemon serves. A local API (a `project` folder) has one pool; a deployed API has one
 * pool per project version in use, created when a job of that version arrives (the version is downloaded from the
 * Object Store once) and closed when its last job ends and a newer version exists. So running jobs finish on the
 * version they started with while new jobs use the new one.
 */
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { NatsOptions } from '../../fleet/connect.js';
import type { FleetContext } from '../../fleet/context.js';
import { ErrorCodes, JetbatchError } from '../../errors.js';
import { currentDeployment, fetchProject } from '../../fleet/deployments.js';
import type { JobRecord } from '../../types.js';
import { pythonPath, type ApiOptions } from '../config.js';
import { apiEnvironment } from './env.js';
import { ApiPool, type MetricEvent } from './pool.js';

export interface HostDeps {
  ctx: FleetContext;
  host: string;
  daemonId: string;
  pretty: boolean;
  maxLineBytes: number;
  nats: NatsOptions;
  stateDir: string;
  /** The daemon's environment (config.ts reads it), which worker threads get under the project's `.env`. */
  environment: Readonly<Record<string, string>>;
  log: Logger;
  /** Handler metrics sent by the threads of an API's pools. */
  onMetric(api: string, event: MetricEvent): void;
}

interface PoolEntry {
  key: string;
  api: string;
  /** Deployed version, or null for a local project. */
  version: number | null;
  pool: ApiPool;
  jobs: Set<string>;
}

export class ApiHost {
  readonly #deps: HostDeps;
  #apis = new Map<string, ApiOptions>();
  readonly #pools = new Map<string, PoolEntry>();
  readonly #creating = new Map<string, Promise<PoolEntry>>();
  readonly #byJob = new Map<string, PoolEntry>();
  readonly #latest = new Map<string, number>();

  constructor(deps: HostDeps, apis: readonly ApiOptions[]) {
    this.#deps = deps;
    for (const a of apis) this.#apis.set(a.name, a);
  }

  /** Starts the pools of local APIs (deployed ones start with their first job). */
  async start(): Promise<void> {
    for (const a of this.#apis.values()) if (!a.deployed) await this.#entry(a, null);
  }

  serves(api: string): boolean {
    return this.#apis.has(api);
  }

  apis(): ApiOptions[] {
    return [...this.#apis.values()];
  }

  pools(): ApiPool[] {
    return [...this.#pools.values()].map((e) => e.pool);
  }

  /** The pool a job runs on (created if needed). Throws JB_HANDLER_LOAD_FAILED if its project cannot be had. */
  async poolFor(record: JobRecord): Promise<ApiPool> {
    const existing = this.#byJob.get(record.job_id);
    if (existing !== undefined) return existing.pool;
    const api = this.#apis.get(record.api_name);
    if (api === undefined) throw new JetbatchError(ErrorCodes.UNKNOWN_API, `this daemon does not serve ${record.api_name}`);
    let version: number | null = null;
    if (api.deployed) {
      version = record.project_version ?? (await currentDeployment(this.#deps.ctx, api.name))?.deployment.version ?? null;
      if (version === null) throw new JetbatchError(ErrorCodes.HANDLER_LOAD_FAILED, `no project is deployed for API ${api.name} (jetbatch deploy DIR --name ${api.name})`);
      this.#latest.set(api.name, Math.max(version, this.#latest.get(api.name) ?? 0));
    }
    const entry = await this.#entry(api, version);
    entry.jobs.add(record.job_id);
    this.#byJob.set(record.job_id, entry);
    return entry.pool;
  }

  /** The job no longer needs its pool; an outdated version's pool closes with its last job. */
  release(jobId: string): void {
    const entry = this.#byJob.get(jobId);
    if (entry === undefined) return;
    this.#byJob.delete(jobId);
    entry.jobs.delete(jobId);
    if (entry.version !== null && entry.jobs.size === 0 && entry.version < (this.#latest.get(entry.api) ?? 0)) {
      this.#pools.delete(entry.key);
      void entry.pool.close();
      this.#deps.log.info({ api_name: entry.api, version: entry.version }, 'closed the pool of an outdated project version');
    }
  }

  /** APIs that a reconfiguration to `apis` removes or changes. */
  outdatedBy(apis: readonly ApiOptions[]): string[] {
    const next = new Map(apis.map((a) => [a.name, a]));
    return [...this.#apis].filter(([name, old]) => JSON.stringify(next.get(name)) !== JSON.stringify(old)).map(([name]) => name);
  }

  /**
   * Applies a new API list (SIGHUP). Returns the names whose pools were closed (removed or changed APIs); the
   * caller must have stopped their jobs' runners first, and restarts runners for changed and added APIs after.
   */
  async reconfigure(apis: readonly ApiOptions[]): Promise<{ closed: string[]; added: string[] }> {
    const next = new Map(apis.map((a) => [a.name, a]));
    const closed = this.outdatedBy(apis);
    const added = [...next.keys()].filter((n) => !this.#apis.has(n) || closed.includes(n));
    for (const [key, entry] of [...this.#pools]) {
      if (!closed.includes(entry.api)) continue;
      this.#pools.delete(key);
      for (const j of entry.jobs) this.#byJob.delete(j);
      await entry.pool.close();
    }
    this.#apis = next;
    for (const name of added) {
      const a = next.get(name)!;
      if (!a.deployed) await this.#entry(a, null);
    }
    return { closed, added };
  }

  async close(): Promise<void> {
    await Promise.all([...this.#pools.values()].map((e) => e.pool.close()));
    this.#pools.clear();
  }

  async #entry(api: ApiOptions, version: number | null): Promise<PoolEntry> {
    const key = `${api.name}@${version ?? 'local'}`;
    const have = this.#pools.get(key);
    if (have !== undefined) return have;
    let creating = this.#creating.get(key);
    if (creating === undefined) {
      creating = this.#create(api, version, key).finally(() => this.#creating.delete(key));
      this.#creating.set(key, creating);
    }
    return creating;
  }

  async #create(api: ApiOptions, version: number | null, key: string): Promise<PoolEntry> {
    const projectDir = version === null ? api.project : await fetchProject(this.#deps.ctx, this.#deps.stateDir, api.name, version);
    const options: ApiOptions = {
      ...api,
      project: projectDir,
      handler: api.handler === undefined ? undefined : resolve(projectDir, api.handler),
      python: pythonPath(api.python, projectDir),
    };
    const pool = new ApiPool({
      api: options,
      host: this.#deps.host,
      daemonId: this.#deps.daemonId,
      pretty: this.#deps.pretty,
      maxLineBytes: this.#deps.maxLineBytes,
      nats: this.#deps.nats,
      env: apiEnvironment(projectDir, this.#deps.environment),
      onMetric: (event) => this.#deps.onMetric(api.name, event),
    });
    const entry: PoolEntry = { key, api: api.name, version, pool, jobs: new Set() };
    this.#pools.set(key, entry);
    if (version !== null) this.#deps.log.info({ api_name: api.name, version, project: projectDir }, 'loaded a deployed project version');
    return entry;
  }
}
