/**
 * HTML building with escaping by construction: `html\`…\`` escapes every interpolated value unless it is itself
 * `Html` (made by this tag or by `raw` on a literal). Everything from NATS (ids, configs, errors, payloads) goes in
 * as a plain string and comes out escaped; there is no other way to write markup into a page.
 */

export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;', '`': '&#96;' };

/** Escapes text for an element's content or a quoted attribute value. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"'`]/g, (c) => ESCAPES[c]!);
}

export type Part = Html | string | number | boolean | null | undefined | readonly Part[];

function render(part: Part): string {
  if (part === null || part === undefined || part === false) return '';
  if (part instanceof Html) return part.text;
  if (Array.isArray(part)) return (part as readonly Part[]).map(render).join('');
  return escapeHtml(String(part));
}

export function html(strings: TemplateStringsArray, ...values: Part[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1]!;
  return new Html(out);
}

/** Markup written in this source, not from data. */
export function raw(text: string): Html {
  return new Html(text);
}

/** `01-31 12:00:00` (UTC, no year: table cells; the full time is in the title). */
export function compactTime(iso: string | null | undefined): string {
  return shortTime(iso).slice(5);
}

/** `2026-01-31 12:00:00` (UTC) from an ISO time; '' for none. */
export function shortTime(iso: string | null | undefined): string {
  if (iso === null || iso === undefined || iso === '') return '';
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return iso;
  return new Date(t).toISOString().slice(0, 19).replace('T', ' ');
}

/** `850 ms`, `12.3 s`, `4m 05s`, `2h 03m`, `3d 4h`. */
export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

export function count(n: number): string {
  return n.toLocaleString('en-US');
}

/**
 * A progress bar as inline SVG (attributes, not inline styles, so a strict style-src CSP allows it): succeeded in
 * green, failed in red, the rest grey. app.js builds the same shape.
 */
export function progressBar(succeeded: number, failed: number, total: number): Html {
  const w = (n: number): string => (total > 0 ? ((100 * Math.min(n, total)) / total).toFixed(2) : '0');
  const ok = w(succeeded);
  const bad = w(failed);
  return html`<svg class="bar" viewBox="0 0 100 8" preserveAspectRatio="none" role="img" aria-label="${`${succeeded} succeeded, ${failed} failed of ${total}`}"><rect class="bar-bg" x="0" y="0" width="100" height="8"></rect><rect class="bar-ok" x="0" y="0" width="${ok}" height="8"></rect><rect class="bar-bad" x="${ok}" y="0" width="${bad}" height="8"></rect></svg>`;
}

export function pct(done: number, total: number): string {
  return total > 0 ? `${Math.floor((100 * done) / total)}%` : '–';
}

export interface LayoutOptions {
  title: string;
  /** Which nav entry is current, and what app.js does on the page. */
  page: 'jobs' | 'job' | 'fleet' | 'error';
  /** data-* attributes on <body> for app.js (escaped). */
  data?: Record<string, string>;
  /** The server has a token: show the token field. */
  tokenEnabled: boolean;
  body: Html;
}

export function layout(o: LayoutOptions): Html {
  const data = Object.entries(o.data ?? {}).map(([k, v]) => html` data-${k}="${v}"`);
  const nav = (href: string, label: string, current: boolean): Html => html`<a href="${href}"${current ? raw(' aria-current="page"') : ''}>${label}</a>`;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${o.title} · jetbatch</title>
<link rel="stylesheet" href="/assets/style.css">
<link rel="icon" href="/assets/favicon.svg" type="image/svg+xml">
<script type="module" src="/assets/app.js"></script>
</head>
<body data-page="${o.page}" data-token-enabled="${o.tokenEnabled ? 'yes' : 'no'}"${data}>
<header class="top">
  <a class="brand" href="/jobs"><span class="logo" aria-hidden="true">▚</span> jetbatch</a>
  <nav>${nav('/jobs', 'Jobs', o.page === 'jobs' || o.page === 'job')}${nav('/fleet', 'Fleet', o.page === 'fleet')}</nav>
  <span class="spacer"></span>
  <span id="live" class="live" title="live updates">static</span>
  ${o.tokenEnabled
    ? html`<label class="token">Token <input id="token" type="password" autocomplete="off" spellcheck="false" placeholder="for stop / replay"></label>`
    : html`<span class="readonly" title="start jetbatch ui with --token to enable stop and replay">read-only</span>`}
</header>
<main>
${o.body}
</main>
<noscript><p class="note">JavaScript is off: this page does not update by itself (reload it), and stop / replay need JavaScript.</p></noscript>
</body>
</html>
`;
}
