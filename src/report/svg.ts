// The chart shapes the report draws, as inline SVG strings: grouped vertical bars (with whiskers and a
// reference line), rows of horizontal bars, and a scatter of points (a search's trials). No report knowledge
// here: charts.ts and search-html.ts decide what to plot.
// Hand-made, not a chart library, because these shapes fit in this small module, while the libraries that
// render SVG without a browser (ECharts' server-side renderer, Vega) would be a large runtime dependency of the
// CLI and the service whose markup (namespace URLs, generated ids and inline styles) would need rewriting to
// keep the report's no-network checks, its <title>-first charts and its one stylesheet.
import { escapeHtml as esc } from './escape.js';

export const CHART_W = 530;
const CHART_H = 290;

/** SVG text can't be measured without a browser; this over-estimates a little so labels don't collide. */
const textWidth = (s: string, size: number): number => s.length * size * 0.6;

/** Cut at the end, to fit `maxPx` at font size `size`. */
export function fit(s: string, maxPx: number, size: number): string {
  if (textWidth(s, size) <= maxPx) return s;
  const n = Math.max(1, Math.floor(maxPx / (size * 0.6)) - 1);
  return `${s.slice(0, n)}…`;
}

/** Cut in the middle: node-name paths differ at their ends (`/enc/block3/…`), so keep both. */
function fitMiddle(s: string, maxPx: number, size: number): string {
  if (textWidth(s, size) <= maxPx) return s;
  const n = Math.max(2, Math.floor(maxPx / (size * 0.6)) - 1);
  const head = Math.ceil(n * 0.4);
  return `${s.slice(0, head)}…${s.slice(s.length - (n - head))}`;
}

/** Coordinates to 0.1 px: enough for a crisp picture, and keeps the document small. */
const r1 = (x: number): string => String(Math.round(x * 10) / 10);

interface Scale {
  min: number;
  max: number;
  ticks: number[];
  /** Decimals that tell the ticks apart. */
  decimals: number;
}

/** An axis from lo to hi in steps of 1, 2, 2.5 or 5 times a power of ten, about `target` of them. */
function niceScale(lo: number, hi: number, target = 5): Scale {
  if (!(hi > lo)) hi = lo + 1;
  const raw = (hi - lo) / target;
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  const step = (m <= 1 ? 1 : m <= 2 ? 2 : m <= 2.5 ? 2.5 : m <= 5 ? 5 : 10) * p;
  const min = Math.floor(lo / step + 1e-9) * step;
  const max = Math.ceil(hi / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let v = min; v <= max + step * 1e-6; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9)) + (m > 2 && m <= 2.5 ? 1 : 0);
  return { min, max, ticks, decimals };
}

export interface LegendItem {
  color: string;
  label: string;
  /** Drawn as a dashed line (a reference line) instead of a swatch. */
  line?: boolean;
  /** Drawn as a scatter marker instead of a square swatch: filled, outlined only, or a ring. */
  marker?: 'circle' | 'square' | 'hollow' | 'ring';
}

/** Legend items left to right, wrapping; returns the rows used so the plot can start below them. */
function legend(items: LegendItem[], x: number, y: number, maxX: number): { svg: string; rows: number } {
  let out = '';
  let cx = x;
  let cy = y;
  for (const it of items) {
    const w = 16 + textWidth(it.label, 11) + 14;
    if (cx + w > maxX && cx > x) {
      cx = x;
      cy += 16;
    }
    out += it.line
      ? `<line class="ref" x1="${r1(cx - 2)}" x2="${r1(cx + 12)}" y1="${r1(cy - 4)}" y2="${r1(cy - 4)}"/>`
      : it.marker
        ? marker(it.marker === 'square' ? 'square' : 'circle', cx + 5, cy - 4, it.marker === 'ring' ? 6 : 5, it.marker === 'circle' || it.marker === 'square' ? it.color : it.marker === 'hollow' ? '#fff' : 'none', {
            ...(it.marker === 'hollow' ? { stroke: it.color } : {}),
            ...(it.marker === 'ring' ? { stroke: it.color, 'stroke-width': '3' } : {}),
          })
        : `<rect x="${r1(cx)}" y="${r1(cy - 9)}" width="10" height="10" rx="2" fill="${it.color}"/>`;
    out += `<text class="leg" x="${r1(cx + 15)}" y="${r1(cy)}">${esc(it.label)}</text>`;
    cx += w;
  }
  return { svg: out, rows: items.length ? 1 + Math.round((cy - y) / 16) : 0 };
}

/** `data-chart` (and any `attrs`) let tests and readers find a chart; the <title> comes first for screen readers. */
function svgOpen(chart: string, title: string, w: number, h: number, attrs: Record<string, string>): string {
  return `<svg data-chart="${esc(chart)}"${attrText(attrs)} role="img" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}"><title>${esc(title)}</title>`;
}

const attrText = (attrs: Record<string, string>): string =>
  Object.entries(attrs)
    .map(([k, v]) => ` ${k}="${esc(v)}"`)
    .join('');

export interface Bar {
  value: number;
  low?: number;
  high?: number;
  color: string;
  /** Printed above the bar when it fits. */
  label: string;
  /** Printed under the bar. */
  tick?: string;
  tooltip: string;
}

export interface BarGroup {
  label: string;
  bars: Bar[];
}

export interface BarChartSpec {
  chart: string;
  title: string;
  yLabel: string;
  groups: BarGroup[];
  legend: LegendItem[];
  refLine?: { value: number; label: string };
  /** Tick labels of the value axis; `decimals` is what tells the ticks apart. */
  yFormat?: (v: number, decimals: number) => string;
  /**
   * The value axis spans the data, not 0 (bars then rise from the axis's low end): values close
   * together (92.7% against 91.8%) differ visibly. The axis label says where it starts.
   */
  zoom?: boolean;
}

/** Vertical grouped bars with optional whiskers (low/high) and a reference line. */
export function barChart(c: BarChartSpec): string {
  const W = CHART_W;
  const H = CHART_H;
  const hasTicks = c.groups.some((g) => g.bars.some((b) => b.tick));
  const leg = legend(c.refLine ? [...c.legend, { color: '', label: c.refLine.label, line: true }] : c.legend, 62, 16, W - 16);
  const m = { l: 62, r: 16, t: 20 + leg.rows * 16 + 8, b: hasTicks ? 44 : 28 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const vals: number[] = [];
  for (const g of c.groups) for (const b of g.bars) for (const v of [b.value, b.low, b.high]) if (v !== undefined && Number.isFinite(v)) vals.push(v);
  if (c.refLine) vals.push(c.refLine.value);
  let lo = c.zoom && vals.length ? Math.min(...vals) : Math.min(0, ...vals);
  let hi = c.zoom && vals.length ? Math.max(...vals) : Math.max(0, ...vals);
  if (hi === lo) {
    const pad = c.zoom ? Math.max(Math.abs(hi) * 0.01, 1e-6) : 1;
    lo -= c.zoom ? pad : 0;
    hi += pad;
  }
  if (c.zoom) lo -= (hi - lo) * 0.6; // the smallest bar keeps a visible height
  hi += (hi - lo) * 0.12; // room for the value labels
  if (!c.zoom && lo < 0) lo -= (hi - lo) * 0.08;
  const s = niceScale(lo, hi);
  const y = (v: number): number => m.t + ((s.max - Math.min(s.max, Math.max(s.min, v))) / (s.max - s.min)) * ph;
  const fmtY = c.yFormat ?? ((v: number, d: number) => v.toFixed(d));
  const base = c.zoom ? s.min : 0; // where bars start
  const yLabel = c.zoom && s.min !== 0 ? `${c.yLabel} (axis from ${fmtY(s.min, s.decimals)})` : c.yLabel;

  let out = svgOpen(c.chart, c.title, W, H, {});
  out += leg.svg;
  for (const t of s.ticks) {
    out += `<line class="grid" x1="${m.l}" x2="${W - m.r}" y1="${r1(y(t))}" y2="${r1(y(t))}"/>`;
    out += `<text class="tick" x="${m.l - 6}" y="${r1(y(t) + 4)}" text-anchor="end">${esc(fmtY(t, s.decimals))}</text>`;
  }
  out += `<text class="axis" transform="translate(14 ${r1(m.t + ph / 2)}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`;

  const slot = pw / Math.max(1, c.groups.length);
  c.groups.forEach((g, gi) => {
    const n = Math.max(1, g.bars.length);
    const inner = slot * 0.8;
    const bw = Math.min(56, inner / n);
    const start = m.l + gi * slot + (slot - bw * n) / 2;
    g.bars.forEach((b, bi) => {
      const x = start + bi * bw;
      const gap = Math.min(6, bw * 0.18);
      const cx = x + bw / 2;
      const v = b.value;
      const y0 = y(base);
      let top = y0;
      if (!Number.isNaN(v)) {
        const yv = y(v); // ±Infinity clamps to the plot edge
        top = Math.min(yv, y0);
        const h = Math.max(Math.abs(y0 - yv), v === base ? 0 : 1);
        out += `<rect x="${r1(x + gap / 2)}" y="${r1(top)}" width="${r1(bw - gap)}" height="${r1(h)}" fill="${b.color}"><title>${esc(b.tooltip)}</title></rect>`;
      }
      if (b.low !== undefined && b.high !== undefined && Number.isFinite(b.low) && Number.isFinite(b.high)) {
        const yl = y(b.low);
        const yh = y(b.high);
        const capW = Math.min(6, bw / 4);
        out += `<path class="whisker" d="M${r1(cx)} ${r1(yl)}V${r1(yh)}M${r1(cx - capW)} ${r1(yl)}H${r1(cx + capW)}M${r1(cx - capW)} ${r1(yh)}H${r1(cx + capW)}"/>`;
        top = Math.min(top, yh);
      }
      const labelFits = textWidth(b.label, 10) <= bw + 4 || (n === 1 && textWidth(b.label, 10) <= slot - 4);
      if (b.label && labelFits) {
        const ly = v < base ? y(v) + 12 : top - 4;
        out += `<text class="val" x="${r1(cx)}" y="${r1(ly)}" text-anchor="middle">${esc(b.label)}</text>`;
      }
      if (b.tick) out += `<text class="tick" x="${r1(cx)}" y="${H - m.b + 14}" text-anchor="middle">${esc(fit(b.tick, bw + 2, 10))}</text>`;
    });
    out += `<text class="grp" x="${r1(m.l + gi * slot + slot / 2)}" y="${H - 8}" text-anchor="middle">${esc(fit(g.label, slot - 6, 11))}<title>${esc(g.label)}</title></text>`;
  });
  out += `<line class="axisline" x1="${m.l}" x2="${W - m.r}" y1="${r1(y(base))}" y2="${r1(y(base))}"/>`;
  if (c.refLine) {
    const yr = r1(y(c.refLine.value));
    out += `<line class="ref" x1="${m.l}" x2="${W - m.r}" y1="${yr}" y2="${yr}"/>`;
  }
  return `${out}</svg>`;
}

export interface RowChartSpec {
  chart: string;
  /** Further attributes of the <svg>, e.g. which stage it shows. */
  attrs?: Record<string, string>;
  title: string;
  /** One row per item; every row has the same number of bars (one per series, as in the legend). */
  rows: { label: string; bars: Omit<Bar, 'low' | 'high' | 'tick'>[] }[];
  legend: LegendItem[];
  /** The value axis reaches at least this far, so tiny values don't fill the plot. */
  atLeast: number;
  xFormat: (v: number, decimals: number) => string;
}

/** Rows of horizontal bars from a common axis, label on the left, value at the bar's end. */
export function rowChart(c: RowChartSpec): string {
  const W = CHART_W;
  const labelW = 214;
  const valueW = 48;
  const series = Math.max(1, ...c.rows.map((r) => r.bars.length));
  const bh = series > 1 ? 9 : 11;
  const rowH = series > 1 ? series * (bh + 2) + 2 : 16;
  const m = { t: 34, b: 26 };
  const H = m.t + Math.max(1, c.rows.length) * rowH + m.b;
  const x0 = labelW;
  const pw = W - labelW - valueW - 8;
  const s = niceScale(0, Math.max(c.atLeast, ...c.rows.flatMap((r) => r.bars.map((b) => b.value)).filter(Number.isFinite)), 4);
  const x = (v: number): number => x0 + (Math.max(0, Math.min(s.max, v)) / s.max) * pw;

  let out = svgOpen(c.chart, c.title, W, H, c.attrs ?? {});
  out += legend(c.legend, x0, 16, W).svg;
  for (const t of s.ticks) {
    out += `<line class="grid" x1="${r1(x(t))}" x2="${r1(x(t))}" y1="${m.t - 4}" y2="${H - m.b}"/>`;
    out += `<text class="tick" x="${r1(x(t))}" y="${H - m.b + 14}" text-anchor="middle">${esc(c.xFormat(t, s.decimals))}</text>`;
  }
  c.rows.forEach((row, i) => {
    const top = m.t + i * rowH;
    const mid = top + (series * (bh + 2) - 2) / 2;
    out += `<text class="rowlabel" x="${x0 - 8}" y="${r1(mid + 4)}" text-anchor="end">${esc(fitMiddle(row.label, labelW - 12, 11))}<title>${esc(row.label)}</title></text>`;
    row.bars.forEach((b, k) => {
      const y = top + k * (bh + 2);
      const w = Number.isFinite(b.value) ? Math.max(b.value > 0 ? 1 : 0, x(b.value) - x0) : 0;
      out += `<rect x="${x0}" y="${y}" width="${r1(w)}" height="${bh}" fill="${b.color}"><title>${esc(b.tooltip)}</title></rect>`;
      out += `<text class="val" x="${r1(x0 + w + 4)}" y="${y + bh - 1}">${esc(b.label)}</text>`;
    });
  });
  out += `<line class="axisline" x1="${x0}" x2="${x0}" y1="${m.t - 4}" y2="${H - m.b}"/>`;
  return `${out}</svg>`;
}

/** A circle or a square of "radius" r centred on (x, y); `extra` are further attributes. */
function marker(shape: 'circle' | 'square', x: number, y: number, r: number, fill: string, extra: Record<string, string>, body = ''): string {
  const attrs = attrText(extra);
  const tag = shape === 'square' ? 'rect' : 'circle';
  const geom = shape === 'square' ? `x="${r1(x - r)}" y="${r1(y - r)}" width="${r1(2 * r)}" height="${r1(2 * r)}"` : `cx="${r1(x)}" cy="${r1(y)}" r="${r1(r)}"`;
  return body ? `<${tag} ${geom} fill="${fill}"${attrs}>${body}</${tag}>` : `<${tag} ${geom} fill="${fill}"${attrs}/>`;
}

export interface ScatterPoint {
  x: number;
  y: number;
  /** Marker "radius" in px: the caller encodes a third quantity in it (by area). */
  r: number;
  shape: 'circle' | 'square';
  color: string;
  /** Drawn pale: context rather than the point of the chart. */
  faint?: boolean;
  /** A ring of this colour around the marker (the one chosen). */
  ring?: string;
  /** The spread of x, drawn as a horizontal whisker. */
  xLow?: number;
  xHigh?: number;
  /** Printed beside the marker. */
  label?: string;
  tooltip: string;
  /** Attributes of the marker element (`class`, `data-*`): how tests and readers find it. */
  attrs: Record<string, string>;
}

/** A point with a y and no x: drawn in a strip beside the plot, never at an x it does not have. */
export interface EdgePoint {
  y: number;
  tooltip: string;
  ring?: string;
  attrs: Record<string, string>;
}

export interface ScatterSpec {
  chart: string;
  title: string;
  xLabel: string;
  yLabel: string;
  points: ScatterPoint[];
  /** Points joined by a line in x order (indices into `points`). */
  line?: { indices: number[]; color: string; attrs: Record<string, string> };
  xRef?: { value: number; label: string };
  yRef?: { value: number; label: string };
  edge?: { label: string; color: string; points: EdgePoint[] };
  legend: LegendItem[];
  xFormat?: (v: number, decimals: number) => string;
  yFormat?: (v: number, decimals: number) => string;
}

const SCATTER_W = 760;
const SCATTER_H = 400;
const EDGE_W = 80;

/** A scale around the values, not from 0: the differences are the point. */
function zoomedScale(vals: number[], target: number, nonNegative: boolean): Scale {
  const lo = Math.min(...vals);
  const hi = Math.max(...vals);
  const span = hi - lo;
  const pad = span > 0 ? span * 0.08 : Math.abs(lo) * 0.05 || 0.05;
  return niceScale(nonNegative ? Math.max(0, lo - pad) : lo - pad, hi + pad, target);
}

/** Points on zoomed axes, optionally joined, with reference lines and a strip for points without an x. */
export function scatterChart(c: ScatterSpec): string {
  const W = SCATTER_W;
  const H = SCATTER_H;
  const edgeW = c.edge && c.edge.points.length ? EDGE_W : 0;
  const leg = legend(c.legend, 62, 16, W - 16);
  const m = { l: 62, r: 16 + edgeW, t: 20 + leg.rows * 16 + 10, b: 46 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const finite = (xs: (number | undefined)[]) => xs.filter((v): v is number => v !== undefined && Number.isFinite(v));
  const xs = finite([...c.points.flatMap((p) => [p.x, p.xLow, p.xHigh]), c.xRef?.value]);
  const mainY = finite([...c.points.map((p) => p.y), c.yRef?.value]);
  // edge points widen the y axis by at most its own span; beyond that they sit on the border, marked off-scale
  const span = mainY.length ? Math.max(...mainY) - Math.min(...mainY) || Math.abs(mainY[0]!) * 0.05 || 0.05 : 1;
  const [yLo, yHi] = mainY.length ? [Math.min(...mainY) - span, Math.max(...mainY) + span] : [-Infinity, Infinity];
  const edgeY = finite((c.edge?.points ?? []).map((p) => p.y));
  const sx = zoomedScale(xs.length ? xs : [0, 1], 8, xs.every((v) => v >= 0));
  const sy = zoomedScale([...mainY, ...edgeY.filter((v) => v >= yLo && v <= yHi)].concat(mainY.length || edgeY.length ? [] : [0, 1]), 5, false);
  const x = (v: number): number => m.l + ((v - sx.min) / (sx.max - sx.min)) * pw;
  const y = (v: number): number => m.t + ((sy.max - v) / (sy.max - sy.min)) * ph;
  const fmtX = c.xFormat ?? ((v: number, d: number) => v.toFixed(d));
  const fmtY = c.yFormat ?? ((v: number, d: number) => v.toFixed(d));

  let out = svgOpen(c.chart, c.title, W, H, {});
  out += leg.svg;
  for (const t of sy.ticks) {
    out += `<line class="grid" x1="${m.l}" x2="${m.l + pw}" y1="${r1(y(t))}" y2="${r1(y(t))}"/>`;
    out += `<text class="tick" x="${m.l - 6}" y="${r1(y(t) + 4)}" text-anchor="end">${esc(fmtY(t, sy.decimals))}</text>`;
  }
  for (const t of sx.ticks) {
    out += `<line class="grid" x1="${r1(x(t))}" x2="${r1(x(t))}" y1="${m.t}" y2="${m.t + ph}"/>`;
    out += `<text class="tick" x="${r1(x(t))}" y="${m.t + ph + 14}" text-anchor="middle">${esc(fmtX(t, sx.decimals))}</text>`;
  }
  out += `<line class="axisline" x1="${m.l}" x2="${m.l + pw}" y1="${m.t + ph}" y2="${m.t + ph}"/><line class="axisline" x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${m.t + ph}"/>`;
  out += `<text class="axis" x="${r1(m.l + pw / 2)}" y="${H - 8}" text-anchor="middle">${esc(c.xLabel)}</text>`;
  out += `<text class="axis" transform="translate(14 ${r1(m.t + ph / 2)}) rotate(-90)" text-anchor="middle">${esc(c.yLabel)}</text>`;
  if (c.xRef && Number.isFinite(c.xRef.value)) {
    const xr = r1(x(c.xRef.value));
    out += `<line class="ref" x1="${xr}" x2="${xr}" y1="${m.t}" y2="${m.t + ph}"><title>${esc(c.xRef.label)}</title></line>`;
  }
  if (c.yRef && Number.isFinite(c.yRef.value)) {
    const yr = y(c.yRef.value);
    out += `<line class="ref goal" x1="${m.l}" x2="${m.l + pw}" y1="${r1(yr)}" y2="${r1(yr)}"><title>${esc(c.yRef.label)}</title></line>`;
    out += `<text class="val" x="${m.l + pw - 4}" y="${r1(yr - 5)}" text-anchor="end">${esc(c.yRef.label)}</text>`;
  }
  // context first, so the highlighted points and the line are drawn over it
  const order = [...c.points.keys()].sort((a, b) => Number(!c.points[a]!.faint) - Number(!c.points[b]!.faint));
  for (const i of order) {
    const p = c.points[i]!;
    if (p.xLow !== undefined && p.xHigh !== undefined && Number.isFinite(p.xLow) && Number.isFinite(p.xHigh) && !p.faint) {
      const yp = r1(y(p.y));
      out += `<path class="whisker spread" d="M${r1(x(p.xLow))} ${yp}H${r1(x(p.xHigh))}M${r1(x(p.xLow))} ${r1(y(p.y) - 3)}V${r1(y(p.y) + 3)}M${r1(x(p.xHigh))} ${r1(y(p.y) - 3)}V${r1(y(p.y) + 3)}"/>`;
    }
  }
  if (c.line && c.line.indices.length) {
    const pts = c.line.indices
      .map((i) => c.points[i]!)
      .sort((a, b) => a.x - b.x)
      .map((p) => `${r1(x(p.x))},${r1(y(p.y))}`)
      .join(' ');
    out += `<polyline${attrText(c.line.attrs)} points="${pts}" fill="none" stroke="${c.line.color}" stroke-width="2" stroke-linejoin="round"/>`;
  }
  for (const i of order) {
    const p = c.points[i]!;
    const cx = x(p.x);
    const cy = y(p.y);
    out += marker(p.shape, cx, cy, p.r, p.color, { ...p.attrs, ...(p.faint ? { 'fill-opacity': '0.35' } : { stroke: '#fff', 'stroke-width': '1' }) }, `<title>${esc(p.tooltip)}</title>`);
    if (p.ring) out += `<circle cx="${r1(cx)}" cy="${r1(cy)}" r="${r1(p.r + 5)}" fill="none" stroke="${p.ring}" stroke-width="3"/>`;
    if (p.label) out += `<text class="val" x="${r1(cx + p.r + 4)}" y="${r1(cy - p.r - 1)}">${esc(p.label)}</text>`;
  }
  if (edgeW && c.edge) {
    // far enough right that its label clears the last tick's
    const ex = W - m.r + 18;
    const ew = edgeW - 22;
    out += `<rect class="edge" x="${ex}" y="${m.t}" width="${ew}" height="${ph}"/>`;
    out += `<text class="tick" x="${r1(ex + ew / 2)}" y="${m.t + ph + 14}" text-anchor="middle">${esc(c.edge.label)}</text>`;
    c.edge.points.forEach((p, i) => {
      const px = ex + ew / 2 + ((i % 3) - 1) * 10;
      const off = p.y < sy.min || p.y > sy.max;
      const py = off ? (p.y < sy.min ? m.t + ph - 6 : m.t + 6) : y(p.y);
      if (p.ring) out += `<circle cx="${r1(px)}" cy="${r1(py)}" r="9" fill="none" stroke="${p.ring}" stroke-width="3"/>`;
      if (off) {
        // off the scale: a triangle on the border, pointing the way the value lies
        const dir = p.y < sy.min ? 1 : -1;
        const d = `M${r1(px - 5)} ${r1(py - 4 * dir)}H${r1(px + 5)}L${r1(px)} ${r1(py + 4 * dir)}Z`;
        const attrs = attrText({ ...p.attrs, class: `${p.attrs.class ?? ''} off-scale`.trim() });
        out += `<path${attrs} d="${d}" fill="#fff" stroke="${c.edge!.color}" stroke-width="1.5"><title>${esc(p.tooltip)}</title></path>`;
      } else {
        out += marker('circle', px, py, 4, '#fff', { ...p.attrs, stroke: c.edge!.color, 'stroke-width': '1.5' }, `<title>${esc(p.tooltip)}</title>`);
      }
    });
  }
  return `${out}</svg>`;
}
