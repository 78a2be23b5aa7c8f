// uPlot charts: a scatter of representations (bytes on a log axis against KL or relative error,
// the chosen one labelled, an optional frontier line) and time series of device figures.
// Every chart's container carries data-points (marks drawn) so a test can count them.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { bytes } from './format.js';

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];

function width(container) {
  return Math.max(280, Math.min(container.clientWidth || 800, 960));
}

/** Makes a chart follow its container's width (window resized, phone rotated). */
function follow(container, plot, height) {
  let last = width(container);
  const ro = new ResizeObserver(() => {
    if (!plot.root.isConnected) return ro.disconnect();
    const w = width(container);
    if (w !== last) { last = w; plot.setSize({ width: w, height }); }
  });
  ro.observe(container);
  return plot;
}

/** Tick positions of a log bytes axis: 1, 2 and 5 times each power of ten within the range. */
function decades(u, axis, min, max) {
  const out = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++)
    for (const m of [1, 2, 5]) if (m * 10 ** e >= min && m * 10 ** e <= max) out.push(m * 10 ** e);
  return out;
}
/** Decimal byte units for the decade ticks (100 kB, 1 MB): round numbers where the ticks sit. */
function si(v) {
  if (v == null) return '';
  const u = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (v >= 1000 && i < u.length - 1) { v /= 1000; i++; }
  return `${Number(v.toPrecision(3))} ${u[i]}`;
}

/** Aligns [x, y] point lists of several series onto one sorted x array (uPlot's data layout). */
function align(seriesPoints) {
  const xs = [...new Set(seriesPoints.flatMap((pts) => pts.map((p) => p[0])))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const ys = seriesPoints.map((pts) => {
    const col = new Array(xs.length).fill(null);
    for (const [x, y] of pts) col[index.get(x)] = y;
    return col;
  });
  return [xs, ...ys];
}

/**
 * series: [{label, points: [[bytes, y, name]], line?: true, chosen?: name}]; marks = points of the
 * non-line series. yLog when every y is > 0.
 */
export function scatterPlot(container, { title, yLabel, series }) {
  container.replaceChildren();
  const all = series.flatMap((s) => s.points);
  const yLog = all.length > 0 && all.every((p) => p[1] > 0);
  const data = align(series.map((s) => s.points));
  const marks = series.filter((s) => !s.line).reduce((n, s) => n + s.points.length, 0);
  const chosen = series.find((s) => s.chosen);
  container.dataset.points = String(marks);
  if (chosen) container.dataset.chosen = chosen.points[0]?.[2] ?? '';
  const opts = {
    title,
    width: width(container),
    height: 360,
    scales: { x: { time: false, distr: 3 }, y: yLog ? { distr: 3 } : {} },
    axes: [
      { label: 'stored bytes (log)', splits: decades, filter: (u, splits) => splits, values: (u, vals) => vals.map(si), size: 50 },
      { label: yLabel, size: 70, values: (u, vals) => vals.map((v) => (v == null ? '' : v < 1e-3 ? v.toExponential(0) : String(Number(v.toPrecision(2))))) },
    ],
    series: [
      { label: 'bytes', value: (u, v) => (v == null ? '–' : bytes(v)) },
      ...series.map((s, i) => ({
        label: s.label,
        stroke: s.chosen ? '#000' : COLORS[i % COLORS.length],
        fill: s.chosen ? '#ffd400' : COLORS[i % COLORS.length],
        width: s.line ? 2 : 0,
        spanGaps: !!s.line,
        paths: s.line ? undefined : () => null,
        points: { show: true, size: s.chosen ? 14 : 8, width: s.chosen ? 2 : 1, fill: s.chosen ? '#ffd400' : COLORS[i % COLORS.length] },
        value: (u, v) => (v == null ? '–' : v.toPrecision(3)),
      })),
    ],
    hooks: {
      draw: [(u) => {
        if (!chosen || !chosen.points.length) return;
        const [x, y, name] = chosen.points[0];
        const cx = u.valToPos(x, 'x', true);
        const cy = u.valToPos(y, 'y', true);
        const ctx = u.ctx;
        ctx.save();
        ctx.font = `${12 * devicePixelRatio}px system-ui, sans-serif`;
        ctx.fillStyle = '#000';
        ctx.fillText(`chosen: ${name}`, cx + 10 * devicePixelRatio, cy - 10 * devicePixelRatio);
        ctx.restore();
      }],
    },
  };
  return follow(container, new uPlot(opts, data, container), opts.height);
}

/**
 * Time series: series [{label, points: [[unix, y]], rel?: [relative uncertainty per point]}]; a
 * series with rel gets an uncertainty band (y·(1 ± rel)).
 */
export function timeChart(container, { title, yLabel, series, unit }) {
  container.replaceChildren();
  const expanded = [];
  const bands = [];
  for (const s of series) {
    const i = expanded.length + 1;
    expanded.push({ label: s.label, points: s.points.map(([t, y]) => [t, y]) });
    if (s.rel) {
      expanded.push({ label: `${s.label} +unc.`, band: true, points: s.points.map(([t, y], k) => [t, y * (1 + (s.rel[k] || 0))]) });
      expanded.push({ label: `${s.label} −unc.`, band: true, points: s.points.map(([t, y], k) => [t, y * (1 - (s.rel[k] || 0))]) });
      bands.push({ series: [i + 1, i + 2], fill: 'rgba(31,119,180,0.15)' });
    }
  }
  const data = align(expanded.map((s) => s.points));
  container.dataset.points = String(series.reduce((n, s) => n + s.points.length, 0));
  let c = 0;
  const opts = {
    title,
    width: width(container),
    height: 240,
    scales: { x: { time: true } },
    axes: [{}, { label: yLabel, size: 70 }],
    bands,
    series: [
      {},
      ...expanded.map((s) => {
        const color = COLORS[(s.band ? c - 1 : c++) % COLORS.length];
        return {
          label: s.label,
          stroke: s.band ? 'rgba(0,0,0,0)' : color,
          width: s.band ? 0 : 2,
          spanGaps: true,
          points: { show: !s.band, size: 7, fill: color },
          value: (u, v) => (v == null ? '–' : `${v.toPrecision(3)} ${unit}`),
        };
      }),
    ],
  };
  return follow(container, new uPlot(opts, data, container), opts.height);
}
