/** Progress display for waiting commands: a bar on a TTY (cli-progress), one plain line per change otherwise. */
import cliProgress from 'cli-progress';
import type { JobStatus } from '../types.js';

export interface ProgressView {
  update(status: JobStatus): void;
  stop(): void;
}

export function progressView(stream: NodeJS.WriteStream = process.stderr): ProgressView {
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      { format: '{status} |{bar}| {value}/{total} batches  failed {failed}  queued {queued}', stream, hideCursor: true },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    return {
      update(s) {
        const done = s.batch_metrics.succeeded + s.batch_metrics.failed;
        const payload = { status: s.status.padEnd(12), failed: s.batch_metrics.failed, queued: s.batches_in_queue };
        if (!started) {
          bar.start(s.total_batch_count, done, payload);
          started = true;
        } else bar.update(done, payload);
      },
      stop() {
        if (started) bar.stop();
      },
    };
  }
  let last = '';
  return {
    update(s) {
      const line = `${s.job_id} ${s.status} succeeded=${s.batch_metrics.succeeded} failed=${s.batch_metrics.failed} in_queue=${s.batches_in_queue} total=${s.total_batch_count}`;
      if (line !== last) stream.write(line + '\n');
      last = line;
    },
    stop() {},
  };
}
