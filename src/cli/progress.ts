/**
 * Progress display for waiting commands: a bar on a TTY (cli-progress), one plain line per change otherwise. A paused
 * job shows as `running (paused)`, so a bar that stopped moving says why.
 */
import cliProgress from 'cli-progress';
import type { JobStatus } from '../types.js';
import { statusLabel } from './format.js';

export interface ProgressView {
  update(status: JobStatus): void;
  stop(): void;
}

export function progressView(stream: NodeJS.WriteStream = process.stderr): ProgressView {
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      { format: '{status} |{bar}| {value}/{total} batches  failed {failed}  queued {queued}  running {running}', stream, hideCursor: true },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    return {
      update(s) {
        const done = s.batch_metrics.succeeded + s.batch_metrics.failed;
        const payload = { status: statusLabel(s).padEnd(18), failed: s.batch_metrics.failed, queued: s.batches_in_queue, running: s.running_batches };
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
      const line = `${s.job_id} ${statusLabel(s)} succeeded=${s.batch_metrics.succeeded} failed=${s.batch_metrics.failed} in_queue=${s.batches_in_queue} total=${s.total_batch_count}`;
      if (line !== last) stream.write(line + '\n');
      last = line;
    },
    stop() {},
  };
}
