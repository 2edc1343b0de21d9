/**
 * Waiting for an observable condition (a job status, a log line, a metric value, a file, a server state) instead of
 * for a fixed time: a test goes on as soon as the condition holds and fails with a clear message at a deadline.
 */

export interface WaitOptions {
  /** Gives up after this many milliseconds. */
  timeoutMs: number;
  /** Pause between two probes, in milliseconds (default 50). */
  intervalMs?: number;
  /**
   * A probe that throws counts as "not yet" (a status read while NATS is down, a file being written); the last error
   * goes into the failure message. By default the error fails the wait at once.
   */
  retryErrors?: boolean;
  /** More text for the failure message, read when the wait fails (the last value seen, a log…). */
  detail?: () => string;
}

/** Not yet: `undefined`, `null` or `false`. Any other value (0 and '' included) is the condition holding. */
type Pending = undefined | null | false;

/**
 * Calls `probe` until it returns something other than undefined, null or false, and resolves with that value.
 * Fails with "timed out after N ms waiting for <what>" (and the detail) once `timeoutMs` has passed.
 */
export async function waitUntil<T>(what: string, probe: () => T | Promise<T>, options: WaitOptions): Promise<Exclude<T, Pending>> {
  const { timeoutMs, intervalMs = 50, retryErrors = false, detail } = options;
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== null && v !== false) return v as Exclude<T, Pending>;
    } catch (err) {
      if (!retryErrors) throw err;
      lastErr = err;
    }
    if (Date.now() > deadline) {
      const extra = [lastErr !== undefined ? `last error: ${String(lastErr)}` : '', detail?.() ?? ''].filter(Boolean).join('; ');
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${extra ? ` (${extra})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
