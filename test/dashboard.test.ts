/**
 * The Grafana dashboard (config/grafana-dashboard.json) and the alert rules in docs/operations.md use only metrics
 * the daemon really exports: names registered in src/daemon/metrics.ts (histograms with their _bucket/_sum/_count
 * series) and prom-client's default metrics. docs/operations.md has a row for every daemon metric.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { parse as parseYaml } from 'yaml';
import { DaemonMetrics } from '../src/daemon/metrics.js';

const read = (path: string): string => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8');

const metricsSource = read('src/daemon/metrics.ts');
const dashboard = JSON.parse(read('config/grafana-dashboard.json')) as Dashboard;
const operations = read('docs/operations.md');

interface Target { expr?: string }
interface Panel { id?: number; type: string; title?: string; datasource?: { type?: string; uid?: string }; targets?: Target[]; panels?: Panel[]; gridPos?: { x: number; y: number; w: number; h: number } }
interface Variable { name: string; type: string; query?: unknown; definition?: string; allValue?: string | null }
interface Dashboard { schemaVersion: number; uid: string; title: string; panels: Panel[]; templating: { list: Variable[] } }
interface Rule { alert?: string; record?: string; expr: string; labels?: Record<string, string>; annotations?: Record<string, string> }

/** jetbatch metric names registered in src/daemon/metrics.ts, read from its `name: 'jetbatch_…'` options. */
const registered = new Set([...metricsSource.matchAll(/name: '(jetbatch_[a-z0-9_]+)'/g)].map((m) => m[1]!));
/** The same names with their kind, from `new Counter|Gauge|Histogram({ name: '…'`. */
const kinds = new Map([...metricsSource.matchAll(/new (Counter|Gauge|Histogram)\(\{\s*name: '(jetbatch_[a-z0-9_]+)'/g)].map((m) => [m[2]!, m[1]!]));
const histograms = new Set([...kinds].filter(([, kind]) => kind === 'Histogram').map(([name]) => name));

/** The metric a series name belongs to: itself if registered, else the histogram of a _bucket/_sum/_count series. */
function baseMetric(series: string, known: Set<string>, histos: Set<string>): string | undefined {
  if (known.has(series)) return series;
  const m = /^(.*)_(bucket|sum|count)$/.exec(series);
  return m !== null && histos.has(m[1]!) ? m[1] : undefined;
}

function panelsOf(list: Panel[]): Panel[] {
  return list.flatMap((p) => [p, ...panelsOf(p.panels ?? [])]);
}

const panels = panelsOf(dashboard.panels);
const dashboardExprs = [
  ...panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? '')),
  ...dashboard.templating.list.flatMap((v) => [v.definition ?? '', typeof v.query === 'string' ? v.query : JSON.stringify(v.query ?? '')]),
].filter((e) => e !== '');

/** Every fenced yaml block of docs/operations.md that is a Prometheus rules file. */
const ruleFiles = [...operations.matchAll(/```yaml\n([\s\S]*?)```/g)]
  .map((m) => parseYaml(m[1]!) as { groups?: Array<{ name: string; rules: Rule[] }> })
  .filter((doc) => doc !== null && typeof doc === 'object' && Array.isArray(doc.groups));
const rules = ruleFiles.flatMap((f) => f.groups!.flatMap((g) => g.rules));

const names = (exprs: string[], prefix: RegExp): string[] => [...new Set(exprs.flatMap((e) => [...e.matchAll(prefix)].map((m) => m[1]!)))];
const JETBATCH = /\b(jetbatch_[a-zA-Z0-9_]+)/g;
const NODE_DEFAULT = /\b((?:process|nodejs)_[a-zA-Z0-9_]+)/g;

test('src/daemon/metrics.ts registers the contract metrics, and the regex sees every one of them', async () => {
  for (const name of ['jetbatch_batches_total', 'jetbatch_batch_duration_seconds']) assert.ok(registered.has(name), `${name} is not registered`);
  assert.equal(kinds.get('jetbatch_batches_total'), 'Counter');
  assert.equal(kinds.get('jetbatch_batch_duration_seconds'), 'Histogram');
  assert.deepEqual([...kinds.keys()].sort(), [...registered].sort(), 'a metric whose kind the regex cannot tell');
  // The live registry agrees with the source text (no metric registered some other way).
  const m = new DaemonMetrics({ pools: () => [], queueDepth: () => new Map(), jobStatuses: () => [], ready: () => true, running: () => new Map() });
  const live = (await m.registry.getMetricsAsJSON()).map((x) => x.name).filter((n) => n.startsWith('jetbatch_'));
  assert.deepEqual(live.sort(), [...registered].sort());
});

test('counters end in _total, and only counters do (Prometheus naming)', () => {
  for (const [name, kind] of kinds) assert.equal(name.endsWith('_total'), kind === 'Counter', `${name} is a ${kind}`);
});

test('config/grafana-dashboard.json is a Grafana dashboard with the datasource, instance and api_name variables', () => {
  assert.equal(typeof dashboard.schemaVersion, 'number');
  assert.ok(dashboard.schemaVersion >= 36, `schemaVersion ${dashboard.schemaVersion}`);
  assert.ok(dashboard.uid && dashboard.title);
  const vars = new Map(dashboard.templating.list.map((v) => [v.name, v]));
  const ds = vars.get('DS_PROMETHEUS');
  assert.equal(ds?.type, 'datasource');
  assert.equal(ds?.query, 'prometheus');
  assert.match(vars.get('api_name')?.definition ?? '', /^label_values\(jetbatch_batches_total\b.*, api_name\)$/);
  assert.match(vars.get('instance')?.definition ?? '', /^label_values\(jetbatch_[a-z_]+, instance\)$/);
  const ids = panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  for (const p of panels) {
    assert.ok(p.gridPos !== undefined && p.gridPos.x + p.gridPos.w <= 24, `panel "${p.title}" fits the 24-column grid`);
    if (p.type === 'row') continue;
    assert.equal(p.datasource?.uid, '${DS_PROMETHEUS}', `panel "${p.title}" uses the datasource variable`);
    assert.ok((p.targets ?? []).length > 0 && p.targets!.every((t) => (t.expr ?? '').trim() !== ''), `panel "${p.title}" has queries`);
  }
});

test('every jetbatch_* metric in the dashboard is registered by the code', () => {
  const used = names(dashboardExprs, JETBATCH);
  assert.ok(used.length > 10, `only ${used.length} jetbatch metrics found in the dashboard`);
  const unknown = used.filter((n) => baseMetric(n, registered, histograms) === undefined);
  assert.deepEqual(unknown, [], `dashboard metrics the daemon does not export: ${unknown.join(', ')}`);
});

test('every daemon metric has a panel on the dashboard', () => {
  const shown = new Set(names(dashboardExprs, JETBATCH).map((n) => baseMetric(n, registered, histograms)));
  const missing = [...registered].filter((n) => !shown.has(n));
  assert.deepEqual(missing, [], `metrics without a panel in config/grafana-dashboard.json: ${missing.join(', ')}`);
});

test('every jetbatch_* metric in the alert rules of docs/operations.md is registered by the code', () => {
  assert.ok(rules.length >= 8, `found ${rules.length} rules in docs/operations.md`);
  for (const r of rules) {
    assert.ok((r.alert ?? r.record) !== undefined && typeof r.expr === 'string', `rule ${JSON.stringify(r).slice(0, 80)}`);
    if (r.alert !== undefined) {
      assert.ok(r.labels?.severity, `${r.alert} has a severity label`);
      assert.ok(r.annotations?.summary, `${r.alert} has a summary`);
    }
  }
  const alerts = new Set(rules.map((r) => r.alert));
  for (const a of ['JetbatchDaemonDown', 'JetbatchNotReady', 'JetbatchDeadLetters', 'JetbatchHighFailureRatio', 'JetbatchQueueNotDraining', 'JetbatchWorkerRestarts', 'JetbatchNatsDisconnected', 'JetbatchBatchP99NearTimeout']) {
    assert.ok(alerts.has(a), `alert ${a} is in docs/operations.md`);
  }
  const unknown = names(rules.map((r) => r.expr), JETBATCH).filter((n) => baseMetric(n, registered, histograms) === undefined);
  assert.deepEqual(unknown, [], `alert-rule metrics the daemon does not export: ${unknown.join(', ')}`);
});

test('process_* and nodejs_* metrics in the dashboard and alerts are prom-client defaults, and dashboard ones are scoped to the daemons', async () => {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const defaults = (await registry.getMetricsAsJSON()).map((m) => ({ name: m.name, type: String(m.type) }));
  const known = new Set(defaults.map((d) => d.name));
  const histos = new Set(defaults.filter((d) => d.type === 'histogram').map((d) => d.name));
  const used = names([...dashboardExprs, ...rules.map((r) => r.expr)], NODE_DEFAULT);
  assert.ok(used.length > 0);
  const unknown = used.filter((n) => baseMetric(n, known, histos) === undefined);
  assert.deepEqual(unknown, [], `not prom-client default metrics: ${unknown.join(', ')}`);
  // Other exporters export process_* too: every such selector on the dashboard is limited to the chosen daemons.
  for (const e of dashboardExprs) {
    for (const m of e.matchAll(/\b(?:process|nodejs)_[a-z0-9_]+(\{[^}]*\})?/g)) {
      assert.ok((m[1] ?? '').includes('instance=~"$instance"'), `unscoped selector ${m[0]} in ${e}`);
    }
  }
});

test('docs/operations.md has a table row for every daemon metric', () => {
  const missing = [...registered].filter((n) => !operations.includes(`| \`${n}\` |`));
  assert.deepEqual(missing, [], `metrics without a row in docs/operations.md: ${missing.join(', ')}`);
  for (const key of ['api_name', 'job_id', 'batch_id', 'worker', 'host', 'daemon', 'pid', 'level', 'time', 'msg']) {
    assert.ok(operations.includes(`\`${key}\``), `log key ${key} is documented`);
  }
});
