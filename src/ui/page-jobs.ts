/** The jobs page: filters, status counts, one page of jobs newest first, a pager. */
import { compactTime, count, duration, html, layout, pct, type Html } from './html.js';
import { STATUS_FILTERS, type JobPage, type JobQuery, type StatusFilter } from './job-cache.js';
import type { JobRow } from './rows.js';
import { table, type Row, type TableData } from './table.js';

export const JOB_COLUMNS: ReadonlyArray<string | [string, string]> = [
  'Job',
  'Status',
  ['Progress', 'progress'],
  ['Succeeded', 'num'],
  ['Failed', 'num'],
  ['Queued', 'num'],
  ['Running', 'num'],
  ['Priority', 'num'],
  'Started',
  'Ended',
  ['Duration', 'num'],
];

export function statusLabel(filter: StatusFilter): string {
  if (filter === '') return 'All';
  return filter.replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase());
}

export function jobHref(jobId: string): string {
  return `/jobs/${encodeURIComponent(jobId)}`;
}

export function jobRow(r: JobRow): Row {
  const num = (n: number, zeroMuted = true): { t: string; c: string } => ({ t: count(n), c: n === 0 && zeroMuted ? 'num muted' : 'num' });
  const failed = num(r.failed);
  if (r.failed > 0) failed.c = 'num bad';
  return {
    id: r.job_id,
    c: `job st-row-${r.status}`,
    cells: [
      { t: r.job_id, h: jobHref(r.job_id), c: 'mono id', sub: r.api_name },
      { t: r.status.replace(/_/g, ' '), badge: `st-${r.status}`, ...(r.paused ? { sub: 'paused' } : {}) },
      { t: `${pct(r.succeeded + r.failed, r.total)}`, bar: [r.succeeded, r.failed, r.total], c: 'progress', sub: `${count(r.succeeded + r.failed)} / ${count(r.total)} batches` },
      num(r.succeeded),
      failed,
      num(r.queued),
      { ...num(r.running), ...(r.running_daemons > 0 ? { title: `on ${r.running_daemons} daemon${r.running_daemons === 1 ? '' : 's'}` } : {}) },
      num(r.priority),
      { t: compactTime(r.start_time), c: 'time', title: r.start_time },
      { t: compactTime(r.end_time), c: 'time', title: r.end_time ?? '' },
      { t: duration(r.duration_ms), c: 'num' },
    ],
  };
}

export function jobTable(rows: JobRow[], anyJobs: boolean): TableData {
  return { rows: rows.map(jobRow), empty: anyJobs ? 'No job matches these filters.' : 'No jobs yet. Submit one with `jetbatch submit` or the client.' };
}

export function queryString(q: Pick<JobQuery, 'api' | 'status'> & { page?: number }): string {
  const p = new URLSearchParams();
  if (q.api !== '') p.set('api', q.api);
  if (q.status !== '') p.set('status', q.status);
  if (q.page !== undefined && q.page > 1) p.set('page', String(q.page));
  const s = p.toString();
  return s === '' ? '' : `?${s}`;
}

/** What app.js needs to redraw the page: the pager, counts and rows. */
export interface JobsPayload {
  page: number;
  pages: number;
  total: number;
  counts: Record<string, number>;
  table: TableData;
}

export function jobsPayload(page: JobPage, rows: JobRow[], anyJobs: boolean): JobsPayload {
  return { page: page.page, pages: page.pages, total: page.total, counts: page.counts, table: jobTable(rows, anyJobs) };
}

function pager(q: JobQuery, p: JobsPayload): Html {
  const link = (page: number, label: string, rel: string, enabled: boolean): Html =>
    enabled ? html`<a class="btn" rel="${rel}" href="/jobs${queryString({ ...q, page })}" data-page="${page}">${label}</a>` : html`<span class="btn disabled">${label}</span>`;
  return html`<nav class="pager" id="pager">
  ${link(1, '« First', 'first', p.page > 1)}${link(p.page - 1, '‹ Prev', 'prev', p.page > 1)}
  <span class="pos" id="pager-pos">Page ${count(p.page)} of ${count(p.pages)} · ${count(p.total)} job${p.total === 1 ? '' : 's'}</span>
  ${link(p.page + 1, 'Next ›', 'next', p.page < p.pages)}${link(p.pages, 'Last »', 'last', p.page < p.pages)}
</nav>`;
}

const CHIPS: StatusFilter[] = ['', 'active', 'running', 'pending', 'paused', 'succeeded', 'completed_with_failures', 'stopped', 'timed_out', 'worker_error'];

export function jobsPage(q: JobQuery, apis: string[], p: JobsPayload, tokenEnabled: boolean): Html {
  const option = (value: string, label: string, selected: boolean): Html => html`<option value="${value}"${selected ? html` selected` : ''}>${label}</option>`;
  const chips = CHIPS.map((f) => html`<a class="chip${q.status === f ? ' on' : ''} chip-${f === '' ? 'all' : f}" href="/jobs${queryString({ api: q.api, status: f })}" data-status="${f}">${statusLabel(f)} <b data-count="${f}">${count(p.counts[f] ?? 0)}</b></a>`);
  const body = html`<section class="head">
  <h1>Jobs</h1>
  <form class="filters" method="get" action="/jobs" id="filters">
    <label>API <select name="api">${option('', 'All APIs', q.api === '')}${apis.map((a) => option(a, a, a === q.api))}</select></label>
    <label>Status <select name="status">${STATUS_FILTERS.map((f) => option(f, statusLabel(f), f === q.status))}</select></label>
    <button type="submit" class="btn">Apply</button>
  </form>
</section>
<div class="chips" id="chips">${chips}</div>
${table('job-rows', JOB_COLUMNS, p.table, 'jobs')}
${pager(q, p)}`;
  return layout({ title: 'Jobs', page: 'jobs', tokenEnabled, data: { api: q.api, status: q.status, page: String(p.page) }, body });
}
