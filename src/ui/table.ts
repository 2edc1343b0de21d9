/**
 * Tables as data: the server renders a `TableData` into HTML for the first paint (and for browsers without
 * JavaScript), and sends the same shape as JSON to app.js, which builds it with DOM calls and textContent. One
 * description, two renderers, no HTML strings on the wire.
 */
import { html, progressBar, raw, type Html } from './html.js';

export interface Cell {
  /** Text (never markup). */
  t: string;
  /** Class of the cell (num, mono, muted…). */
  c?: string;
  /** Link target (a path on this server). */
  h?: string;
  /** Shown as a badge with this class (`st-running`…). */
  badge?: string;
  /** A second, smaller line. */
  sub?: string;
  /** Progress bar: succeeded, failed, total. */
  bar?: [number, number, number];
  /** Tooltip. */
  title?: string;
  /** Preformatted (payloads, stacks): shown in <code>. */
  code?: boolean;
}

export interface Row {
  cells: Cell[];
  /** Class of the row. */
  c?: string;
  /** data-id of the row (job id) for tests and scripts. */
  id?: string;
}

export interface TableData {
  rows: Row[];
  /** Shown in one cell across the table when there are no rows. */
  empty: string;
}

function cellHtml(cell: Cell): Html {
  let inner: Html = cell.code === true ? html`<code>${cell.t}</code>` : html`${cell.t}`;
  if (cell.badge !== undefined) inner = html`<span class="badge ${cell.badge}">${inner}</span>`;
  if (cell.h !== undefined) inner = html`<a href="${cell.h}">${inner}</a>`;
  const bar = cell.bar === undefined ? '' : progressBar(cell.bar[0], cell.bar[1], cell.bar[2]);
  const sub = cell.sub === undefined ? '' : html`<div class="sub">${cell.sub}</div>`;
  const cls = cell.c === undefined ? '' : html` class="${cell.c}"`;
  const title = cell.title === undefined ? '' : html` title="${cell.title}"`;
  return html`<td${cls}${title}>${bar}${inner}${sub}</td>`;
}

export function tbody(id: string, data: TableData, columns: number): Html {
  const rows =
    data.rows.length === 0
      ? html`<tr class="empty"><td colspan="${columns}">${data.empty}</td></tr>`
      : data.rows.map((r) => html`<tr${r.c === undefined ? '' : html` class="${r.c}"`}${r.id === undefined ? '' : html` data-id="${r.id}"`}>${r.cells.map(cellHtml)}</tr>`);
  return html`<tbody id="${id}" data-columns="${columns}">${rows}</tbody>`;
}

export function table(id: string, headers: ReadonlyArray<string | [string, string]>, data: TableData, cls = ''): Html {
  const th = headers.map((h) => (typeof h === 'string' ? html`<th>${h}</th>` : html`<th class="${h[1]}">${h[0]}</th>`));
  return html`<div class="table-wrap"><table class="${cls}"><thead><tr>${th}</tr></thead>${tbody(id, data, headers.length)}</table></div>${raw('')}`;
}
