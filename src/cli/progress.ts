/**
 * Progress display for waiting commands: a bar on a TTY (cli-progress), one plain line per change otherwise. Both
 * show the rate (batches/s over the last half minute) and the ETA. A paused job shows as `running (paused)`, so a
 * bar that stopped moving says why.
 */
import cliProgress from 'cli-progress';
import type { JobStatus } from '../types.js';
import { statusLabel } from './format.js';
import { RateMeter, throughputText } from './throughput.js';

export interface ProgressView {
  update(status: JobStatus): void;
  stop(): void;
}

function doneOf(s: JobStatus): number {
  return s.batch_metrics.succeeded + s.batch_metrics.failed;
}

/** Feeds the meter and returns the rate and ETA text for this status. */
function measure(meter: RateMeter, s: JobStatus, now: number): string {
  const done = doneOf(s);
  meter.add({ atMs: now, done });
  const rate = s.paused_at === null ? meter.rate() : null;
  return throughputText(rate, s.total_batch_count - done);
}

export function progressView(stream: NodeJS.WriteStream = process.stderr, now: () => number = Date.now): ProgressView {
  return stream.isTTY ? barView(stream, now) : lineView(stream, now);
}

function barView(stream: NodeJS.WriteStream, now: () => number): ProgressView {
  const bar = new cliProgress.SingleBar(
    { format: '{status} |{bar}| {value}/{total} batches  {throughput}  failed {failed}  queued {queued}  running {running}', stream, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  const meter = new RateMeter();
  let started = false;
  return {
    update(s) {
      const payload = { status: statusLabel(s).padEnd(18), throughput: measure(meter, s, now()), failed: s.batch_metrics.failed, queued: s.batches_in_queue, running: s.running_batches };
      if (!started) {
        bar.start(s.total_batch_count, doneOf(s), payload);
        started = true;
      } else bar.update(doneOf(s), payload);
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

/** A line only when the counts or the status change (the rate alone changing prints nothing). */
function lineView(stream: NodeJS.WriteStream, now: () => number): ProgressView {
  const meter = new RateMeter();
  let last = '';
  return {
    update(s) {
      const throughput = measure(meter, s, now());
      const line = `${s.job_id} ${statusLabel(s)} succeeded=${s.batch_metrics.succeeded} failed=${s.batch_metrics.failed} in_queue=${s.batches_in_queue} total=${s.total_batch_count}`;
      if (line !== last) stream.write(`${line}  ${throughput}\n`);
      last = line;
    },
    stop() {},
  };
}
