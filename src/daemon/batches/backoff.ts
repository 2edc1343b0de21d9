import type { BackoffOptions } from '../../types.js';

/** Delay before delivery `attempt + 1`, after `attempt` failed deliveries (attempt ≥ 1), in milliseconds. */
export function backoffDelay(opts: BackoffOptions, attempt: number, random: () => number = Math.random): number {
  const raw = opts.initial_ms * Math.pow(opts.factor, Math.max(0, attempt - 1));
  const capped = Math.min(opts.max_ms, raw);
  return Math.max(0, Math.round(capped * (1 - opts.jitter * random())));
}
