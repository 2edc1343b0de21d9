/** A job's page: live progress, charts, dead letters, results, config and spec, stop and replay. */
import { isTerminal, type JobRecord, type JobStatus } from '../types.js';
import type { DeadLetterView, ResultView } from './details.js';
import { count, duration, html, layout, pct, progressBar, shortTime, type Html } from './html.js';
import { rowOf } from './rows.js';
import { table, type TableData } from './table.js';

/** Statuses a replay accepts (client/dead-letters.ts). */
const REPLAYABLE = new Set(['pending', 'running', 'completed_with_failures', 'worker_oom']);

/** What the job page's stream sends each time something changed; app.js writes `fields` into [data-f]. */
export interface JobPayload {
  status: string;
  terminal: boolean;
  paused: boolean;
  bar: [number, number, number];
  failed: number;
  fields: Record<string, string>;
  actions: { stop: boolean; replay: boolean };
}

export function jobPayload(s: JobStatus): JobPayload {
  const r = rowOf(s);
  const terminal = isTerminal(s.status);
  return {
    status: s.status,
    terminal,
    paused: r.paused,
    bar: [r.succeeded, r.failed, r.total],
    failed: r.failed,
    fields: {
      status: s.status.replace(/_/g, ' '),
      pct: pct(r.succeeded + r.failed, r.total),
      done: `${count(r.succeeded + r.failed)} of ${count(r.total)} batches`,
      succeeded: count(r.succeeded),
      failed: count(r.failed),
      queued: count(r.queued),
      running: count(r.running),
      running_on: r.running > 0 ? `on ${r.running_daemons} daemon${r.running_daemons === 1 ? '' : 's'}` : terminal ? 'ended' : 'none right now',
      avg: r.avg_s === null ? '–' : duration(r.avg_s * 1000),
      start: shortTime(s.start_time),
      end: shortTime(s.end_time) || '–',
      duration: duration(r.duration_ms),
      error: s.error === undefined ? '' : `${s.error.code ?? s.error.name}: ${s.error.message}`,
      paused: r.paused ? `paused since ${shortTime(s.paused_at)}` : '',
    },
    actions: { stop: !terminal, replay: r.failed > 0 && REPLAYABLE.has(s.status) },
  };
}

export function deadLetterTable(letters: DeadLetterView[], total: number): TableData {
  return {
    empty: 'No dead letters.',
    rows: letters.map((l) => ({
      id: l.batch_id,
      cells: [
        { t: l.batch_id, c: 'mono' },
        { t: `${l.error.code ?? l.error.name}: ${l.error.message}`, c: 'error-text', ...(l.error.stack !== undefined ? { title: l.error.stack } : {}) },
        { t: count(l.attempts), c: 'num' },
        { t: shortTime(l.failed_at), c: 'time', title: l.failed_at, sub: l.host },
        { t: l.payload, code: true, c: 'payload' },
      ],
    })).concat(total > letters.length ? [{ id: '', cells: [{ t: `… and ${count(total - letters.length)} more (jetbatch dlq JOB --json lists them all)`, c: 'muted' }] }] : []),
  };
}

export function resultTable(results: ResultView[], total: number): TableData {
  return {
    empty: 'No results stored (yet): batches whose handleBatch returns a value store one.',
    rows: results
      .map((r) => ({ id: r.batch_id, cells: [{ t: r.batch_id, c: 'mono' }, { t: duration(r.duration_ms), c: 'num' }, { t: count(r.attempt), c: 'num' }, { t: r.result, code: true, c: 'payload' }] }))
      .concat(total > results.length ? [{ id: '', cells: [{ t: `… ${count(total - results.length)} more (jetbatch results JOB)`, c: 'muted' }] }] : []),
  };
}

function spec(record: JobRecord): Array<[string, string]> {
  const opt = (v: number | null | undefined, unit = ''): string => (v === null || v === undefined ? 'default' : `${v}${unit}`);
  const rows: Array<[string, string]> = [
    ['API', record.api_name],
    ['Workers (batches in flight, fleet-wide)', String(record.workers)],
    ['Priority', String(record.priority ?? 0)],
    ['Batches', count(record.total_batch_count)],
    ['Job timeout', record.timeout === null ? 'none' : `${record.timeout} s`],
    ['Batch timeout', opt(record.batch_timeout, ' s')],
    ['Max attempts', opt(record.max_attempts)],
    ['Backoff', record.backoff === null ? 'default' : JSON.stringify(record.backoff)],
    ['Project version', record.project_version == null ? 'local / latest' : `v${record.project_version}`],
    ['Submitted', record.start_time],
    ['Enqueue deadline', record.enqueue_deadline],
    ['Completion round', String(record.round ?? 0)],
    ['Spec hash', record.spec_hash],
  ];
  if (record.completion !== null) {
    const c = record.completion;
    rows.push(['Completed by', `${c.claimed_by} (attempt ${c.attempt}${c.rerun ? ', hook rerun' : ''})`]);
  }
  return rows;
}

export interface JobPageData {
  record: JobRecord;
  status: JobStatus;
  deadLetters: TableData;
  deadLetterCount: number;
  results: TableData;
  resultCount: number;
  tokenEnabled: boolean;
}

export function jobPage(d: JobPageData): Html {
  const p = jobPayload(d.status);
  const id = d.record.job_id;
  const f = (name: string, cls = ''): Html => html`<span data-f="${name}"${cls === '' ? '' : html` class="${cls}"`}>${p.fields[name] ?? ''}</span>`;
  const stat = (label: string, name: string, sub?: Html, cls = ''): Html => html`<div class="stat stat-${name}"><div class="label">${label}</div><div class="value${cls === '' ? '' : ` ${cls}`}">${f(name)}</div>${sub ?? ''}</div>`;
  const disabledWhy = d.tokenEnabled ? '' : html` title="read-only: start jetbatch ui with --token to enable"`;
  const chartSrc = (kind: string): string => `/jobs/${encodeURIComponent(id)}/chart/${kind}.svg`;
  const body = html`<section class="head job-head">
  <div>
    <div class="crumbs"><a href="/jobs">Jobs</a> / <a href="/jobs?api=${encodeURIComponent(d.record.api_name)}">${d.record.api_name}</a></div>
    <h1 class="mono" id="job-id">${id}</h1>
  </div>
  <span id="status-badge" class="badge big st-${p.status}">${f('status')}</span>
  <span id="paused" class="badge big st-paused"${p.paused ? '' : html` hidden`}>${f('paused')}</span>
  <span class="spacer"></span>
  <div class="actions">
    <button type="button" class="btn danger" id="btn-stop" data-action="stop"${p.actions.stop && d.tokenEnabled ? '' : html` disabled`}${disabledWhy}>Stop job</button>
    <button type="button" class="btn" id="btn-replay" data-action="replay"${p.actions.replay && d.tokenEnabled ? '' : html` disabled`}${disabledWhy}>Replay dead letters</button>
  </div>
</section>
<p id="action-msg" class="action-msg" role="status" hidden></p>
<section class="card progress-card">
  <div class="progress-line"><span class="pct">${f('pct')}</span><span id="job-bar" class="bar-wrap">${progressBar(...p.bar)}</span><span class="muted">${f('done')}</span></div>
  <div class="stats">
    ${stat('Succeeded', 'succeeded')}${stat('Failed', 'failed')}${stat('Queued', 'queued')}
    ${stat('Running now', 'running', html`<div class="sub">${f('running_on')}</div>`)}${stat('Avg batch', 'avg')}
    ${stat('Started (UTC)', 'start', undefined, 'time')}${stat('Ended (UTC)', 'end', undefined, 'time')}${stat('Duration', 'duration')}
  </div>
  <p class="error-box" id="job-error"${p.fields.error === '' ? html` hidden` : ''}>${f('error')}</p>
</section>
<section class="charts">
  <figure class="card"><img id="chart-durations" src="${chartSrc('durations')}" alt="histogram of batch durations" width="520" height="170"></figure>
  <figure class="card"><img id="chart-throughput" src="${chartSrc('throughput')}" alt="batches finished per second over time" width="520" height="170"></figure>
</section>
<section class="card">
  <h2>Dead letters <span class="count" data-f="failed">${p.fields.failed ?? ''}</span></h2>
  ${table('dead-letters', ['Batch', 'Error', ['Attempts', 'num'], 'Failed at (UTC)', 'Payload'], d.deadLetters, 'dlq')}
</section>
<section class="card">
  <h2>Results <span class="count">${count(d.resultCount)}</span></h2>
  ${table('results', ['Batch', ['Duration', 'num'], ['Attempt', 'num'], 'Result'], d.results, 'results')}
</section>
<section class="two">
  <div class="card"><h2>Config</h2><pre class="json" id="job-config">${JSON.stringify(d.record.config, null, 2)}</pre></div>
  <div class="card"><h2>Spec</h2><dl class="spec">${spec(d.record).map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl></div>
</section>`;
  return layout({ title: id, page: 'job', tokenEnabled: d.tokenEnabled, data: { job: id, terminal: p.terminal ? 'yes' : 'no' }, body });
}
