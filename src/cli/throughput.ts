/**
 * Rate and ETA for the progress display. The rate is measured over a recent window (not since the start), so after
 * a pause or a slow start it soon shows the current speed. The formatting is pure, for tests.
 */

/** Batches finished (succeeded or failed) at a time. */
export interface Sample {
  atMs: number;
  done: number;
}

/** How far back the rate looks. */
export const RATE_WINDOW_MS = 30_000;

/** Keeps the samples of the last window and gives the rate over it. */
export class RateMeter {
  #samples: Sample[] = [];

  add(sample: Sample): void {
    this.#samples.push(sample);
    while (this.#samples.length > 2 && sample.atMs - (this.#samples[1]?.atMs ?? sample.atMs) >= RATE_WINDOW_MS) this.#samples.shift();
  }

  /** Batches per second over the window, or null before two samples at different times. */
  rate(): number | null {
    return rateOf(this.#samples);
  }
}

export function rateOf(samples: readonly Sample[]): number | null {
  const first = samples[0];
  const last = samples[samples.length - 1];
  if (first === undefined || last === undefined || last.atMs <= first.atMs) return null;
  return Math.max(0, last.done - first.done) / ((last.atMs - first.atMs) / 1000);
}

/** `12.5 batches/s  ETA 1m 05s`; `- batches/s  ETA -` while the rate is unknown or zero with work left. */
export function throughputText(rate: number | null, remaining: number): string {
  const r = rate === null ? '-' : formatRate(rate);
  return `${r} batches/s  ETA ${etaText(rate, remaining)}`;
}

export function formatRate(rate: number): string {
  if (rate >= 100) return rate.toFixed(0);
  if (rate >= 10) return rate.toFixed(1);
  return rate.toFixed(2);
}

function etaText(rate: number | null, remaining: number): string {
  if (remaining <= 0) return '0s';
  if (rate === null || rate <= 0) return '-';
  return formatSeconds(remaining / rate);
}

/** `45s`, `3m 05s`, `2h 03m`, `3d 4h`. */
export function formatSeconds(seconds: number): string {
  const s = Math.ceil(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${pad(s % 60)}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${pad(m % 60)}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}
