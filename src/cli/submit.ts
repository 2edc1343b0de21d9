/**
 * `jetbatch submit`: the items or batches file is streamed into the job (read-input.ts, on the thread of
 * threaded-input.ts → client.submitStream), so a file of any size is submitted with bounded memory. What can be
 * checked without reading the input (the flags, the settings) is checked before connecting; so is the input up to
 * its first valid value, and with `--strict` the whole input. Malformed lines are otherwise skipped, counted and
 * reported.
 */
import cliProgress from 'cli-progress';
import { Command } from 'commander';
import { ErrorCodes, JetbatchError } from '../errors.js';
import { checkStreamSettings, type StreamSettings } from '../fleet/stream-settings.js';
import type { StreamProgress } from '../fleet/stream-submit.js';
import type { JetbatchClient } from '../client/client.js';
import { checkSubmission, type SubmissionInput } from '../fleet/submission.js';
import type { JobRecord, JobStatus } from '../types.js';
import { durationArg } from './args.js';
import { ExitCodes, intArg, numberArg, printJson, withClient, withConnectionOptions, type ConnectionFlags } from './common.js';
import { statusReport } from './format.js';
import { progressView } from './progress.js';
import { openInput, type ReadStats } from './read-input.js';
import { openThreadedInput, type ThreadedInput } from './threaded-input.js';

interface SubmitFlags extends ConnectionFlags {
  items?: string;
  batches?: string;
  batchSize?: number;
  workers?: number;
  priority?: number;
  config?: string;
  timeout?: number;
  batchTimeout?: number;
  maxAttempts?: number;
  jobId?: string;
  wait?: boolean;
  json?: boolean;
  requireDaemon?: boolean;
  strict?: boolean;
  maxBadLines?: number;
  output?: string;
  delimitedFiles?: string[];
  filePathLister?: string[];
  includes?: string[];
  excludes?: string[];
}

export function exitCodeOfStatus(s: JobStatus): number {
  return s.status === 'succeeded' ? ExitCodes.ok : ExitCodes.jobFailed;
}

/** Parses a flag's JSON text; what the value must be is the submission schema's to say. */
export function parseJsonFlag(flag: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `${flag} is not valid JSON: ${(err as Error).message}`);
  }
}

function invalid(message: string): JetbatchError {
  return new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `invalid submission: ${message}`, { details: [message] });
}

export function registerSubmit(program: Command, setExit: (code: number) => void): void {
  withConnectionOptions(
    program
      .command('submit')
      .description('submit a job: items split into batches, or ready-made batches, streamed from a file of any size')
      .argument('<api>', 'API name')
      .option('--items <file>', 'JSON Lines of items (.gz: gzip-compressed; "-": stdin), or a JSON array of items')
      .option('--batches <file>', 'JSON Lines of batches, each an array of items (or a JSON array of them)')
      .option('--delimited-files <url...>', 'a job over stored JSON Lines files (.gz too), listed and enqueued by the fleet: file:///dir/, obj://BUCKET/prefix, s3://bucket/prefix (give the API first)')
      .option('--file-path-lister <url...>', 'a job over a listing of stored objects: each batch is --batch-size object URLs, read by the handler with ctx.open(url)')
      .option('--includes <glob...>', 'with stored data: only keys (relative to each URL) matching one of these globs ("*.jsonl" matches at any depth)')
      .option('--excludes <glob...>', 'with stored data: leave out keys matching one of these globs')
      .option('--batch-size <n>', 'items per batch (with --items, --delimited-files; object URLs with --file-path-lister)', numberArg('--batch-size'))
      .option('--workers <n>', 'most batches of this job in flight across the fleet (default 1)', numberArg('--workers'))
      .option('--priority <n>', 'integer -1000..1000 (default 0): free threads go to the API\'s highest-priority job first', numberArg('--priority'))
      .option('--config <json>', 'job config (JSON object), merged over the API config')
      .option('--timeout <duration>', 'job timeout: 30s, 5m, 2h, 1d, 500ms (a bare number is seconds)', durationArg('--timeout'))
      .option('--batch-timeout <duration>', 'per-batch timeout, as --timeout (overrides the API default)', durationArg('--batch-timeout'))
      .option('--max-attempts <n>', 'deliveries per batch before dead-lettering', numberArg('--max-attempts'))
      .option('--output <url>', 'write each batch\'s result to a store as it succeeds, plus a manifest when the job completes: file:///dir/, obj://BUCKET/prefix/ or s3://bucket/prefix/ (no size limit; read back with jetbatch results)')
      .option('--job-id <id>', 'job id; submitting again with the same id and input continues an interrupted submission without duplicates')
      .option('--strict', 'read the whole input first and refuse it (exit 2, nothing enqueued) at its first malformed line')
      .option('--max-bad-lines <n>', 'malformed lines skipped (and reported) before the submission fails (default: no limit)', intArg('--max-bad-lines'))
      .option('--wait', 'wait for the job to end; exit 0 only if it succeeded')
      .option('--require-daemon', 'refuse (exit 2) when no live daemon serves the API, instead of warning and leaving the job pending')
      .option('--json', 'print JSON (the job record, or with --wait the final status)'),
  ).action(async (api: string, flags: SubmitFlags) => {
    if (flags.delimitedFiles !== undefined || flags.filePathLister !== undefined) {
      await submitStored(api, flags, setExit);
      return;
    }
    if (flags.includes !== undefined || flags.excludes !== undefined) throw invalid('--includes and --excludes apply to --delimited-files and --file-path-lister');
    const input = flags.items ?? flags.batches;
    if ((flags.items === undefined) === (flags.batches === undefined)) throw invalid('give exactly one of items (with batch_size) or batches');
    if (flags.items !== undefined && flags.batchSize === undefined) throw invalid('batch_size: is required with items');
    const settings: Record<string, unknown> = { api_name: api };
    if (flags.items !== undefined) settings.batch_size = flags.batchSize;
    if (flags.workers !== undefined) settings.workers = flags.workers;
    if (flags.priority !== undefined) settings.priority = flags.priority;
    if (flags.config !== undefined) settings.config = parseJsonFlag('--config', flags.config);
    if (flags.timeout !== undefined) settings.timeout = flags.timeout;
    if (flags.batchTimeout !== undefined) settings.batch_timeout = flags.batchTimeout;
    if (flags.maxAttempts !== undefined) settings.max_attempts = flags.maxAttempts;
    if (flags.jobId !== undefined) settings.job_id = flags.jobId;
    if (flags.output !== undefined) settings.output = flags.output;
    const checked = checkStreamSettings(settings);
    const readOptions = { batches: flags.batches !== undefined, strict: flags.strict === true, maxBadLines: flags.maxBadLines ?? null };
    if (flags.strict === true) {
      if (input === '-') throw invalid('--strict reads the input twice, so it needs a file, not stdin');
      const pass = await openInput(input!, readOptions);
      for await (const _ of pass.values); // throws at the first malformed line
    }
    // Read, parsed, cut into batches (a --batches file's values are the batches) and encoded on a thread of its own.
    const source = input === '-' ? 'stdin' : input!;
    const reader = await openThreadedInput(input!, { ...readOptions, strict: false }, checked.batch_size);
    try {
      if (reader.stats.values === 0) throw noValues(reader.stats, source, readOptions.batches);
      await submitRead(flags, checked, reader, source, setExit);
    } finally {
      reader.close();
    }
  });
}

/** Publishes what the input thread reads, with a progress bar, and reports the submission. */
async function submitRead(flags: SubmitFlags, checked: StreamSettings, reader: ThreadedInput, source: string, setExit: (code: number) => void): Promise<void> {
  const { spec_hash: _hash, batch_size, output, ...rest } = checked;
  await withClient(flags, async (client) => {
    const bar = enqueueView(reader.stats);
    let record: JobRecord;
    try {
      record = await client.submitStream({ ...rest, ...(batch_size === null ? {} : { batch_size }), ...(output === null ? {} : { output }) }, reader.batches, {
        grouped: true,
        requireDaemon: flags.requireDaemon === true,
        badLines: () => reader.stats.badLines,
        onProgress: (p) => bar.update(p),
      });
    } finally {
      bar.stop();
    }
    reportBadLines(reader.stats, source);
    await reportSubmitted(client, record, flags, setExit);
  });
}

/** `--delimited-files` / `--file-path-lister`: the job is registered here; the fleet lists the stores and enqueues it. */
async function submitStored(api: string, flags: SubmitFlags, setExit: (code: number) => void): Promise<void> {
  const kind = flags.delimitedFiles !== undefined ? 'delimited_files' : 'file_path_lister';
  if (flags.items !== undefined || flags.batches !== undefined || (flags.delimitedFiles !== undefined && flags.filePathLister !== undefined)) {
    throw invalid('give exactly one of items (with batch_size) or batches, or stored data (--delimited-files or --file-path-lister)');
  }
  if (flags.strict === true) throw invalid('--strict reads the input before submitting; stored data is read by the fleet: use --max-bad-lines 0');
  if (flags.batchSize === undefined) throw invalid(`batch_size: is required with --${kind.replace(/_/g, '-')}`);
  if (flags.maxBadLines !== undefined && kind === 'file_path_lister') throw invalid('--max-bad-lines applies to --delimited-files (a listing has no lines)');
  const spec: Record<string, unknown> = { paths: flags.delimitedFiles ?? flags.filePathLister, batch_size: flags.batchSize };
  if (flags.includes !== undefined) spec.includes = flags.includes;
  if (flags.excludes !== undefined) spec.excludes = flags.excludes;
  if (flags.maxBadLines !== undefined) spec.max_bad_lines = flags.maxBadLines;
  const submission: Record<string, unknown> = { api_name: api, [kind]: spec };
  if (flags.workers !== undefined) submission.workers = flags.workers;
  if (flags.priority !== undefined) submission.priority = flags.priority;
  if (flags.config !== undefined) submission.config = parseJsonFlag('--config', flags.config);
  if (flags.timeout !== undefined) submission.timeout = flags.timeout;
  if (flags.batchTimeout !== undefined) submission.batch_timeout = flags.batchTimeout;
  if (flags.maxAttempts !== undefined) submission.max_attempts = flags.maxAttempts;
  if (flags.jobId !== undefined) submission.job_id = flags.jobId;
  if (flags.output !== undefined) submission.output = flags.output;
  checkSubmission(submission);
  await withClient(flags, async (client) => {
    const record = await client.submit(submission as SubmissionInput, { requireDaemon: flags.requireDaemon === true });
    await reportSubmitted(client, record, flags, setExit);
  });
}

/** After a submission: warn when nothing serves the API, then print the job id (or record), or wait for the end. */
async function reportSubmitted(client: JetbatchClient, record: JobRecord, flags: SubmitFlags, setExit: (code: number) => void): Promise<void> {
  // Accepted, but nothing runs it until a daemon serving the API starts: say so rather than sit silently pending.
  const served = (await client.apis()).find((a) => a.api_name === record.api_name);
  if ((served?.live_daemons ?? 0) === 0) process.stderr.write(`jetbatch: warning: no live daemon serves the API "${record.api_name}" now; job ${record.job_id} waits until one starts (see jetbatch apis)\n`);
  else if (served !== undefined && served.error !== null && served.unhealthy_daemons === served.live_daemons) {
    process.stderr.write(`jetbatch: warning: every live daemon serving "${record.api_name}" reports it unhealthy (${served.error.message.split('\n')[0]}); job ${record.job_id} will fail unless the project is fixed (see jetbatch apis)\n`);
  }
  if (!flags.wait) {
    if (flags.json) printJson(record);
    else process.stdout.write(`${record.job_id}\n`);
    return;
  }
  if (!flags.json) process.stderr.write(record.status === 'enqueuing' ? `submitted job ${record.job_id} (the fleet enqueues its batches)\n` : `submitted job ${record.job_id} (${record.total_batch_count} batches)\n`);
  const view = progressView();
  const final = await client.wait(record.job_id, { onStatus: (s) => view.update(s) });
  view.stop();
  if (flags.json) printJson(final);
  else process.stdout.write(statusReport(final));
  setExit(exitCodeOfStatus(final));
}

/**
 * The error of an input without a single valid value (empty, or every line malformed): bad input (exit 2), found
 * before anything connects, and no job is created.
 */
function noValues(s: ReadStats, source: string, batches: boolean): JetbatchError {
  const sample = s.samples[0];
  return invalid(`${source} holds no valid ${batches ? 'batches' : 'items'}${s.badLines > 0 ? `: ${s.badLines} malformed line${s.badLines === 1 ? '' : 's'} (line ${sample?.line}: ${sample?.message})` : ''}`);
}

function reportBadLines(stats: ReadStats, source: string): void {
  if (stats.badLines === 0) return;
  const samples = stats.samples.map((b) => `  line ${b.line}: ${b.message}`).join('\n');
  const more = stats.badLines > stats.samples.length ? `\n  … and ${stats.badLines - stats.samples.length} more` : '';
  process.stderr.write(`jetbatch: warning: skipped ${stats.badLines} malformed line${stats.badLines === 1 ? '' : 's'} of ${source} (use --strict to refuse the input, --max-bad-lines N to bound them):\n${samples}${more}\n`);
}

/** The enqueue progress on a TTY: bytes read of the file, items, batches acknowledged, rate and ETA. */
function enqueueView(stats: ReadStats): { update(p: StreamProgress): void; stop(): void } {
  if (!process.stderr.isTTY) return { update() {}, stop() {} };
  const known = stats.totalBytes !== null;
  const bar = new cliProgress.SingleBar(
    {
      // Bytes are the one total known in advance (not for stdin): the bar and the ETA follow them.
      format: known
        ? 'enqueuing |{bar}| {percentage}%  {read}  {items} values  {batches} batches  {eta_formatted} left'
        : 'enqueuing  {read}  {items} values  {batches} batches',
      stream: process.stderr,
      hideCursor: true,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  const total = stats.totalBytes ?? 0;
  const payload = (batches: number) => ({ read: `${(stats.bytes / 1048576).toFixed(1)} MiB`, items: stats.values, batches });
  let started = false;
  let last = 0;
  return {
    update(p) {
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      if (!started) {
        bar.start(Math.max(total, 1), 0, payload(0));
        started = true;
      }
      bar.update(Math.min(stats.bytes, Math.max(total, 1)), payload(p.enqueued));
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
