/**
 * Metrics recorded by handlers through ctx.metrics, aggregated in the main thread. Each name becomes
 * `jetbatch_handler_<name>` with an `api_name` label plus the handler's labels. Kind and label names are fixed by
 * the first use; series per metric are capped, so a handler cannot blow up label cardinality.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { MetricKind } from '../worker/thread-protocol.js';

const NAME = /^[a-zA-Z_][a-zA-Z0-9_]{0,100}$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]{0,60}$/;
const RESERVED_LABELS = new Set(['api_name', 'le', 'quantile', 'job', 'instance']);
/** Most label combinations (series) per handler metric. */
export const MAX_SERIES = 500;
/** Most distinct handler metric names per daemon. */
export const MAX_METRICS = 200;

interface Entry {
  kind: MetricKind;
  labelNames: string[];
  metric: Counter<string> | Gauge<string> | Histogram<string>;
  series: Set<string>;
}

export class HandlerMetricsSink {
  readonly #registry: Registry;
  readonly #log: Logger;
  readonly #entries = new Map<string, Entry>();
  readonly #warned = new Set<string>();

  constructor(registry: Registry, log: Logger) {
    this.#registry = registry;
    this.#log = log;
  }

  /** Never throws: a bad metric from a handler must not take the daemon down. */
  record(apiName: string, kind: MetricKind, name: string, value: number, labels: Record<string, string>): void {
    try {
      this.#record(apiName, kind, name, value, labels);
    } catch (err) {
      this.#warnOnce(`${name}:error`, { api_name: apiName, metric: name, err }, 'handler metric dropped');
    }
  }

  #record(apiName: string, kind: MetricKind, name: string, value: number, labels: Record<string, string>): void {
    const problem = this.#check(kind, name, value, labels);
    if (problem !== null) {
      this.#warnOnce(`${name}:${problem}`, { api_name: apiName, metric: name, problem }, 'handler metric dropped');
      return;
    }
    const entry = this.#entry(kind, name, Object.keys(labels).sort());
    if (entry === null) return;
    const full: Record<string, string> = { ...labels, api_name: apiName };
    const key = entry.labelNames.map((l) => full[l] ?? '').join('\u0000');
    if (!entry.series.has(key)) {
      if (entry.series.size >= MAX_SERIES) {
        this.#warnOnce(`${name}:series`, { api_name: apiName, metric: name }, `handler metric exceeds ${MAX_SERIES} label combinations; new ones dropped`);
        return;
      }
      entry.series.add(key);
    }
    if (entry.metric instanceof Counter) entry.metric.inc(full, value);
    else if (entry.metric instanceof Gauge) entry.metric.set(full, value);
    else entry.metric.observe(full, value);
  }

  #check(kind: MetricKind, name: string, value: number, labels: Record<string, string>): string | null {
    if (!NAME.test(name)) return 'invalid name';
    if (!Number.isFinite(value)) return 'value is not a finite number';
    if (kind === 'counter' && value < 0) return 'counters only go up';
    for (const [k, v] of Object.entries(labels)) {
      if (!LABEL.test(k) || RESERVED_LABELS.has(k) || k.startsWith('__')) return `invalid or reserved label name ${k}`;
      if (typeof v !== 'string') return `label ${k} is not a string`;
    }
    const existing = this.#entries.get(name);
    if (existing === undefined && this.#registry.getSingleMetric(`jetbatch_handler_${name}`) !== undefined) return 'name taken by a jetbatch metric';
    if (existing === undefined && /_(bucket|sum|count|total)$/.test(name) && kind === 'histogram') return 'histogram names cannot end in _bucket, _sum, _count or _total';
    if (existing !== undefined) {
      if (existing.kind !== kind) return `already a ${existing.kind}`;
      const names = Object.keys(labels).sort();
      if (names.join(',') !== existing.labelNames.filter((l) => l !== 'api_name').join(',')) return 'label names differ from the first use';
    }
    return null;
  }

  #entry(kind: MetricKind, name: string, labelNames: string[]): Entry | null {
    const existing = this.#entries.get(name);
    if (existing !== undefined) return existing;
    if (this.#entries.size >= MAX_METRICS) {
      this.#warnOnce('too-many', { metric: name }, `more than ${MAX_METRICS} handler metrics; new ones dropped`);
      return null;
    }
    const all = [...labelNames, 'api_name'].sort();
    const config = { name: `jetbatch_handler_${name}`, help: `Handler metric ${name} (recorded through ctx.metrics).`, labelNames: all, registers: [this.#registry] };
    const metric = kind === 'counter' ? new Counter(config) : kind === 'gauge' ? new Gauge(config) : new Histogram(config);
    const entry: Entry = { kind, labelNames: all, metric, series: new Set() };
    this.#entries.set(name, entry);
    return entry;
  }

  #warnOnce(key: string, fields: Record<string, unknown>, msg: string): void {
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.#log.warn(fields, msg);
  }
}
