/**
 * The daemon configuration: YAML file → schema validation (every bad key named) → defaults → frozen options.
 * Paths in the file are relative to the file. Environment is read here and nowhere else in the daemon.
 */
import { readFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import type { NatsOptions } from '../fleet/connect.js';
import { parseServerUrls } from '../fleet/server-url.js';
import { parseDuration } from '../util/duration.js';
import { ErrorCodes, JetbatchError } from '../errors.js';
import { API_NAME_PATTERN } from '../fleet/protocol.js';
import { formatIssues } from '../fleet/submission.js';
import type { BackoffOptions } from '../types.js';
import type { S3Settings } from '../stores/s3-config.js';

const duration = z.union([z.string(), z.number().nonnegative()]).transform((v, ctx) => {
  try {
    return parseDuration(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

const levels = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

const backoff = z
  .object({
    initial: duration.default(1000),
    factor: z.number().min(1).max(100).default(2),
    max: duration.default(60_000),
    jitter: z.number().min(0).max(1).default(0.2),
  })
  .strict();

const apiSchema = z
  .object({
    name: z.string().regex(API_NAME_PATTERN, `must match ${API_NAME_PATTERN.source}`),
    /** Folder of the handler project on this host. */
    project: z.string().min(1).optional(),
    /** Serve the project deployed to the fleet with `jetbatch deploy` instead of a local folder. */
    deployed: z.boolean().default(false),
    handler: z.string().min(1).optional(),
    /**
     * Interpreter of a Python handler (handler.py): a command on PATH (`python3`, the default) or a path, relative
     * to the project (a virtualenv's `.venv/bin/python`).
     */
    python: z.string().min(1).optional(),
    threads: z.number().int().min(1).max(256).optional(),
    /** Batches one thread runs at once (for async, I/O-bound handlers). */
    concurrency: z.number().int().min(1).max(1024).default(1),
    config: z.record(z.string(), z.unknown()).default({}),
    batch_timeout: duration.default(600_000),
    /** Extra time the first batch of a job on a thread gets for loading and constructing the handler. */
    init_timeout: duration.default(600_000),
    max_attempts: z.number().int().min(1).max(1000).default(3),
    backoff: backoff.default({ initial: 1000, factor: 2, max: 60_000, jitter: 0.2 }),
    memory_limit_mb: z.number().int().min(16).optional(),
    gpus: z.array(z.number().int().min(0)).optional(),
    log_level: levels.optional(),
  })
  .strict()
  .superRefine((a, ctx) => {
    if ((a.project === undefined) === !a.deployed) {
      ctx.addIssue({ code: 'custom', message: 'give either project (a folder) or deployed: true', path: ['project'] });
    }
  });

const tls = z.object({ ca: z.string().optional(), cert: z.string().optional(), key: z.string().optional() }).strict();

const natsSchema = z
  .object({
    servers: z.array(z.string().min(1)).min(1).default(['nats://127.0.0.1:4222']),
    user: z.string().optional(),
    pass: z.string().optional(),
    token: z.string().optional(),
    nkey_seed_file: z.string().optional(),
    creds_file: z.string().optional(),
    tls: tls.optional(),
    name: z.string().optional(),
  })
  .strict();

/** Settings of `s3://` stores; what is unset comes from the AWS environment variables (src/stores/s3-config.ts). */
const s3Schema = z
  .object({
    endpoint: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).optional(),
    region: z.string().min(1).optional(),
    force_path_style: z.boolean().optional(),
    access_key_id: z.string().min(1).optional(),
    secret_access_key: z.string().min(1).optional(),
  })
  .strict()
  .refine((s) => (s.access_key_id === undefined) === (s.secret_access_key === undefined), {
    message: 'give both access_key_id and secret_access_key, or neither',
  });

const configSchema = z
  .object({
    nats: natsSchema.default({ servers: ['nats://127.0.0.1:4222'] }),
    apis: z.array(apiSchema).min(1, 'list at least one API'),
    metrics: z
      .object({ listen: z.string().regex(/^.+:\d+$/, 'must be host:port').default('127.0.0.1:9464'), enabled: z.boolean().default(true) })
      .strict()
      .default({ listen: '127.0.0.1:9464', enabled: true }),
    log_level: levels.default('info'),
    /** Where deployed projects are unpacked (systemd's StateDirectory when set). */
    state_dir: z.string().min(1).optional(),
    /** Log lines longer than this (bytes) are replaced by a warning line. */
    log_max_line_bytes: z.number().int().min(1024).default(5 * 1024 * 1024),
    shutdown_grace: duration.default(30_000),
    /** JetStream ack wait of job consumers: how soon a dead daemon's batches are redelivered. */
    lease: duration.default(30_000),
    /**
     * A daemon whose heartbeat has not changed for this long counts as gone: only then is its completion claim
     * taken over. Heartbeats are written every fifth of it.
     */
    presence_timeout: duration.default(30_000),
    /** How often each daemon checks its active jobs for completion and timeouts. */
    check_interval: duration.default(2000),
    retention: z
      .object({
        results: duration.default(7 * 86_400_000),
        dead_letters: duration.default(30 * 86_400_000),
        events: duration.default(7 * 86_400_000),
        jobs: duration.default(30 * 86_400_000),
      })
      .strict()
      .default({ results: 7 * 86_400_000, dead_letters: 30 * 86_400_000, events: 7 * 86_400_000, jobs: 30 * 86_400_000 }),
    /** JetStream replicas for every stream and bucket jetbatch creates (3 on a cluster). */
    replicas: z.number().int().min(1).max(5).default(1),
    /** `s3://` stores (job inputs and outputs); every key optional. */
    s3: s3Schema.default({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    const seen = new Set<string>();
    c.apis.forEach((api, i) => {
      if (seen.has(api.name)) ctx.addIssue({ code: 'custom', message: `duplicate API name "${api.name}"`, path: ['apis', i, 'name'] });
      seen.add(api.name);
    });
  });

export interface ApiOptions {
  readonly name: string;
  /** Absolute path of the project folder ('' for a deployed API until a version is loaded). */
  readonly project: string;
  /** The handler module: absolute for a local project, relative to the project for a deployed one. */
  readonly handler: string | undefined;
  /** Served from `jetbatch deploy` versions rather than a local folder. */
  readonly deployed: boolean;
  /**
   * Interpreter of a Python handler: a bare command name (looked up on PATH), or a path — absolute for a local
   * project, relative to the project for a deployed one.
   */
  readonly python: string;
  readonly threads: number;
  readonly concurrency: number;
  readonly config: Readonly<Record<string, unknown>>;
  readonly batchTimeoutMs: number;
  readonly initTimeoutMs: number;
  readonly maxAttempts: number;
  readonly backoff: Readonly<BackoffOptions>;
  readonly memoryLimitMb: number | undefined;
  readonly gpus: readonly number[];
  readonly logLevel: string;
}

export interface DaemonOptions {
  readonly configFile: string;
  readonly stateDir: string;
  readonly nats: Readonly<NatsOptions>;
  readonly apis: readonly ApiOptions[];
  readonly metrics: { readonly listen: string; readonly enabled: boolean };
  readonly logLevel: string;
  readonly logMaxLineBytes: number;
  readonly shutdownGraceMs: number;
  readonly leaseMs: number;
  readonly presenceTimeoutMs: number;
  readonly checkIntervalMs: number;
  readonly retentionMs: { readonly results: number; readonly deadLetters: number; readonly events: number; readonly jobs: number };
  readonly replicas: number;
  /** The config's `s3` section (`{}` when absent): pass it as `StoreDeps.s3`. */
  readonly s3: S3Settings;
  /** The daemon's environment when the configuration was read; worker threads get it plus the project's `.env`. */
  readonly environment: Readonly<Record<string, string>>;
}

export interface Overrides {
  servers?: string[];
}

export async function loadConfig(file: string, overrides: Overrides = {}): Promise<DaemonOptions> {
  const path = resolve(file);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new JetbatchError(ErrorCodes.INVALID_CONFIG, `cannot read config file ${path}: ${(err as Error).message}`, { cause: err });
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new JetbatchError(ErrorCodes.INVALID_CONFIG, `${path} is not valid YAML: ${(err as Error).message}`, { cause: err });
  }
  return parseConfig(raw, path, overrides);
}

export function parseConfig(raw: unknown, configFile: string, overrides: Overrides = {}): DaemonOptions {
  const parsed = configSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const details = formatIssues(parsed.error, '(config)');
    throw new JetbatchError(ErrorCodes.INVALID_CONFIG, `invalid config ${configFile}:\n  ${details.join('\n  ')}`, { details });
  }
  const c = parsed.data;
  const base = dirname(configFile);
  const rel = (p: string | undefined): string | undefined => (p === undefined ? undefined : resolve(base, p));
  const nats: NatsOptions = { servers: overrides.servers ?? c.nats.servers };
  try {
    // Credentials in the URLs are used at connect time; a list carrying two different sets is a config error now.
    parseServerUrls(nats.servers);
  } catch (err) {
    const where = overrides.servers === undefined ? 'nats.servers' : '--server';
    throw new JetbatchError(ErrorCodes.INVALID_CONFIG, `invalid config ${configFile}: ${where}: ${(err as Error).message}`, { cause: err });
  }
  if (c.nats.user !== undefined) nats.user = c.nats.user;
  if (c.nats.pass !== undefined) nats.pass = c.nats.pass;
  if (c.nats.token !== undefined) nats.token = c.nats.token;
  if (c.nats.name !== undefined) nats.name = c.nats.name;
  const seed = rel(c.nats.nkey_seed_file);
  if (seed !== undefined) nats.nkey_seed_file = seed;
  const creds = rel(c.nats.creds_file);
  if (creds !== undefined) nats.creds_file = creds;
  if (c.nats.tls !== undefined) {
    const t: NonNullable<NatsOptions['tls']> = {};
    const ca = rel(c.nats.tls.ca);
    const cert = rel(c.nats.tls.cert);
    const key = rel(c.nats.tls.key);
    if (ca !== undefined) t.ca = ca;
    if (cert !== undefined) t.cert = cert;
    if (key !== undefined) t.key = key;
    nats.tls = t;
  }
  const apis: ApiOptions[] = c.apis.map((a) => {
    const project = a.project === undefined ? '' : resolve(base, a.project);
    return {
      name: a.name,
      project,
      deployed: a.deployed,
      handler: a.handler === undefined ? undefined : a.deployed ? a.handler : resolve(project, a.handler),
      python: pythonPath(a.python ?? 'python3', a.deployed ? undefined : project),
      threads: a.threads ?? (a.gpus && a.gpus.length > 0 ? a.gpus.length : Math.max(1, cpus().length)),
      concurrency: a.concurrency,
      config: a.config,
      batchTimeoutMs: a.batch_timeout,
      initTimeoutMs: a.init_timeout,
      maxAttempts: a.max_attempts,
      backoff: {
        initial_ms: a.backoff.initial,
        factor: a.backoff.factor,
        max_ms: a.backoff.max,
        jitter: a.backoff.jitter,
      },
      memoryLimitMb: a.memory_limit_mb,
      gpus: a.gpus ?? [],
      logLevel: a.log_level ?? c.log_level,
    };
  });
  return deepFreeze({
    configFile,
    stateDir: resolve(base, c.state_dir ?? process.env.STATE_DIRECTORY?.split(':')[0] ?? 'state'),
    nats,
    apis,
    metrics: c.metrics,
    logLevel: c.log_level,
    logMaxLineBytes: c.log_max_line_bytes,
    shutdownGraceMs: c.shutdown_grace,
    leaseMs: Math.max(1000, c.lease),
    presenceTimeoutMs: Math.max(2000, c.presence_timeout),
    checkIntervalMs: Math.max(100, c.check_interval),
    retentionMs: {
      results: c.retention.results,
      deadLetters: c.retention.dead_letters,
      events: c.retention.events,
      jobs: c.retention.jobs,
    },
    replicas: c.replicas,
    s3: c.s3,
    environment: Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined)),
  });
}

/** A bare command stays a command (looked up on PATH); a path is resolved against the project when there is one. */
export function pythonPath(python: string, projectDir: string | undefined): string {
  if (!python.includes('/') || projectDir === undefined) return python;
  return resolve(projectDir, python);
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
