// Devices: per device and model version, the summary (TTFT, latency percentiles, tokens/s, energy
// per query with its source) and charts over time from the individual reports (GET /v1/reports):
// latency p50/p90, TTFT, tokens/s, energy per query with its stated uncertainty as a band.
import { api } from '../api.js';
import { timeChart } from '../charts.js';
import { el, ms, num, table, when } from '../format.js';

const compressedRun = (rep) => (rep.runs || []).find((r) => r.variant === 'compressed') || (rep.runs || [])[0];

export async function devicesPage(main) {
  main.append(el('h1', {}, 'Devices'));
  const [{ groups }, { reports }] = await Promise.all([api('/v1/reports/summary'), api('/v1/reports?limit=2000')]);
  if (!groups.length) {
    main.append(el('p', {}, 'No device has posted a report yet (POST /v1/devices/{id}/reports; tensorslm-agent does).'));
    return;
  }
  const rows = groups.map((g) => el('tr', {},
    el('td', {}, g.device), el('td', {}, `${g.model}:${g.tag}`), el('td.num', {}, g.reports),
    el('td.num', {}, ms(g.ttft_p50_ms)), el('td.num', {}, ms(g.latency_ms?.p50)), el('td.num', {}, ms(g.latency_ms?.p90)),
    el('td.num', {}, ms(g.latency_ms?.p99)), el('td.num', {}, g.tokens_per_s_mean == null ? '–' : `${num(g.tokens_per_s_mean, 3)} tok/s`),
    el('td.num', {}, g.joules_per_query_mean == null ? '–' : `${num(g.joules_per_query_mean, 3)} J`), el('td', {}, g.energy_source || '–'),
    el('td', {}, when(g.last_unix))));
  main.append(table(['device', 'model version', 'reports', 'TTFT p50', 'latency p50', 'p90', 'p99', 'tokens/s', 'energy/query', 'energy source', 'last report'],
    rows, 'Per device and model version'));

  // One series per (device, model:tag), oldest first.
  const byKey = new Map();
  for (const r of [...reports].sort((a, b) => a.created_unix - b.created_unix)) {
    const run = compressedRun(r.report || {});
    if (!run) continue;
    const key = `${r.device} · ${r.model}:${r.tag}`;
    if (!byKey.has(key)) byKey.set(key, []);
    byKey.get(key).push({ t: r.created_unix, run });
  }
  const series = (pick, withRel) => [...byKey].map(([label, pts]) => {
    const kept = pts.filter((p) => pick(p.run) != null);
    return { label, points: kept.map((p) => [p.t, pick(p.run)]), rel: withRel ? kept.map((p) => p.run.energy?.uncertainty_rel || 0) : undefined };
  }).filter((s) => s.points.length);
  const charts = [
    ['chart-latency', 'Latency p50 per report', 'ms', (r) => r.p50_ms],
    ['chart-ttft', 'Time to first token (p50)', 'ms', (r) => r.ttft_p50_ms],
    ['chart-tps', 'Tokens per second', 'tok/s', (r) => r.tokens_per_s],
    ['chart-energy', 'Energy per query (band: stated uncertainty)', 'J', (r) => r.energy?.joules_per_query, true],
  ];
  const sources = [...new Set([...byKey.values()].flat().map((p) => p.run.energy?.source).filter(Boolean))];
  for (const [id, title, unit, pick, rel] of charts) {
    const s = series(pick, rel);
    if (!s.length) continue;
    const box = el('div.plot', { id, role: 'img', 'aria-label': title });
    main.append(el('section', {}, el('h2', {}, title), rel ? el('p.hint', {}, `energy source: ${sources.join(', ') || 'not stated'}`) : null, box));
    timeChart(box, { title: '', yLabel: unit, unit, series: s });
  }
}
