// Numbers with units, and small DOM helpers (no innerHTML with data: text nodes only).
export function bytes(n) {
  if (n == null || !Number.isFinite(n)) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return `${i ? v.toFixed(v < 10 ? 2 : 1) : v} ${u[i]}`;
}
export const num = (v, digits = 4) => (v == null || !Number.isFinite(v) ? '–' : Number(v).toPrecision(digits));
export const pct = (v) => (v == null ? '–' : `${(v * 100).toFixed(0)} %`);
export const secs = (v) => (v == null ? '–' : v < 1 ? `${(v * 1000).toFixed(0)} ms` : `${v.toFixed(2)} s`);
export const ms = (v) => (v == null ? '–' : `${Number(v).toFixed(1)} ms`);
export const ratio = (v) => (v == null || !v ? '–' : `${Number(v).toFixed(2)}×`);
export const when = (unix) => (unix ? new Date(unix * 1000).toLocaleString() : '–');
export const nats = (v) => (v == null ? '–' : `${Number(v).toPrecision(3)} nats/token`);

/** el('tag.class', {attr: v, onclick: f}, ...children) */
export function el(spec, attrs = {}, ...children) {
  const [tag, ...classes] = spec.split('.');
  const e = document.createElement(tag);
  if (classes.length) e.className = classes.join(' ');
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k in e && typeof v !== 'string') e[k] = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c != null && c !== false) e.append(c instanceof Node ? c : String(c));
  return e;
}

/** A table from column headers and rows of cells. */
export function table(headers, rows, caption) {
  return el('table', {},
    caption ? el('caption', {}, caption) : null,
    el('thead', {}, el('tr', {}, headers.map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, rows));
}

/** The problem+json of a failed call as an alert box. */
export function problemBox(err) {
  const p = err.problem || { title: 'Error', detail: String(err.message || err) };
  return el('div.problem', { role: 'alert' }, el('strong', {}, p.title || 'Error'), p.detail ? ` — ${p.detail}` : '');
}
