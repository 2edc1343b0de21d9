/**
 * The job page's two small charts as standalone SVG documents (served as image/svg+xml and shown with <img>, so
 * nothing in them can run even if a label held markup; labels are numbers we format anyway): how long batches took
 * (a histogram of handleBatch durations) and how many finished per second over the job's life.
 */
import { html, raw, duration, type Html } from './html.js';
import type { ChartData } from './details.js';

const W = 520;
const H = 170;
const PAD = { left: 44, right: 12, top: 14, bottom: 30 };

function frame(title: string, body: Html, note: string): string {
  return html`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="11">
<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>
<text x="${PAD.left}" y="10" fill="#334155" font-weight="600">${title}</text>
<text x="${W - PAD.right}" y="10" fill="#64748b" text-anchor="end">${note}</text>
${body}
</svg>`.text;
}

function axes(maxY: number, xLeft: string, xRight: string): Html {
  const y0 = H - PAD.bottom;
  return html`<line x1="${PAD.left}" y1="${y0}" x2="${W - PAD.right}" y2="${y0}" stroke="#cbd5e1"/>
<line x1="${PAD.left}" y1="${PAD.top}" x2="${PAD.left}" y2="${y0}" stroke="#cbd5e1"/>
<text x="${PAD.left - 4}" y="${PAD.top + 8}" fill="#64748b" text-anchor="end">${formatY(maxY)}</text>
<text x="${PAD.left - 4}" y="${y0}" fill="#64748b" text-anchor="end">0</text>
<text x="${PAD.left}" y="${H - 12}" fill="#64748b">${xLeft}</text>
<text x="${W - PAD.right}" y="${H - 12}" fill="#64748b" text-anchor="end">${xRight}</text>`;
}

function formatY(v: number): string {
  return v >= 100 ? String(Math.round(v)) : v >= 10 ? v.toFixed(0) : v.toFixed(1).replace(/\.0$/, '');
}

function empty(title: string, why: string): string {
  return frame(title, html`<text x="${W / 2}" y="${H / 2}" fill="#94a3b8" text-anchor="middle">${why}</text>`, '');
}

const NO_DATA = 'no timing yet (needs succeeded batches that return a result)';

export function durationChart(d: ChartData): string {
  const title = 'Batch duration';
  if (d.durations.length === 0) return empty(title, NO_DATA);
  const sorted = [...d.durations].sort((a, b) => a - b);
  const lo = sorted[0]!;
  const hi = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))]!; // p99 as the right edge
  const bins = 24;
  const width = Math.max((hi - lo) / bins, 1e-9);
  const counts = new Array<number>(bins).fill(0);
  for (const v of sorted) counts[Math.min(bins - 1, Math.max(0, Math.floor((v - lo) / width)))]! += 1;
  const maxC = Math.max(...counts);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const bw = plotW / bins;
  const bars = counts.map((c, i) => {
    const h = maxC > 0 ? (plotH * c) / maxC : 0;
    return html`<rect x="${(PAD.left + i * bw + 1).toFixed(1)}" y="${(H - PAD.bottom - h).toFixed(1)}" width="${Math.max(bw - 2, 1).toFixed(1)}" height="${h.toFixed(1)}" fill="#6366f1"/>`;
  });
  const p = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))]!;
  const note = `n=${sorted.length}${d.truncated ? '+' : ''}  p50 ${duration(p(0.5))}  p95 ${duration(p(0.95))}  max ${duration(sorted[sorted.length - 1]!)}`;
  return frame(title, html`${axes(maxC, duration(lo), duration(hi))}${bars}`, note);
}

export function throughputChart(d: ChartData): string {
  const title = 'Throughput (batches/s)';
  if (d.times.length === 0) return empty(title, NO_DATA);
  const first = Math.min(...d.times);
  const last = Math.max(...d.times);
  const span = Math.max(last - first, 1000);
  const buckets = Math.max(2, Math.min(40, Math.ceil(span / 250)));
  const bucketMs = span / buckets;
  const counts = new Array<number>(buckets).fill(0);
  for (const t of d.times) counts[Math.min(buckets - 1, Math.floor((t - first) / bucketMs))]! += 1;
  const rates = counts.map((c) => c / (bucketMs / 1000));
  const maxR = Math.max(...rates, 1e-9);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const x = (i: number): number => PAD.left + (buckets === 1 ? plotW / 2 : (plotW * i) / (buckets - 1));
  const y = (r: number): number => H - PAD.bottom - (plotH * r) / maxR;
  const line = rates.map((r, i) => `${i === 0 ? 'M' : 'L'}${x(i).toFixed(1)},${y(r).toFixed(1)}`).join(' ');
  const area = `${line} L${x(buckets - 1).toFixed(1)},${H - PAD.bottom} L${x(0).toFixed(1)},${H - PAD.bottom} Z`;
  const avg = d.times.length / Math.max(span / 1000, 0.001);
  const note = `${formatY(avg)}/s average over ${duration(span)}${d.truncated ? ' (first results)' : ''}`;
  return frame(title, html`${axes(maxR, 'start', `+${duration(span)}`)}<path d="${area}" fill="#bbf7d0"/><path d="${line}" fill="none" stroke="#16a34a" stroke-width="2"/>${raw('')}`, note);
}
