/**
 * Concurrency measured from what the recorder handler wrote (test/fixtures/recorder): each batch attempt is an
 * interval from its `start` line to its `end` line, on the daemon named by its `tag` (or pid). The daemon's own
 * counters are never used to judge the scheduler.
 */
export interface Interval {
  batch: string;
  start: number;
  /** Infinity when the attempt never ended (its daemon was killed): pass `cutoff` to close it. */
  end: number;
  daemon: string;
}

/** The attempts of `job`, in start order; an attempt without an end closes at `cutoff` (default: never). */
export function intervals(records: Array<Record<string, unknown>>, job: string, cutoff = Infinity): Interval[] {
  const open = new Map<string, Interval[]>();
  const out: Interval[] = [];
  const sorted = records.filter((r) => r.job === job && (r.ev === 'start' || r.ev === 'end')).sort((a, b) => (a.t as number) - (b.t as number));
  for (const r of sorted) {
    const daemon = String(r.tag ?? r.pid);
    const key = `${daemon}/${String(r.batch)}`;
    if (r.ev === 'start') {
      const i: Interval = { batch: String(r.batch), start: r.t as number, end: cutoff, daemon };
      out.push(i);
      open.set(key, [...(open.get(key) ?? []), i]);
    } else {
      const i = open.get(key)?.shift();
      if (i !== undefined) i.end = r.t as number;
    }
  }
  return out;
}

/** At every moment in [from, to): how many attempts run. Returns ms spent at each count (index = count). */
export function timeAtConcurrency(list: Interval[], from = Math.min(...list.map((i) => i.start)), to = Math.max(...list.map((i) => i.end))): number[] {
  const events: Array<[number, number]> = [];
  for (const i of list) {
    const s = Math.max(i.start, from);
    const e = Math.min(i.end, to);
    if (e > s) events.push([s, 1], [e, -1]);
  }
  // An end at the same ms as a start closes first.
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const spent: number[] = [0];
  let cur = 0;
  let last = from;
  for (const [t, d] of events) {
    spent[cur] = (spent[cur] ?? 0) + (t - last);
    last = t;
    cur += d;
  }
  if (to > last && Number.isFinite(to)) spent[cur] = (spent[cur] ?? 0) + (to - last);
  return Array.from(spent, (x) => x ?? 0);
}

/** Most attempts running at once. */
export function peak(list: Interval[]): number {
  const spent = timeAtConcurrency(list);
  let max = 0;
  for (let k = 0; k < spent.length; k++) if (spent[k]! > 0) max = k;
  return max;
}

/** Distinct daemons that ran attempts. */
export function daemonsOf(list: Interval[]): Set<string> {
  return new Set(list.map((i) => i.daemon));
}
