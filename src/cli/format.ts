/** How the CLI shows a job status to a person: one line per job, and the details `jetbatch status` adds. */
import type { ErrorInfo, JobStatus, JobStatusName } from '../types.js';
import { isTerminal } from '../types.js';

/**
 * The status word, with ` (paused)` on an active job that is paused: pausing is not a status of its own (a paused job
 * stays `running` or `pending`), but someone reading a list must see at once why a job does not move. An ended job
 * keeps its `paused_at` (a paused job can be stopped), which no longer matters.
 */
export function statusLabel(s: JobStatus): string {
  return isPaused(s) ? `${s.status} (paused)` : s.status;
}

function isPaused(s: JobStatus): boolean {
  return s.paused_at !== null && !isTerminal(s.status);
}

/**
 * One line per job (`jobs`, `status`, the end of `submit --wait`). Priority is always shown, so the lines of a list
 * line up; the batches running now only while the job is active (an ended job runs none).
 */
export function statusLine(s: JobStatus): string {
  const m = s.batch_metrics;
  const avg = m.avg_time_per_batch === null ? '-' : `${m.avg_time_per_batch.toFixed(3)}s`;
  const running = isTerminal(s.status) ? '' : ` running=${s.running_batches}`;
  const c = s.completion;
  // Who completes (or completed) the job, when it is under way or was taken over.
  const claim = c !== undefined && (s.status === 'completing' || c.attempt > 1) ? `  claim=${c.claimed_by} attempt=${c.attempt}${c.rerun ? ' rerun' : ''}` : '';
  const ended = s.end_time ? `  ended=${s.end_time}` : '';
  return (
    `${s.job_id}  ${s.api_name}  ${statusLabel(s)}  priority=${s.priority}  ` +
    `succeeded=${m.succeeded} failed=${m.failed} in_queue=${s.batches_in_queue} total=${s.total_batch_count}${running} avg=${avg}  ` +
    `started=${s.start_time}${ended}${claim}`
  );
}

/**
 * What `jetbatch status JOB` and the end of `submit --wait` / `status --watch` show below the line: for an active job
 * since when it is paused and what runs now; for an ended one why it failed and where its failed batches are.
 */
export function statusDetails(s: JobStatus, now = Date.now()): string[] {
  // The error first; what to do about failed batches last.
  if (isTerminal(s.status)) return [...errorDetails(s), ...inputDetails(s), ...resultDetails(s), ...deadLetterHint(s)];
  const out: string[] = [];
  if (s.status === 'enqueuing' && s.enqueue !== null) {
    const by = s.enqueue.owner !== null ? ` by daemon ${s.enqueue.owner}` : ' (waiting for a daemon to claim it)';
    out.push(`enqueuing${s.enqueue.owner === null && s.enqueue.batches === 0 ? '' : by}: ${plural(s.enqueue.batches, 'batch', 'batches')} published so far`);
  }
  out.push(...inputDetails(s));
  if (isPaused(s)) out.push(`paused since ${s.paused_at} (${ago(now - Date.parse(s.paused_at ?? ''))}); jetbatch resume ${s.job_id} continues it`);
  out.push(`running now: ${plural(s.running_batches, 'batch', 'batches')} on ${plural(s.running_daemons, 'daemon', 'daemons')}`);
  return out;
}

/** Statuses that end a job early for one reason, which the record's `error` holds. */
const ERROR_STATUSES: ReadonlySet<JobStatusName> = new Set(['worker_error', 'worker_oom', 'timed_out', 'enqueue_failed']);

/** Statuses after which some batches sit in the dead-letter stream. */
const DEAD_LETTER_STATUSES: ReadonlySet<JobStatusName> = new Set(['completed_with_failures', 'worker_oom']);

/** Longest error message shown in human output (the whole error is in `--json`). */
export const ERROR_MESSAGE_MAX = 200;

/** Malformed input lines a streamed or stored-data submission skipped: counted, never silently dropped. */
function inputDetails(s: JobStatus): string[] {
  const bad = s.enqueue?.bad_lines ?? 0;
  return bad > 0 ? [`input: ${plural(bad, 'malformed line', 'malformed lines')} skipped`] : [];
}

/** Where an ended job's results are, and how many (a reader who has that many has them all). */
function resultDetails(s: JobStatus): string[] {
  if (s.results_stored === null) return s.output === null ? [] : [`output: ${s.output}`];
  const where = s.output === null ? 'in the results stream' : `under ${s.output}${s.job_id}/`;
  return [`results: ${s.results_stored} stored ${where} (jetbatch results ${s.job_id})`];
}

function errorDetails(s: JobStatus): string[] {
  return s.error !== undefined && ERROR_STATUSES.has(s.status) ? [`error: ${errorText(s.error)}`] : [];
}

function deadLetterHint(s: JobStatus): string[] {
  return DEAD_LETTER_STATUSES.has(s.status) ? [`see: jetbatch dlq ${s.job_id}`] : [];
}

/** `CODE: message` on one line, the message's whitespace collapsed and cut to ERROR_MESSAGE_MAX characters. */
export function errorText(e: ErrorInfo): string {
  const message = e.message.replace(/\s+/g, ' ').trim();
  const cut = message.length > ERROR_MESSAGE_MAX ? `${message.slice(0, ERROR_MESSAGE_MAX - 1)}…` : message;
  return `${e.code ?? e.name}: ${cut}`;
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** A rough elapsed time for people: `45s ago`, `12m ago`, `3h 5m ago`. */
function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (!Number.isFinite(s)) return 'time unknown';
  if (s < 60) return `${s}s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ago`;
  return `${Math.floor(m / 60)}h ${m % 60}m ago`;
}

/** The status line and its details, indented below it, as `status`, `submit --wait` and `status --watch` print them. */
export function statusReport(s: JobStatus, now = Date.now()): string {
  return [statusLine(s), ...statusDetails(s, now).map((d) => `  ${d}`)].join('\n') + '\n';
}
