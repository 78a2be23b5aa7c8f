// uPlot charts: a scatter of representations (bytes on a log axis against KL or relative error,
// the chosen one labelled, an optional frontier line) and time series of device figures.
// Every chart's container carries data-points (marks drawn) so a test can count them; a scatter's
// also data-marks (their names, JSON), data-chosen, and for a line series data-line-points and
// data-line-px (its vertices in canvas pixels, set when drawn).
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

/**
 * Range of a log axis: the data's, widened by a quarter on each side (uPlot's own log range snaps
 * to whole decades, which left 2-4 MB of points crowded into a 1-10 MB axis).
 */
function logRange(u, min, max) {
  if (min == null || max == null || !(min > 0)) return [1, 10];
  if (min === max) return [min / 2, max * 2];
  return [min / 1.25, max * 1.25];
}

/**
 * Tick positions of a log axis: 1, 2 and 5 times each power of ten within the range, every integer
 * mantissa when the range spans under two decades, powers of ten only past six.
 */
function logSplits(u, axis, min, max) {
  const span = Math.log10(max / min);
  const ms = span < 2 ? [1, 2, 3, 4, 5, 6, 7, 8, 9] : span <= 6 ? [1, 2, 5] : [1];
  const out = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++)
    for (const m of ms) {
      const v = Number((m * 10 ** e).toPrecision(6));
      if (v >= min && v <= max) out.push(v);
    }
  return out;
}

/**
 * Labels of a log axis's ticks, blank where a label would crowd another (closer than `gap` CSS
 * pixels along the axis): powers of ten placed first, then 5x, 2x, the rest; the grid line stays.
 */
function spacedLabels(format, gap) {
  const rank = (v) => { const m = Math.round(v / 10 ** Math.floor(Math.log10(v) + 1e-9)); return m === 1 ? 0 : m === 5 ? 1 : m === 2 ? 2 : 3; };
  return (u, splits, axis) => {
    const scale = u.axes[axis].scale;
    const placed = [];
    const out = splits.map(() => '');
    const order = splits.map((v, i) => i).filter((i) => splits[i] > 0).sort((a, b) => rank(splits[a]) - rank(splits[b]) || a - b);
    for (const i of order) {
      const pos = u.valToPos(splits[i], scale);
      if (placed.some((p) => Math.abs(p - pos) < gap)) continue;
      placed.push(pos);
      out[i] = format(splits[i]);
    }
    return out;
  };
}
const small = (v) => (v === 0 ? '0' : Math.abs(v) < 1e-3 ? v.toExponential(0) : String(Number(v.toPrecision(2))));

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
  const markPoints = series.filter((s) => !s.line).flatMap((s) => s.points);
  const line = series.find((s) => s.line);
  const chosen = series.find((s) => s.chosen);
  container.dataset.points = String(markPoints.length);
  container.dataset.marks = JSON.stringify(markPoints.map((p) => p[2]));
  if (line) container.dataset.linePoints = String(line.points.length);
  if (chosen) container.dataset.chosen = chosen.points[0]?.[2] ?? '';
  const opts = {
    title,
    width: width(container),
    height: 360,
    scales: { x: { time: false, distr: 3, range: logRange }, y: yLog ? { distr: 3, range: logRange } : {} },
    axes: [
      { label: 'stored bytes (log)', splits: logSplits, filter: (u, splits) => splits, values: spacedLabels(si, 64), size: 50 },
      yLog ? { label: yLabel, size: 70, splits: logSplits, filter: (u, splits) => splits, values: spacedLabels(small, 18) }
        : { label: yLabel, size: 70, values: (u, vals) => vals.map((v) => (v == null ? '' : small(v))) },
    ],
    series: [
      { label: 'bytes', value: (u, v) => (v == null ? '–' : bytes(v)) },
      ...series.map((s, i) => ({
        label: s.label,
        stroke: s.chosen ? '#000' : COLORS[i % COLORS.length],
        fill: s.line ? undefined : s.chosen ? '#ffd400' : COLORS[i % COLORS.length],  // a line's fill would shade the area under it
        width: s.line ? 2 : 0,
        spanGaps: !!s.line,
        paths: s.line ? undefined : () => null,
        points: { show: true, size: s.chosen ? 14 : s.line ? 5 : 8, width: s.chosen ? 2 : 1, fill: s.chosen ? '#ffd400' : COLORS[i % COLORS.length] },
        value: (u, v) => (v == null ? '–' : v.toPrecision(3)),
      })),
    ],
    hooks: {
      draw: [(u) => {
        // Where the line's vertices landed, in canvas pixels (a test samples the segments between them).
        if (line) container.dataset.linePx = JSON.stringify(line.points.map(([x, y]) => [Math.round(u.valToPos(x, 'x', true)), Math.round(u.valToPos(y, 'y', true))]));
        if (!chosen || !chosen.points.length) return;
        const [x, y, name] = chosen.points[0];
        const cx = u.valToPos(x, 'x', true);
        const cy = u.valToPos(y, 'y', true);
        const ctx = u.ctx;
        ctx.save();
        ctx.font = `${12 * devicePixelRatio}px system-ui, sans-serif`;
        // A white halo keeps the label readable over the frontier line and the grid.
        const [tx, ty] = [cx + 10 * devicePixelRatio, cy - 10 * devicePixelRatio];
        ctx.lineWidth = 4 * devicePixelRatio;
        ctx.lineJoin = 'round';
        ctx.strokeStyle = '#fff';
        ctx.strokeText(`chosen: ${name}`, tx, ty);
        ctx.fillStyle = '#000';
        ctx.fillText(`chosen: ${name}`, tx, ty);
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
