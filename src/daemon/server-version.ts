/**
 * Known defects of the connected nats-server that change what jetbatch can promise, reported once at start.
 */

/** Whether `version` ("2.9.10") is older than `min` ("2.9.21"); an unparsable version counts as not older. */
export function olderThan(version: string | undefined, min: string): boolean {
  const parse = (v: string): number[] | null => {
    const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(v);
    return m === null ? null : [Number(m[1]), Number(m[2]), Number(m[3])];
  };
  const a = version === undefined ? null : parse(version);
  const b = parse(min);
  if (a === null || b === null) return false;
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i]! < b[i]!;
  return false;
}

/**
 * Warnings for this server and replica count. Before 2.9.21 a clustered (replicated) stream checked
 * `Nats-Expected-Last-Subject-Sequence` outside Raft, so two compare-and-set writes of one key could both succeed
 * (nats-server#4320).
 */
export function serverWarnings(version: string | undefined, replicas: number): string[] {
  if (replicas > 1 && olderThan(version, '2.9.21')) {
    return [
      `nats-server ${version} does not serialize compare-and-set writes on replicated streams (nats-server#4320, fixed in 2.9.21): ` +
        'jetbatch decides completion claims through the ordered JETBATCH_CLAIMS stream, but two daemons ending one job at the same moment ' +
        '(a stop racing a completion) may both write it; upgrade nats-server',
    ];
  }
  return [];
}
