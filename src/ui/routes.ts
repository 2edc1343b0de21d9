/**
 * What each URL answers. Pages are HTML rendered on the server (they work without JavaScript); /api/… is JSON or
 * server-sent events for app.js; POST /api/jobs/:id/stop and /replay need the token (auth.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { JetbatchClient } from '../client/client.js';
import type { FleetContext } from '../fleet/context.js';
import { listDeployments } from '../fleet/deployments.js';
import { kvKeys } from '../fleet/kv-keys.js';
import { API_NAME_PATTERN, Buckets, JOB_ID_PATTERN, decodeJson } from '../fleet/protocol.js';
import { JetbatchError } from '../errors.js';
import type { ApiRecord, JobRecord } from '../types.js';
import { isTerminal } from '../types.js';
import type { Asset } from './assets.js';
import { checkMutation, checkRead } from './auth.js';
import { durationChart, throughputChart } from './charts.js';
import { chartData, deadLetterViews, resultViews, type ChartData } from './details.js';
import type { FleetCache } from './fleet-cache.js';
import { html, layout } from './html.js';
import { isStatusFilter, type JobCache, type JobQuery } from './job-cache.js';
import { fleetPage, fleetPayload, type FleetPayload } from './page-fleet.js';
import { deadLetterTable, jobPage, jobPayload, resultTable } from './page-job.js';
import { jobsPage, jobsPayload, type JobsPayload } from './page-jobs.js';
import type { StatusSource } from './rows.js';
import type { SseHub } from './sse.js';
import type { UiOptions } from './options.js';

export interface RouteContext {
  ctx: FleetContext;
  client: JetbatchClient;
  jobs: JobCache;
  fleet: FleetCache;
  statuses: StatusSource;
  sse: SseHub;
  options: UiOptions;
  assets: ReadonlyMap<string, Asset>;
  onError: (err: unknown) => void;
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export const PER_PAGE = 50;
const MAX_PER_PAGE = 500;

/** Removes user:password@ from URLs in a message: nothing about credentials reaches a page. */
export function scrub(message: string): string {
  return message.replace(/\/\/[^/\s@]+@/g, '//');
}

function send(res: ServerResponse, status: number, type: string, body: string | Buffer, extra: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store', ...extra });
  res.end(body);
}

const sendJson = (res: ServerResponse, status: number, value: unknown): void => send(res, status, 'application/json; charset=utf-8', JSON.stringify(value));

function parseQuery(url: URL): JobQuery {
  const api = url.searchParams.get('api') ?? '';
  const status = url.searchParams.get('status') ?? '';
  const page = Number(url.searchParams.get('page') ?? '1');
  const per = Number(url.searchParams.get('per') ?? String(PER_PAGE));
  if (api !== '' && !API_NAME_PATTERN.test(api)) throw new HttpError(400, `api: not an API name`);
  if (!isStatusFilter(status)) throw new HttpError(400, `status: not a job status`);
  if (!Number.isInteger(page) || page < 1) throw new HttpError(400, 'page: a whole number from 1');
  if (!Number.isInteger(per) || per < 1 || per > MAX_PER_PAGE) throw new HttpError(400, `per: a whole number from 1 to ${MAX_PER_PAGE}`);
  return { api, status, page, perPage: per };
}

const READY_WAIT_MS = 15_000;

export class Routes {
  readonly #r: RouteContext;
  readonly #charts = new Map<string, { at: number; terminal: boolean; data: Promise<ChartData> }>();

  constructor(r: RouteContext) {
    this.#r = r;
  }

  get #tokenEnabled(): boolean {
    return this.#r.options.token !== null;
  }

  async #ready(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#r.jobs.ready, new Promise((resolve) => (timer = setTimeout(resolve, READY_WAIT_MS)))]);
    clearTimeout(timer);
  }

  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const asset = /^\/assets\/([a-z.]+)$/.exec(path);
    if (asset !== null && method === 'GET') {
      const a = this.#r.assets.get(asset[1]!);
      if (a === undefined) throw new HttpError(404, 'no such file');
      // Assets are public: the login prompt must be able to style itself.
      send(res, 200, a.type, a.body, { 'Cache-Control': 'no-cache' });
      return;
    }
    if (path === '/healthz') return send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
    const post = /^\/api\/jobs\/([^/]+)\/(stop|replay)$/.exec(path);
    if (post !== null) {
      if (method !== 'POST') throw new HttpError(405, 'use POST');
      return this.#mutate(req, res, this.#jobId(post[1]!), post[2] as 'stop' | 'replay');
    }
    if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, 'only GET here');
    const read = checkRead(req, this.#r.options);
    if (!read.ok) {
      send(res, read.status, 'text/plain; charset=utf-8', `${read.message}\n`, read.basic === true ? { 'WWW-Authenticate': 'Basic realm="jetbatch", charset="UTF-8"' } : {});
      return;
    }
    if (path === '/' || path === '') {
      res.writeHead(302, { Location: '/jobs' }).end();
      return;
    }
    if (path === '/jobs') return this.#jobsPage(res, parseQuery(url));
    if (path === '/fleet') return send(res, 200, 'text/html; charset=utf-8', fleetPage(await this.#fleetPayload(), this.#tokenEnabled).text);
    if (path === '/api/jobs') return sendJson(res, 200, await this.#jobsPayload(parseQuery(url)));
    if (path === '/api/fleet') return sendJson(res, 200, await this.#fleetPayload());
    if (path === '/api/jobs/stream') {
      const q = parseQuery(url);
      await this.#ready();
      this.#r.sse.serve(req, res, {
        event: 'jobs',
        intervalMs: 1000,
        produce: async () => JSON.stringify(await this.#jobsPayload(q)),
        onError: this.#r.onError,
        subscribe: (wake) => this.#r.jobs.onChange(wake),
      });
      return;
    }
    let m = /^\/jobs\/([^/]+)$/.exec(path);
    if (m !== null) return this.#jobPage(res, this.#jobId(m[1]!));
    m = /^\/jobs\/([^/]+)\/chart\/(durations|throughput)\.svg$/.exec(path);
    if (m !== null) {
      const record = await this.#record(this.#jobId(m[1]!));
      const data = await this.#chart(record);
      return send(res, 200, 'image/svg+xml; charset=utf-8', m[2] === 'durations' ? durationChart(data) : throughputChart(data));
    }
    m = /^\/api\/jobs\/([^/]+)(\/stream|\/dead-letters)?$/.exec(path);
    if (m !== null) {
      const jobId = this.#jobId(m[1]!);
      if (m[2] === '/dead-letters') {
        const { letters, total } = await deadLetterViews(this.#r.ctx, await this.#record(jobId));
        return sendJson(res, 200, { total, table: deadLetterTable(letters, total) });
      }
      if (m[2] === '/stream') {
        await this.#record(jobId);
        this.#r.sse.serve(req, res, {
          event: 'job',
          intervalMs: 1000,
          produce: async () => {
            const record = this.#r.jobs.get(jobId);
            return record === undefined ? null : JSON.stringify(jobPayload(await this.#r.statuses.status(record)));
          },
          onError: this.#r.onError,
          subscribe: (wake) => this.#r.jobs.onChange((id) => id === jobId && wake()),
        });
        return;
      }
      return sendJson(res, 200, jobPayload(await this.#r.statuses.status(await this.#record(jobId))));
    }
    throw new HttpError(404, 'no such page');
  }

  #jobId(encoded: string): string {
    let id: string;
    try {
      id = decodeURIComponent(encoded);
    } catch {
      throw new HttpError(404, 'no such job');
    }
    if (!JOB_ID_PATTERN.test(id)) throw new HttpError(404, 'no such job');
    return id;
  }

  async #record(jobId: string): Promise<JobRecord> {
    await this.#ready();
    const cached = this.#r.jobs.get(jobId);
    if (cached !== undefined) return cached;
    // Created a moment ago and not seen by the watch yet: ask the registry.
    try {
      return await this.#r.client.record(jobId);
    } catch (err) {
      if (err instanceof JetbatchError && err.code === 'JB_JOB_NOT_FOUND') throw new HttpError(404, `job ${jobId} not found`);
      throw err;
    }
  }

  async #jobsPayload(q: JobQuery): Promise<JobsPayload> {
    await this.#ready();
    const page = this.#r.jobs.query(q);
    return jobsPayload(page, await this.#r.statuses.rows(page.records), this.#r.jobs.size > 0);
  }

  async #jobsPage(res: ServerResponse, q: JobQuery): Promise<void> {
    const payload = await this.#jobsPayload(q);
    send(res, 200, 'text/html; charset=utf-8', jobsPage({ ...q, page: payload.page }, this.#r.jobs.apis(), payload, this.#tokenEnabled).text);
  }

  async #jobPage(res: ServerResponse, jobId: string): Promise<void> {
    const record = await this.#record(jobId);
    const [status, dlq, results] = await Promise.all([this.#r.statuses.status(record), deadLetterViews(this.#r.ctx, record), resultViews(this.#r.ctx, record)]);
    const page = jobPage({
      record,
      status,
      deadLetters: deadLetterTable(dlq.letters, dlq.total),
      deadLetterCount: dlq.total,
      results: resultTable(results.results, results.total),
      resultCount: results.total,
      tokenEnabled: this.#tokenEnabled,
    });
    send(res, 200, 'text/html; charset=utf-8', page.text);
  }

  /** Chart data per job: re-read at most every 4 s while the job runs, kept 10 minutes once it ended. */
  #chart(record: JobRecord): Promise<ChartData> {
    const now = performance.now();
    const terminal = isTerminal(record.status);
    const hit = this.#charts.get(record.job_id);
    if (hit !== undefined && hit.terminal === terminal && now - hit.at < (terminal ? 600_000 : 4000)) return hit.data;
    const data = chartData(this.#r.ctx, record);
    this.#charts.set(record.job_id, { at: now, terminal, data });
    data.catch(() => this.#charts.delete(record.job_id));
    if (this.#charts.size > 50) this.#charts.delete(this.#charts.keys().next().value!);
    return data;
  }

  async #fleetPayload(): Promise<FleetPayload> {
    await this.#ready();
    const { ctx } = this.#r;
    const readApis = async (): Promise<ApiRecord[]> => {
      const out: ApiRecord[] = [];
      for (const k of await kvKeys(ctx, Buckets.apis)) {
        const e = await ctx.apis.get(k);
        if (e !== null && e.operation === 'PUT' && e.value.length > 0) out.push(decodeJson(e.value) as ApiRecord);
      }
      return out;
    };
    const [apis, deployments] = await Promise.all([readApis(), listDeployments(ctx)]);
    const jobs = this.#r.jobs.query({ api: '', status: 'active', page: 1, perPage: Number.MAX_SAFE_INTEGER }).records;
    return fleetPayload({ apis, deployments, daemons: this.#r.fleet.daemons(), jobs });
  }

  async #mutate(req: IncomingMessage, res: ServerResponse, jobId: string, action: 'stop' | 'replay'): Promise<void> {
    const verdict = checkMutation(req, this.#r.options);
    if (!verdict.ok) return sendJson(res, verdict.status, { ok: false, error: { message: verdict.message } });
    req.resume(); // No body is read: everything is in the URL.
    try {
      if (action === 'stop') {
        const record = await this.#r.client.stop(jobId);
        return sendJson(res, 200, { ok: true, message: `job ${record.job_id} is ${record.status}`, job: record });
      }
      const { record, replayed } = await this.#r.client.replayDeadLetters(jobId);
      return sendJson(res, 200, { ok: true, message: `replayed ${replayed} dead-lettered batch${replayed === 1 ? '' : 'es'}; job is ${record.status}`, job: record });
    } catch (err) {
      if (err instanceof JetbatchError) return sendJson(res, err.code === 'JB_JOB_NOT_FOUND' ? 404 : 409, { ok: false, error: { code: err.code, message: scrub(err.message) } });
      throw err;
    }
  }
}

/** The error page (HTML) or JSON error for /api/…, escaped like everything else. */
export function sendError(res: ServerResponse, url: URL, status: number, message: string, tokenEnabled: boolean): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (url.pathname.startsWith('/api/')) return sendJson(res, status, { ok: false, error: { message: scrub(message) } });
  const body = html`<section class="head"><h1>${String(status)}</h1></section><section class="card"><p class="error-box">${scrub(message)}</p><p><a href="/jobs">Back to the jobs</a></p></section>`;
  send(res, status, 'text/html; charset=utf-8', layout({ title: String(status), page: 'error', tokenEnabled, body }).text);
}
