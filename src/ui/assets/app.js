// jetbatch ui: live updates for the server-rendered pages. Every string from the server goes into the page through
// textContent or a DOM attribute, never as markup. Served as a file so the Content-Security-Policy allows no inline
// script at all.
const body = document.body;
const page = body.dataset.page;
const SVG = 'http://www.w3.org/2000/svg';
const TOKEN_KEY = 'jetbatch-ui-token';

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  for (const c of children) if (c !== undefined && c !== null) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function bar(ok, bad, total) {
  const w = (n) => (total > 0 ? ((100 * Math.min(n, total)) / total).toFixed(2) : '0');
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', 'bar');
  svg.setAttribute('viewBox', '0 0 100 8');
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', `${ok} succeeded, ${bad} failed of ${total}`);
  const rect = (cls, x, width) => {
    const r = document.createElementNS(SVG, 'rect');
    for (const [k, v] of Object.entries({ class: cls, x, y: 0, width, height: 8 })) r.setAttribute(k, String(v));
    svg.append(r);
  };
  rect('bar-bg', 0, 100);
  rect('bar-ok', 0, w(ok));
  rect('bar-bad', w(ok), w(bad));
  return svg;
}

function cellNode(cell) {
  const td = el('td', { class: cell.c, title: cell.title });
  if (cell.bar) td.append(bar(cell.bar[0], cell.bar[1], cell.bar[2]));
  let inner = cell.code ? el('code', {}, cell.t) : document.createTextNode(cell.t);
  if (cell.badge !== undefined) inner = el('span', { class: `badge ${cell.badge}` }, inner);
  if (cell.h !== undefined) inner = el('a', { href: cell.h }, inner);
  td.append(inner);
  if (cell.sub !== undefined) td.append(el('div', { class: 'sub' }, cell.sub));
  return td;
}

/** Replaces a tbody's rows with a TableData from the server (src/ui/table.ts). */
function renderTable(tbody, data) {
  if (!tbody) return;
  const rows = data.rows.length === 0
    ? [el('tr', { class: 'empty' }, el('td', { colspan: tbody.dataset.columns }, data.empty))]
    : data.rows.map((r) => el('tr', { class: r.c, 'data-id': r.id }, ...r.cells.map(cellNode)));
  tbody.replaceChildren(...rows);
  tbody.dataset.rendered = 'js';
}

function setLive(on) {
  const live = document.getElementById('live');
  if (!live) return;
  live.className = on ? 'live on' : 'live off';
  live.textContent = on ? 'live' : 'reconnecting…';
}

function stream(url, event, onData) {
  const es = new EventSource(url);
  es.addEventListener(event, (e) => {
    setLive(true);
    onData(JSON.parse(e.data));
  });
  es.addEventListener('open', () => setLive(true));
  es.addEventListener('error', () => setLive(false));
  window.addEventListener('pagehide', () => es.close());
  return es;
}

function setFields(fields) {
  for (const node of document.querySelectorAll('[data-f]')) {
    const v = fields[node.dataset.f];
    if (v !== undefined && node.textContent !== v) node.textContent = v;
  }
}

const fmt = new Intl.NumberFormat('en-US');

// The token field: kept for this tab only (sessionStorage), sent only as an Authorization header.
const tokenInput = document.getElementById('token');
if (tokenInput) {
  tokenInput.value = sessionStorage.getItem(TOKEN_KEY) || '';
  tokenInput.addEventListener('input', () => sessionStorage.setItem(TOKEN_KEY, tokenInput.value));
}

function jobsPage() {
  const form = document.getElementById('filters');
  if (form) for (const s of form.querySelectorAll('select')) s.addEventListener('change', () => form.requestSubmit());
  stream(`/api/jobs/stream${location.search}`, 'jobs', (p) => {
    renderTable(document.getElementById('job-rows'), p.table);
    for (const b of document.querySelectorAll('[data-count]')) b.textContent = fmt.format(p.counts[b.dataset.count] || 0);
    const pos = document.getElementById('pager-pos');
    if (pos) pos.textContent = `Page ${fmt.format(p.page)} of ${fmt.format(p.pages)} · ${fmt.format(p.total)} job${p.total === 1 ? '' : 's'}`;
  });
}

function jobPage() {
  const id = body.dataset.job;
  const enc = encodeURIComponent(id);
  const stopBtn = document.getElementById('btn-stop');
  const replayBtn = document.getElementById('btn-replay');
  const msg = document.getElementById('action-msg');
  let terminal = body.dataset.terminal === 'yes';
  let failed = null;
  const refreshCharts = () => {
    for (const kind of ['durations', 'throughput']) {
      const img = document.getElementById(`chart-${kind}`);
      if (img) img.src = `/jobs/${enc}/chart/${kind}.svg?t=${Date.now()}`;
    }
  };
  setInterval(() => { if (!terminal && !document.hidden) refreshCharts(); }, 5000);
  const refreshDeadLetters = async () => {
    const r = await fetch(`/api/jobs/${enc}/dead-letters`);
    if (r.ok) renderTable(document.getElementById('dead-letters'), (await r.json()).table);
  };
  let lastStatus = null;
  void refreshDeadLetters();
  stream(`/api/jobs/${enc}/stream`, 'job', (p) => {
    setFields(p.fields);
    const badge = document.getElementById('status-badge');
    if (badge) badge.className = `badge big st-${p.status}`;
    document.getElementById('paused').hidden = !p.paused;
    document.getElementById('job-error').hidden = p.fields.error === '';
    const wrap = document.getElementById('job-bar');
    if (wrap) wrap.replaceChildren(bar(p.bar[0], p.bar[1], p.bar[2]));
    const canMutate = body.dataset.tokenEnabled === 'yes';
    if (stopBtn && !stopBtn.classList.contains('confirm')) stopBtn.disabled = !(canMutate && p.actions.stop);
    if (replayBtn && !replayBtn.classList.contains('confirm')) replayBtn.disabled = !(canMutate && p.actions.replay);
    if (failed !== null && (p.failed !== failed || p.status !== lastStatus)) void refreshDeadLetters();
    failed = p.failed;
    lastStatus = p.status;
    if (p.terminal && !terminal) refreshCharts();
    terminal = p.terminal;
  });

  const show = (text, isError) => {
    msg.hidden = false;
    msg.className = isError ? 'action-msg err' : 'action-msg';
    msg.textContent = text;
  };
  // Two clicks: the first arms the button for 4 s, the second sends. No confirm() dialog.
  const arm = (btn, label, action) => {
    const original = btn.textContent;
    let timer;
    btn.addEventListener('click', async () => {
      if (!btn.classList.contains('confirm')) {
        btn.classList.add('confirm');
        btn.textContent = label;
        timer = setTimeout(() => { btn.classList.remove('confirm'); btn.textContent = original; }, 4000);
        return;
      }
      clearTimeout(timer);
      btn.classList.remove('confirm');
      btn.textContent = original;
      btn.disabled = true;
      const headers = {};
      const token = tokenInput ? tokenInput.value.trim() : '';
      if (token !== '') headers.Authorization = `Bearer ${token}`;
      try {
        const r = await fetch(`/api/jobs/${enc}/${action}`, { method: 'POST', headers });
        const out = await r.json().catch(() => ({}));
        if (r.ok) show(out.message || `${action}: done`, false);
        else {
          show(`${action} refused (${r.status}): ${(out.error && out.error.message) || r.statusText}`, true);
          btn.disabled = false;
        }
      } catch (err) {
        show(`${action} failed: ${err}`, true);
        btn.disabled = false;
      }
    });
  };
  if (stopBtn) arm(stopBtn, 'Click again to stop', 'stop');
  if (replayBtn) arm(replayBtn, 'Click again to replay', 'replay');
}

function fleetPage() {
  const load = async () => {
    try {
      const r = await fetch('/api/fleet');
      if (!r.ok) throw new Error(String(r.status));
      const p = await r.json();
      renderTable(document.getElementById('fleet-apis'), p.apis);
      renderTable(document.getElementById('fleet-daemons'), p.daemons);
      setFields(Object.fromEntries(Object.entries(p.summary).map(([k, v]) => [k, fmt.format(v)])));
      setLive(true);
    } catch {
      setLive(false);
    }
  };
  setInterval(() => { if (!document.hidden) void load(); }, 2000);
  void load();
}

if (page === 'jobs') jobsPage();
else if (page === 'job') jobPage();
else if (page === 'fleet') fleetPage();
