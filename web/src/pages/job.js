// Job: the request, timings per phase, the result table with every baseline, the plot (bytes, log,
// against KL where the model ran, else relative error; the chosen representation labelled; the
// planner's frontier as a line), artifact downloads. Polls while the job is queued or running.
import { api, download } from '../api.js';
import { scatterPlot } from '../charts.js';
import { bytes, el, nats, num, problemBox, ratio, secs, table, when } from '../format.js';
import { cancelJob, jobLabel, progressCell } from './jobs.js';

function timingsTable(t) {
  if (!t) return el('p', {}, 'No timings yet.');
  const rows = [];
  for (const [k, v] of Object.entries(t)) {
    if (k === 'phases' && v && typeof v === 'object') {
      for (const [pk, pv] of Object.entries(v)) rows.push(el('tr', {}, el('td', {}, `phase ${pk.replace(/_s$/, '')}`), el('td.num', {}, secs(pv))));
    } else if (typeof v === 'number') {
      rows.push(el('tr', {}, el('td', {}, k.replace(/_s$/, '')), el('td.num', {}, secs(v))));
    }
  }
  return table(['phase', 'time'], rows, 'Timings');
}

function metricCells(m) {
  return [el('td.num', {}, bytes(m.stored_bytes)), el('td.num', {}, ratio(m.ratio_f32)),
    el('td.num', {}, num(m.rel_error)), el('td.num', {}, num(m.cos_mean))];
}

function resultTable(result) {
  const rows = [];
  for (const t of result.tensors || []) {
    rows.push(el('tr.chosen', {}, el('td', {}, t.name), el('td', {}, el('strong', {}, t.method), ' (chosen)'),
      el('td', {}, (t.shape || []).join('×')), ...metricCells(t.metrics || {})));
    for (const b of t.baselines || [])
      rows.push(el('tr', {}, el('td', {}, ''), el('td', {}, `${b.method} (baseline)`), el('td', {}, ''), ...metricCells(b.metrics || {})));
  }
  return table(['tensor', 'representation', 'shape', 'stored', 'ratio vs f32', 'rel. error', 'mean cos'], rows, 'Result per tensor, with baselines');
}

function qualityTable(q) {
  const rows = [el('tr.chosen', {}, el('td', {}, el('strong', {}, 'this job')), el('td.num', {}, '–'), el('td.num', {}, nats(q.kl_mean)),
    el('td.num', {}, num(q.top1_agreement)), el('td.num', {}, num(q.ppl_compressed)))];
  for (const a of q.alternatives || [])
    rows.push(el('tr', {}, el('td', {}, a.method), el('td.num', {}, bytes(a.stored_bytes)), el('td.num', {}, nats(a.kl_mean)),
      el('td.num', {}, num(a.top1_agreement)), el('td.num', {}, num(a.ppl))));
  return el('div', {}, table(['representation', 'stored', 'KL (dense ‖ this)', 'top-1 agreement', 'perplexity'], rows,
    `Model quality over ${q.tokens} tokens (dense perplexity ${num(q.ppl_dense)})`), q.verdict ? el('p', {}, q.verdict) : null);
}

/** The series to plot and their y label, from whatever figures the result carries. */
export function plotSeries(job, tensorIndex = 0) {
  const r = job.result || {};
  const label = jobLabel(job);
  if (r.plan && (r.plan.frontier || r.plan.uniform)) {
    const p = r.plan;
    const kl = p.kl_verified ?? p.kl_repair ?? p.kl_estimate;
    return {
      yLabel: 'KL (nats/token)',
      series: [
        { label: 'frontier', line: true, points: (p.frontier || []).map((f) => [f.bytes, f.kl_measured ?? f.kl_estimate, 'frontier']) },
        { label: 'uniform', points: (p.uniform || []).filter((u) => u.kl_measured != null).map((u) => [u.bytes, u.kl_measured, u.method]) },
        { label: 'chosen plan', chosen: 'plan', points: kl != null ? [[p.bytes, kl, 'plan']] : [] },
      ],
    };
  }
  if (r.quality && r.quality.alternatives) {
    const q = r.quality;
    return {
      yLabel: 'KL (nats/token)',
      series: [
        { label: 'reference representations', points: q.alternatives.map((a) => [a.stored_bytes, a.kl_mean, a.method]) },
        { label: label, chosen: label, points: [[r.total?.stored_bytes, q.kl_mean, label]] },
      ],
    };
  }
  const t = (r.tensors || [])[tensorIndex];
  if (!t) return null;
  return {
    yLabel: 'relative error',
    series: [
      { label: 'baselines', points: (t.baselines || []).map((b) => [b.metrics.stored_bytes, b.metrics.rel_error, b.method]) },
      { label: t.method, chosen: t.method, points: [[t.metrics.stored_bytes, t.metrics.rel_error, t.method]] },
    ],
  };
}

export async function jobPage(main, [id], state) {
  const box = el('div');
  const head = el('div');
  const body = el('div');
  main.append(el('h1', {}, `Job ${id}`), box, head, body);
  let drawn = false;
  const refresh = async () => {
    if (!state.alive) return;
    let j;
    try {
      j = await api(`/v1/jobs/${id}`);
    } catch (e) {
      box.replaceChildren(problemBox(e));
      return;
    }
    if (!state.alive) return;
    const live = j.state === 'queued' || j.state === 'running';
    const hadFocus = document.activeElement?.classList.contains('cancel');
    head.replaceChildren(table(['state', 'progress', 'method or plan', 'upload', 'created', 'finished', ''], [el('tr', { dataset: { jobId: j.id, state: j.state } },
      el('td', {}, el('span', { class: `state ${j.state}` }, j.state)), progressCell(j), el('td', {}, jobLabel(j)), el('td', {}, j.upload),
      el('td', {}, when(j.created_unix)), el('td', {}, when(j.finished_unix)),
      el('td', {}, live ? el('button', { type: 'button', class: 'cancel', onclick: async (e) => { e.target.disabled = true; if (await cancelJob(j.id, box)) refresh(); } }, 'Cancel') : ''))]),
    ...(j.error ? [el('div.problem', { role: 'alert' }, el('strong', {}, 'Job failed'), ` — ${j.error}`)] : []));
    if (hadFocus) head.querySelector('.cancel')?.focus();
    if (live) {
      state.timers.push(setTimeout(refresh, 1000));
      if (!drawn) body.replaceChildren(el('h2', {}, 'Request'), el('pre', {}, JSON.stringify(j.spec, null, 2)));
      return;
    }
    drawn = true;
    const r = j.result || {};
    const parts = [];
    const plot = el('div.plot', { id: 'plot', role: 'img', 'aria-label': 'stored bytes against quality, one mark per representation' });
    if (j.result) {
      parts.push(el('h2', {}, 'Size against quality'));
      const tensors = r.tensors || [];
      if (!r.plan && !r.quality && tensors.length > 1) {
        const pick = el('select', { 'aria-label': 'tensor to plot', onchange: (e) => draw(Number(e.target.value)) },
          tensors.map((t, i) => el('option', { value: i }, t.name)));
        parts.push(el('label', {}, 'tensor ', pick));
      }
      parts.push(plot);
      if (r.artifact) {
        const a = r.artifact;
        parts.push(el('h2', {}, 'Artifact'), el('p', {}, `${a.sha256} · ${bytes(a.size_bytes)} `,
          el('button', { type: 'button', onclick: () => download(a.url, `${a.sha256}.tsm`).catch((e) => box.replaceChildren(problemBox(e))) }, 'Download .tsm'), ' ',
          el('button', { type: 'button', onclick: () => download(`${a.url}?format=safetensors`, `${a.sha256}.safetensors`).catch((e) => box.replaceChildren(problemBox(e))) }, 'Download safetensors')));
      }
      if (r.published) parts.push(el('p', {}, `Published as ${r.published.model}:${r.published.tag}`));
      if (r.plan?.message) parts.push(el('p', {}, `Planner: ${r.plan.message}`));
      if (r.quality) parts.push(qualityTable(r.quality));
      if (tensors.length) parts.push(resultTable(r));
    }
    parts.push(timingsTable(j.timings), el('h2', {}, 'Request'), el('pre', {}, JSON.stringify(j.spec, null, 2)));
    body.replaceChildren(...parts);
    const draw = (i) => {
      const s = plotSeries(j, i);
      if (s) scatterPlot(plot, { title: s.yLabel === 'relative error' ? `${r.tensors[i].name}: bytes vs relative error` : 'bytes vs KL', ...s });
    };
    if (j.result) draw(0);
  };
  await refresh();
}
