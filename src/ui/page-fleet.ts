/** The fleet page: every API with what serves it now, and every daemon, live or gone. */
import type { Deployment } from '../fleet/deployments.js';
import type { ApiRecord, ErrorInfo, JobRecord } from '../types.js';
import { API_STALE_MS, isTerminal } from '../types.js';
import type { DaemonView } from './fleet-cache.js';
import { count, duration, html, layout, shortTime, type Html } from './html.js';
import { table, type TableData } from './table.js';

export interface FleetInput {
  apis: ApiRecord[];
  deployments: Deployment[];
  daemons: DaemonView[];
  jobs: Iterable<JobRecord>;
}

export interface FleetPayload {
  apis: TableData;
  daemons: TableData;
  summary: { live: number; gone: number; apis: number; lanes: number; running: number };
}

const sum = (values: Iterable<unknown>): number => {
  let n = 0;
  for (const v of values) if (typeof v === 'number' && v > 0) n += v;
  return n;
};

export function fleetPayload(input: FleetInput, now = Date.now()): FleetPayload {
  const apiOfJob = new Map<string, string>();
  const activeByApi = new Map<string, number>();
  for (const j of input.jobs) {
    apiOfJob.set(j.job_id, j.api_name);
    if (!isTerminal(j.status)) activeByApi.set(j.api_name, (activeByApi.get(j.api_name) ?? 0) + 1);
  }
  const live = input.daemons.filter((d) => d.state === 'live' && d.record !== null);
  const names = new Set([...input.apis.map((a) => a.api_name), ...input.deployments.map((d) => d.api_name), ...live.flatMap((d) => Object.keys(d.record!.lanes ?? {}))]);
  const apiRows = [...names].sort().map((name) => {
    const serving = live.filter((d) => (d.record!.lanes?.[name] ?? 0) > 0 || (d.record!.apis ?? []).includes(name));
    const lanes = sum(serving.map((d) => d.record!.lanes?.[name]));
    let inFlight = 0;
    for (const d of serving) for (const [job, n] of Object.entries(d.record!.running ?? {})) if (apiOfJob.get(job) === name && typeof n === 'number' && n > 0) inFlight += n;
    const errors = serving.map((d) => d.record!.unhealthy?.[name]).filter((e): e is ErrorInfo => e !== undefined && e !== null && typeof e === 'object');
    const registration = input.apis.find((a) => a.api_name === name);
    const deployed = input.deployments.find((d) => d.api_name === name);
    const stale = registration === undefined || now - Date.parse(registration.last_seen) > API_STALE_MS;
    const health =
      errors.length > 0
        ? { t: `unhealthy on ${errors.length} of ${serving.length}`, badge: 'st-worker_error', sub: `${errors[0]!.code ?? errors[0]!.name}: ${errors[0]!.message.split('\n')[0]}` }
        : serving.length > 0
          ? { t: 'serving', badge: 'st-succeeded' }
          : { t: stale ? 'no daemon' : 'no live daemon', badge: 'st-stopped' };
    return {
      id: name,
      cells: [
        { t: name, h: `/jobs?api=${encodeURIComponent(name)}`, c: 'mono' },
        health,
        { t: count(serving.length), c: serving.length === 0 ? 'num muted' : 'num' },
        { t: count(lanes), c: 'num' },
        { t: count(inFlight), c: inFlight === 0 ? 'num muted' : 'num' },
        { t: count(activeByApi.get(name) ?? 0), c: 'num' },
        deployed === undefined ? { t: 'local project', c: 'muted' } : { t: `v${deployed.version}`, sub: shortTime(deployed.deployed_at), title: deployed.sha256 },
        { t: shortTime(registration?.last_seen), c: 'time', title: registration === undefined ? '' : `written by ${registration.daemon}` },
      ],
    };
  });
  const daemonRows = input.daemons.map((d) => {
    const r = d.record;
    const lanes = r?.lanes ?? {};
    const running = sum(Object.values(r?.running ?? {}));
    const state =
      d.state === 'live'
        ? { t: 'live', badge: 'st-succeeded', sub: d.silentMs === null ? '' : `beat ${duration(d.silentMs)} ago` }
        : { t: `gone: ${d.reason ?? ''}`, badge: 'st-stopped', ...(d.silentMs !== null ? { sub: `silent for ${duration(d.silentMs)}` } : {}) };
    const unhealthy = Object.keys(r?.unhealthy ?? {});
    return {
      id: d.id,
      c: d.state === 'gone' ? 'gone' : 'live',
      cells: [
        { t: d.id, c: 'mono' },
        state,
        { t: r?.host ?? '?', sub: r?.pid === undefined ? '' : `pid ${r.pid}` },
        { t: (r?.apis ?? Object.keys(lanes)).join(', ') || '–', ...(unhealthy.length > 0 ? { sub: `cannot load: ${unhealthy.join(', ')}`, c: 'bad' } : {}) },
        { t: count(sum(Object.values(lanes))), c: 'num' },
        { t: count(d.state === 'live' ? running : 0), c: 'num' },
        { t: shortTime(r?.started), c: 'time', title: r?.started ?? '' },
        { t: shortTime(r?.last_seen), c: 'time', title: r?.last_seen ?? '' },
      ],
    };
  });
  return {
    apis: { rows: apiRows, empty: 'No API registered yet: start a daemon (`jetbatch start --config …`).' },
    daemons: { rows: daemonRows, empty: 'No daemon has written a heartbeat.' },
    summary: {
      live: live.length,
      gone: input.daemons.length - live.length,
      apis: names.size,
      lanes: sum(live.flatMap((d) => Object.values(d.record!.lanes ?? {}))),
      running: sum(live.flatMap((d) => Object.values(d.record!.running ?? {}))),
    },
  };
}

export function fleetPage(p: FleetPayload, tokenEnabled: boolean): Html {
  const s = (label: string, name: keyof FleetPayload['summary']): Html => html`<div class="stat"><div class="label">${label}</div><div class="value" data-f="${name}">${count(p.summary[name])}</div></div>`;
  const body = html`<section class="head"><h1>Fleet</h1></section>
<section class="card"><div class="stats">${s('Live daemons', 'live')}${s('Gone', 'gone')}${s('APIs', 'apis')}${s('Threads', 'lanes')}${s('Batches in flight', 'running')}</div></section>
<section class="card"><h2>APIs</h2>
${table('fleet-apis', ['API', 'Health', ['Live daemons', 'num'], ['Threads', 'num'], ['In flight', 'num'], ['Active jobs', 'num'], 'Deployed', 'Last seen (UTC)'], p.apis, 'fleet')}
</section>
<section class="card"><h2>Daemons</h2>
${table('fleet-daemons', ['Daemon', 'State', 'Host', 'APIs', ['Threads', 'num'], ['Running', 'num'], 'Started (UTC)', 'Last heartbeat (UTC)'], p.daemons, 'fleet')}
</section>`;
  return layout({ title: 'Fleet', page: 'fleet', tokenEnabled, body });
}
