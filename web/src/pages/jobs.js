// Jobs: the table (state, method or plan, upload/model, progress bars polled while jobs run),
// filters (state, method, upload) and cursor paging as GET /v1/jobs has them, 50 to 1,000 rows a
// page; cancel per job.
import { api, openApi } from '../api.js';
import { el, pct, problemBox, table, when } from '../format.js';

const STATES = ['', 'queued', 'running', 'succeeded', 'failed', 'canceled'];
const live = (s) => s === 'queued' || s === 'running';

export function jobLabel(j) {
  if (j.method === 'plan') {
    const p = j.spec?.plan || {};
    const t = p.target_ratio ? `ratio ${p.target_ratio}×` : p.target_bytes ? `${p.target_bytes} B` : p.max_kl ? `KL ≤ ${p.max_kl}` : '';
    return `plan ${t}`.trim();
  }
  return j.method || 'per-tensor entries';
}

export function progressCell(j) {
  const v = j.state === 'succeeded' ? 1 : j.progress || 0;
  return el('td', {},
    el('progress', { max: 1, value: v, 'aria-label': `progress of ${j.id}`, dataset: { progress: String(v) } }),
    el('span.num', {}, ` ${pct(v)}`), j.phase ? el('span.phase', {}, ` ${j.phase}`) : null);
}

export async function cancelJob(id, box) {
  try {
    await api(`/v1/jobs/${id}`, { method: 'DELETE' });
    return true;
  } catch (e) {
    box.replaceChildren(problemBox(e));
    return false;
  }
}

const PAGE_SIZES = [50, 200, 1000];
const API_MAX = 500;  // GET /v1/jobs's largest limit

/** Up to `limit` jobs from the cursor in `q` on: API pages of <= API_MAX followed along next_cursor. */
async function fetchPage(q, limit) {
  const jobs = [];
  let cursor = q.get('cursor') || '';
  for (;;) {
    const p = new URLSearchParams(q);
    if (cursor) p.set('cursor', cursor);
    p.set('limit', String(Math.min(API_MAX, limit - jobs.length)));
    const part = await api(`/v1/jobs?${p}`);
    jobs.push(...part.jobs);
    cursor = part.next_cursor;
    if (!cursor || jobs.length >= limit) return { jobs, next_cursor: cursor };
  }
}

export async function jobsPage(main, [query], state) {
  const params = new URLSearchParams((query || '').slice(1));
  const cursors = (params.get('trail') || '').split(',').filter(Boolean);  // cursors of the previous pages
  const api_q = new URLSearchParams();
  for (const k of ['state', 'method', 'upload', 'cursor']) if (params.get(k)) api_q.set(k, params.get(k));
  // Rows per page: the API answers at most API_MAX a call, so a larger page is fetched in chunks
  // along next_cursor.
  const limit = PAGE_SIZES.includes(Number(params.get('limit'))) ? Number(params.get('limit')) : PAGE_SIZES[0];

  const doc = await openApi().catch(() => null);
  const methods = ['', 'plan', ...Object.keys(doc?.['x-methods'] || {})];
  const go = (changes) => {
    const p = new URLSearchParams(params);
    for (const [k, v] of Object.entries(changes)) (v ? p.set(k, v) : p.delete(k));
    location.hash = `#/jobs?${p}`;
  };
  const filter = (name, values) => el('label', {}, `${name} `,
    el('select', { name, onchange: (e) => go({ [name]: e.target.value, cursor: '', trail: '' }) },
      values.map((v) => el('option', { value: v, selected: params.get(name) === v }, v || 'any'))));
  const upload = el('input', { name: 'upload', value: params.get('upload') || '', placeholder: 'u_…', size: 20 });
  const form = el('form.filters', { onsubmit: (e) => { e.preventDefault(); go({ upload: upload.value.trim(), cursor: '', trail: '' }); } },
    filter('state', STATES), filter('method', methods), el('label', {}, 'upload ', upload), el('button', { type: 'submit' }, 'Filter'),
    el('label', {}, 'per page ', el('select', { name: 'limit', onchange: (e) => go({ limit: e.target.value, cursor: '', trail: '' }) },
      PAGE_SIZES.map((n) => el('option', { value: n, selected: n === limit }, n)))));
  const box = el('div');
  const body = el('div');
  main.append(el('h1', {}, 'Jobs'), form, box, body);

  const render = (list) => {
    const rows = list.jobs.map((j) => el('tr', { dataset: { jobId: j.id, state: j.state } },
      el('td', {}, el('a', { href: `#/jobs/${j.id}` }, j.id)),
      el('td', {}, el('span', { class: `state ${j.state}` }, j.state)),
      progressCell(j),
      el('td', {}, jobLabel(j)),
      el('td', {}, j.spec?.publish ? `${j.spec.publish.model}:${j.spec.publish.tag}` : j.upload),
      el('td', {}, when(j.created_unix)),
      el('td', {}, live(j.state)
        ? el('button', { type: 'button', class: 'cancel', 'aria-label': `Cancel ${j.id}`,
          onclick: async (e) => { e.target.disabled = true; if (await cancelJob(j.id, box)) refresh(); } }, 'Cancel')
        : '')));
    const nav = el('nav.pager', { 'aria-label': 'Pages of jobs' },
      cursors.length ? el('button', { type: 'button', onclick: () => go({ cursor: cursors.slice(-1)[0] === '0' ? '' : cursors.slice(-1)[0], trail: cursors.slice(0, -1).join(',') }) }, '← Newer') : null,
      list.next_cursor ? el('button', { type: 'button', onclick: () => go({ cursor: list.next_cursor, trail: [...cursors, params.get('cursor') || '0'].join(',') }) }, 'Older →') : null);
    body.replaceChildren(
      list.jobs.length ? table(['job', 'state', 'progress', 'method or plan', 'model or upload', 'created', ''], rows, `${list.jobs.length} job${list.jobs.length === 1 ? "" : "s"}`)
        : el('p', {}, 'No jobs match.'), nav);
    return list.jobs.some((j) => live(j.state));
  };
  const refresh = async () => {
    if (!state.alive) return;
    try {
      const list = await fetchPage(api_q, limit);
      if (!state.alive) return;
      const keepFocus = document.activeElement?.getAttribute('aria-label');
      const running = render(list);
      if (keepFocus) body.querySelector(`[aria-label="${CSS.escape(keepFocus)}"]`)?.focus();
      if (running) state.timers.push(setTimeout(refresh, 1000));
    } catch (e) {
      body.replaceChildren(problemBox(e));
    }
  };
  await refresh();
}
