/**
 * The pools of the APIs this daemon serves, one per project version in use. A deployed API's versions come from the
 * Object Store (downloaded once, when a job of that version arrives); a local API (a `project` folder) gets a new
 * generation when SIGHUP finds its files changed. An outdated version's pool closes when its last job ends, so
 * running jobs finish on the code they started with while new jobs use the new one. Every new pool's project is
 * checked (project-check.ts); the last check's result is the API's health.
 */
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { NatsOptions } from '../../fleet/connect.js';
import type { FleetContext } from '../../fleet/context.js';
import { ErrorCodes, JetbatchError } from '../../errors.js';
import { currentDeployment, fetchProject } from '../../fleet/deployments.js';
import type { JobRecord } from '../../types.js';
import { pythonPath, type ApiOptions } from '../config.js';
import { projectFingerprint } from '../../project/fingerprint.js';
import type { ErrorInfo } from '../../types.js';
import { apiEnvironment } from './env.js';
import { ApiPool, type MetricEvent } from './pool.js';
import type { S3Settings } from '../../stores/index.js';
import { checkProject, type ProjectHealth } from './project-check.js';

export interface HostDeps {
  ctx: FleetContext;
  host: string;
  daemonId: string;
  pretty: boolean;
  maxLineBytes: number;
  nats: NatsOptions;
  /** The daemon config's `s3` section: handlers' ctx.open reads s3:// with it. */
  s3: S3Settings;
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
  /** Deployed version, or the generation of a local project (1 at start, +1 per SIGHUP that finds it changed). */
  version: number;
  pool: ApiPool;
  jobs: Set<string>;
}

/** A local project's current generation and the fingerprint of its files when that generation began. */
interface LocalCode {
  generation: number;
  fingerprint: string;
}

export class ApiHost {
  readonly #deps: HostDeps;
  #apis = new Map<string, ApiOptions>();
  readonly #pools = new Map<string, PoolEntry>();
  readonly #creating = new Map<string, Promise<PoolEntry>>();
  readonly #byJob = new Map<string, PoolEntry>();
  /** Per API, the newest version in use: a deployed version number or a local generation. */
  readonly #latest = new Map<string, number>();
  readonly #local = new Map<string, LocalCode>();
  readonly #health = new Map<string, ProjectHealth>();

  constructor(deps: HostDeps, apis: readonly ApiOptions[]) {
    this.#deps = deps;
    for (const a of apis) this.#apis.set(a.name, a);
  }

  /** Starts the pools of local APIs (deployed ones start with their first job). */
  async start(): Promise<void> {
    for (const a of this.#apis.values()) if (!a.deployed) await this.#startLocal(a, 1);
  }

  /** The result of each API's last project check; an API none was run for yet (deployed, no job so far) is absent. */
  health(): ReadonlyMap<string, ProjectHealth> {
    return this.#health;
  }

  /** APIs whose last project check failed, with the error. */
  unhealthy(): Record<string, ErrorInfo> {
    const out: Record<string, ErrorInfo> = {};
    for (const [api, h] of this.#health) if (h.state === 'unhealthy') out[api] = h.error;
    return out;
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
    let version = this.#local.get(api.name)?.generation ?? 1;
    if (api.deployed) {
      const deployed = record.project_version ?? (await currentDeployment(this.#deps.ctx, api.name))?.deployment.version;
      if (deployed === undefined) throw new JetbatchError(ErrorCodes.HANDLER_LOAD_FAILED, `no project is deployed for API ${api.name} (jetbatch deploy DIR --name ${api.name})`);
      version = deployed;
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
    if (entry.jobs.size === 0) this.#closeIfOutdated(entry);
  }

  #closeIfOutdated(entry: PoolEntry): void {
    if (entry.jobs.size > 0 || entry.version >= (this.#latest.get(entry.api) ?? 0) || !this.#pools.has(entry.key)) return;
    this.#pools.delete(entry.key);
    void entry.pool.close();
    this.#deps.log.info({ api_name: entry.api, version: entry.version }, 'closed the pool of an outdated project version');
  }

  /** APIs that a reconfiguration to `apis` removes or changes. */
  outdatedBy(apis: readonly ApiOptions[]): string[] {
    const next = new Map(apis.map((a) => [a.name, a]));
    return [...this.#apis].filter(([name, old]) => JSON.stringify(next.get(name)) !== JSON.stringify(old)).map(([name]) => name);
  }

  /**
   * Applies a new API list (SIGHUP). Returns the names whose pools were closed (removed or changed APIs; the
   * caller must have stopped their jobs' runners first, and restarts runners for changed and added APIs after), the
   * added ones, and the local ones re-imported because their files changed (see #reloadChangedCode).
   */
  async reconfigure(apis: readonly ApiOptions[]): Promise<{ closed: string[]; added: string[]; reloaded: string[] }> {
    const next = new Map(apis.map((a) => [a.name, a]));
    const closed = this.outdatedBy(apis);
    const added = [...next.keys()].filter((n) => !this.#apis.has(n) || closed.includes(n));
    for (const [key, entry] of [...this.#pools]) {
      if (!closed.includes(entry.api)) continue;
      this.#pools.delete(key);
      for (const j of entry.jobs) this.#byJob.delete(j);
      await entry.pool.close();
    }
    for (const name of closed) {
      this.#local.delete(name);
      this.#latest.delete(name);
      this.#health.delete(name);
    }
    this.#apis = next;
    for (const name of added) {
      const a = next.get(name)!;
      if (!a.deployed) await this.#startLocal(a, 1);
    }
    return { closed, added, reloaded: await this.#reloadChangedCode() };
  }

  /**
   * Local projects whose files changed since their pool was made get a new generation: a fresh pool (new threads,
   * so the handler module is imported afresh) for new jobs; running jobs keep the pool they started on.
   */
  async #reloadChangedCode(): Promise<string[]> {
    const reloaded: string[] = [];
    for (const [name, code] of [...this.#local]) {
      const api = this.#apis.get(name);
      if (api === undefined || api.deployed) continue;
      if ((await projectFingerprint(api.project)) === code.fingerprint) continue;
      await this.#startLocal(api, code.generation + 1);
      reloaded.push(name);
      for (const entry of [...this.#pools.values()]) if (entry.api === name) this.#closeIfOutdated(entry);
    }
    return reloaded;
  }

  async #startLocal(api: ApiOptions, generation: number): Promise<void> {
    this.#local.set(api.name, { generation, fingerprint: await projectFingerprint(api.project) });
    this.#latest.set(api.name, generation);
    await this.#entry(api, generation);
  }

  async close(): Promise<void> {
    await Promise.all([...this.#pools.values()].map((e) => e.pool.close()));
    this.#pools.clear();
  }

  async #entry(api: ApiOptions, version: number): Promise<PoolEntry> {
    const key = `${api.name}@${version}`;
    const have = this.#pools.get(key);
    if (have !== undefined) return have;
    let creating = this.#creating.get(key);
    if (creating === undefined) {
      creating = this.#create(api, version, key).finally(() => this.#creating.delete(key));
      this.#creating.set(key, creating);
    }
    return creating;
  }

  async #create(api: ApiOptions, version: number, key: string): Promise<PoolEntry> {
    const projectDir = api.deployed ? await fetchProject(this.#deps.ctx, this.#deps.stateDir, api.name, version) : api.project;
    const options: ApiOptions = {
      ...api,
      project: projectDir,
      handler: api.handler === undefined ? undefined : resolve(projectDir, api.handler),
      python: pythonPath(api.python, projectDir),
    };
    const env = apiEnvironment(projectDir, this.#deps.environment);
    const pool = new ApiPool({
      api: options,
      host: this.#deps.host,
      daemonId: this.#deps.daemonId,
      pretty: this.#deps.pretty,
      maxLineBytes: this.#deps.maxLineBytes,
      nats: this.#deps.nats,
      s3: this.#deps.s3,
      env,
      onMetric: (event) => this.#deps.onMetric(api.name, event),
    });
    const entry: PoolEntry = { key, api: api.name, version, pool, jobs: new Set() };
    this.#pools.set(key, entry);
    if (api.deployed) this.#deps.log.info({ api_name: api.name, version, project: projectDir }, 'loaded a deployed project version');
    else if (version > 1) this.#deps.log.info({ api_name: api.name, generation: version, project: projectDir }, 'project files changed: new jobs use a fresh pool');
    void this.#check(api.name, version, { projectDir, handlerPath: options.handler, env, python: options.python });
    return entry;
  }

  /** Checks a new pool's project; the result stands for the API while that pool is its newest. */
  async #check(api: string, version: number, input: Parameters<typeof checkProject>[0]): Promise<void> {
    this.#health.set(api, { state: 'checking' });
    const error = await checkProject(input).catch((err: unknown) => ({ name: 'Error', code: ErrorCodes.INTERNAL, message: `checking the project failed: ${(err as Error).message}` }));
    if (this.#latest.get(api) !== undefined && version < this.#latest.get(api)!) return;
    if (!this.#apis.has(api)) return;
    if (error === null) {
      this.#health.set(api, { state: 'ok' });
      return;
    }
    this.#health.set(api, { state: 'unhealthy', error });
    this.#deps.log.error({ api_name: api, project: input.projectDir, error: { code: error.code, message: error.message } }, 'API unhealthy: its handler cannot be loaded; its jobs will fail as worker_error until the project is fixed (then SIGHUP)');
  }
}
