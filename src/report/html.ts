// Offline HTML rendering of a compression report: one self-contained document (inline CSS, charts as
// inline SVG, no JavaScript, no network), so it can be mailed, archived or opened from a CI artifact.
import type { CompressionReport, LatencyRatio, LatencyStats, ProfileEntry, ProfileReport, StageMetrics, StepReport, TaskMetrics } from './schema.js';

/** Fill colours of the charts; exported so tests can look for them in a screenshot. */
export const CHART_COLORS = {
  baseline: '#9aa4b1',
  size: '#2f6db5',
  faster: '#2e9e5b',
  noGain: '#d9a21b',
  slower: '#cc3d3d',
  accuracy: '#7a4fb0',
  final: '#1b8a9a',
  profileLatency: '#e07b39',
  profileParams: '#5a7bd6',
} as const;

/** Further series colours for the per-output SQNR chart (the first is CHART_COLORS.accuracy). */
const OUTPUT_COLORS = [CHART_COLORS.accuracy, '#c08ad8', '#4a2f7a', '#a77fd1', '#d6bde8', '#6b3f99'];

const VERDICT_COLOR: Record<LatencyRatio['verdict'], string> = { faster: CHART_COLORS.faster, 'no gain': CHART_COLORS.noGain, slower: CHART_COLORS.slower };
const VERDICT_CLASS: Record<LatencyRatio['verdict'], string> = { faster: 'v-faster', 'no gain': 'v-nogain', slower: 'v-slower' };

/** Rows shown per list of changes before "… N more". */
const MAX_ROWS = 200;
/** Blocks shown per profile chart; the rest are summed as "other". */
const TOP_BLOCKS = 15;
/** Outputs shown in the SQNR chart (a model may have dozens; the table lists all). */
const MAX_CHART_OUTPUTS = 6;

// ---------------------------------------------------------------- text and numbers

export function escapeHtml(s: unknown): string {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}
const esc = escapeHtml;

/** Reports are written with a replacer that turns non-finite numbers into strings; accept both. */
function num(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') {
    const s = v.trim();
    if (s === 'Infinity' || s === '+Infinity') return Infinity;
    if (s === '-Infinity') return -Infinity;
    if (s === '' || s === 'NaN') return NaN;
    return Number(s);
  }
  return NaN;
}

const isMissing = (v: unknown): boolean => v === undefined || v === null;

function nonFinite(x: number): string | null {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return '∞';
  if (x === -Infinity) return '−∞';
  return null;
}

function fixed(v: unknown, digits: number): string {
  if (isMissing(v)) return '—';
  const x = num(v);
  return nonFinite(x) ?? x.toFixed(digits).replace(/^-/, '−');
}

/** Three significant digits; exponent form for very small/large magnitudes. */
function sig(v: unknown): string {
  if (isMissing(v)) return '—';
  const x = num(v);
  const nf = nonFinite(x);
  if (nf) return nf;
  if (x === 0) return '0';
  const a = Math.abs(x);
  const s = a < 1e-3 || a >= 1e6 ? x.toExponential(2) : String(Number(x.toPrecision(3)));
  return s.replace(/^-/, '−');
}

const ratioText = (v: unknown): string => (isMissing(v) ? '—' : `${fixed(v, 2)}×`);
const pct = (v: unknown, digits = 1): string => (isMissing(v) ? '—' : nonFinite(num(v)) ?? `${(num(v) * 100).toFixed(digits)}%`);
const int = (v: unknown): string => (isMissing(v) ? '—' : nonFinite(num(v)) ?? Math.round(num(v)).toLocaleString('en-US'));

function bytesText(v: unknown): string {
  const n = num(v);
  if (isMissing(v) || !Number.isFinite(n)) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(2)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

function macsText(v: unknown): string {
  if (isMissing(v)) return 'unknown';
  const n = num(v);
  if (!Number.isFinite(n)) return nonFinite(n)!;
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return String(n);
}

function msText(v: unknown): string {
  if (isMissing(v)) return '—';
  const x = num(v);
  return nonFinite(x) ?? (x < 1 ? x.toFixed(3) : x < 100 ? x.toFixed(2) : x.toFixed(0));
}

const json = (v: unknown): string =>
  JSON.stringify(v, (_k, x: unknown) => (typeof x === 'number' && !Number.isFinite(x) ? String(x) : x), 2) ?? 'undefined';

function cap(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n)}\n… ${(s.length - n).toLocaleString('en-US')} more characters` : s;
}

// ---------------------------------------------------------------- SVG helpers

/** SVG text can't be measured without a browser; this over-estimates a little so labels don't collide. */
const textWidth = (s: string, size: number): number => s.length * size * 0.6;

function fit(s: string, maxPx: number, size: number): string {
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

const r1 = (x: number): string => String(Math.round(x * 10) / 10);

interface Scale {
  min: number;
  max: number;
  ticks: number[];
  decimals: number;
}

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

interface LegendItem {
  color: string;
  label: string;
  /** Drawn as a dashed line (a reference line) instead of a swatch. */
  line?: boolean;
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
      : `<rect x="${r1(cx)}" y="${r1(cy - 9)}" width="10" height="10" rx="2" fill="${it.color}"/>`;
    out += `<text class="leg" x="${r1(cx + 15)}" y="${r1(cy)}">${esc(it.label)}</text>`;
    cx += w;
  }
  return { svg: out, rows: items.length ? 1 + Math.round((cy - y) / 16) : 0 };
}

function svgOpen(chart: string, title: string, w: number, h: number, extra = ''): string {
  return `<svg data-chart="${esc(chart)}"${extra} role="img" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}"><title>${esc(title)}</title>`;
}

interface Bar {
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

interface BarGroup {
  label: string;
  bars: Bar[];
}

interface BarChartSpec {
  chart: string;
  title: string;
  yLabel: string;
  groups: BarGroup[];
  legend: LegendItem[];
  refLine?: { value: number; label: string };
  yFormat?: (v: number, decimals: number) => string;
  width?: number;
  height?: number;
}

const CHART_W = 530;
const CHART_H = 290;

/** Vertical grouped bars with optional whiskers (low/high) and a reference line. */
function barChart(c: BarChartSpec): string {
  const W = c.width ?? CHART_W;
  const H = c.height ?? CHART_H;
  const hasTicks = c.groups.some((g) => g.bars.some((b) => b.tick));
  const leg = legend(c.refLine ? [...c.legend, { color: '', label: c.refLine.label, line: true }] : c.legend, 62, 16, W - 16);
  const m = { l: 62, r: 16, t: 20 + leg.rows * 16 + 8, b: hasTicks ? 44 : 28 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const vals: number[] = [];
  for (const g of c.groups) for (const b of g.bars) for (const v of [b.value, b.low, b.high]) if (v !== undefined && Number.isFinite(v)) vals.push(v);
  if (c.refLine) vals.push(c.refLine.value);
  let lo = Math.min(0, ...vals);
  let hi = Math.max(0, ...vals);
  if (hi === lo) hi = lo + 1;
  hi += (hi - lo) * 0.12; // room for the value labels
  if (lo < 0) lo -= (hi - lo) * 0.08;
  const s = niceScale(lo, hi);
  const y = (v: number): number => m.t + ((s.max - Math.min(s.max, Math.max(s.min, v))) / (s.max - s.min)) * ph;
  const fmtY = c.yFormat ?? ((v: number, d: number) => v.toFixed(d));

  let out = svgOpen(c.chart, c.title, W, H);
  out += leg.svg;
  for (const t of s.ticks) {
    out += `<line class="grid" x1="${m.l}" x2="${W - m.r}" y1="${r1(y(t))}" y2="${r1(y(t))}"/>`;
    out += `<text class="tick" x="${m.l - 6}" y="${r1(y(t) + 4)}" text-anchor="end">${esc(fmtY(t, s.decimals))}</text>`;
  }
  out += `<text class="axis" transform="translate(14 ${r1(m.t + ph / 2)}) rotate(-90)" text-anchor="middle">${esc(c.yLabel)}</text>`;

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
      const y0 = y(0);
      let top = y0;
      if (!Number.isNaN(v)) {
        const yv = y(v); // ±Infinity clamps to the plot edge
        top = Math.min(yv, y0);
        const h = Math.max(Math.abs(y0 - yv), v === 0 ? 0 : 1);
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
        const ly = v < 0 ? y(v) + 12 : top - 4;
        out += `<text class="val" x="${r1(cx)}" y="${r1(ly)}" text-anchor="middle">${esc(b.label)}</text>`;
      }
      if (b.tick) out += `<text class="tick" x="${r1(cx)}" y="${H - m.b + 14}" text-anchor="middle">${esc(fit(b.tick, bw + 2, 10))}</text>`;
    });
    out += `<text class="grp" x="${r1(m.l + gi * slot + slot / 2)}" y="${H - 8}" text-anchor="middle">${esc(fit(g.label, slot - 6, 11))}<title>${esc(g.label)}</title></text>`;
  });
  out += `<line class="axisline" x1="${m.l}" x2="${W - m.r}" y1="${r1(y(0))}" y2="${r1(y(0))}"/>`;
  if (c.refLine) {
    const yr = r1(y(c.refLine.value));
    out += `<line class="ref" x1="${m.l}" x2="${W - m.r}" y1="${yr}" y2="${yr}"/>`;
  }
  return `${out}</svg>`;
}

// ---------------------------------------------------------------- report access

interface Stage {
  label: string;
  kind: 'baseline' | 'step' | 'final';
  m: StageMetrics;
  step?: StepReport;
}

function stagesOf(r: CompressionReport): Stage[] {
  const out: Stage[] = [{ label: 'baseline', kind: 'baseline', m: r.baseline }];
  for (const s of r.steps ?? []) out.push({ label: `${s.index}. ${s.pass}`, kind: 'step', m: s, step: s });
  if (r.final) out.push({ label: 'final', kind: 'final', m: r.final });
  return out;
}

const sizeRatio = (r: CompressionReport, m: StageMetrics): number => num(m.sizeBytes) / num(r.baseline.sizeBytes);
const paramsRatio = (r: CompressionReport, m: StageMetrics): number => (num(r.baseline.params) ? num(m.params) / num(r.baseline.params) : 1);

function threadsOf(recipe: unknown): string {
  const t = (recipe as { benchmark?: { intraOpThreads?: unknown } } | null)?.benchmark?.intraOpThreads;
  if (isMissing(t)) return 'not recorded';
  return num(t) === 0 ? 'onnxruntime default' : String(num(t));
}

// ---------------------------------------------------------------- charts

function sizeChart(r: CompressionReport): string {
  const stages = stagesOf(r).filter((s) => s.kind !== 'final');
  // one unit for the axis, chosen by the largest stage
  const [unit, div] = Math.max(...stages.map((s) => num(s.m.sizeBytes))) >= 1024 ** 2 ? ['MiB', 1024 ** 2] : ['KiB', 1024];
  const groups: BarGroup[] = stages.map((s) => {
    const ratio = sizeRatio(r, s.m);
    return {
      label: s.label,
      bars: [
        {
          value: num(s.m.sizeBytes) / div,
          color: s.kind === 'baseline' ? CHART_COLORS.baseline : CHART_COLORS.size,
          label: s.kind === 'baseline' ? bytesText(s.m.sizeBytes) : `${bytesText(s.m.sizeBytes)} (${ratioText(ratio)})`,
          tooltip: `${s.label}: ${int(s.m.sizeBytes)} bytes, ${ratioText(ratio)} of the baseline`,
        },
      ],
    };
  });
  return barChart({
    chart: 'size',
    title: `Model size after each step (${unit})`,
    yLabel: `size (${unit})`,
    groups,
    legend: [
      { color: CHART_COLORS.baseline, label: 'baseline' },
      { color: CHART_COLORS.size, label: 'after step' },
    ],
  });
}

function latencyChart(r: CompressionReport): string | null {
  const steps = (r.steps ?? []).filter((s) => s.latency && s.latency.length);
  if (!steps.length) return null;
  const groups: BarGroup[] = steps.map((s) => ({
    label: `${s.index}. ${s.pass}`,
    bars: s.latency!.map((l) => ({
      value: num(l.ratio),
      low: num(l.low),
      high: num(l.high),
      color: VERDICT_COLOR[l.verdict] ?? CHART_COLORS.noGain,
      label: ratioText(l.ratio),
      tick: `b${l.batch}`,
      tooltip: `step ${s.index} at batch ${l.batch}: ${ratioText(l.ratio)} of baseline latency (p10–p90 of ${l.rounds} rounds: ${fixed(l.low, 2)}–${fixed(l.high, 2)}), ${l.verdict}`,
    })),
  }));
  return barChart({
    chart: 'latency',
    title: 'Latency ratio vs baseline per step and batch size (lower is faster)',
    yLabel: 'latency / baseline',
    groups,
    refLine: { value: 1, label: '1.0 = baseline' },
    legend: [
      { color: CHART_COLORS.faster, label: 'faster' },
      { color: CHART_COLORS.noGain, label: 'no gain (spread crosses 1)' },
      { color: CHART_COLORS.slower, label: 'slower' },
    ],
    yFormat: (v, d) => v.toFixed(Math.max(1, d)),
  });
}

function taskChart(r: CompressionReport): string | null {
  const stages = stagesOf(r).filter((s) => s.kind !== 'final' && s.m.task && Object.keys(s.m.task).length);
  if (!stages.length) return null;
  const metrics = [...new Set(stages.flatMap((s) => Object.keys(s.m.task!)))];
  const groups: BarGroup[] = metrics.map((name) => ({
    label: name,
    bars: stages.map((s) => {
      const v = num(s.m.task![name]);
      return {
        value: v,
        color: s.kind === 'baseline' ? CHART_COLORS.baseline : CHART_COLORS.accuracy,
        label: metric(v),
        tick: s.kind === 'baseline' ? 'base' : `#${s.step!.index}`,
        tooltip: `${name} ${s.label}: ${metric(v)}`,
      };
    }),
  }));
  return barChart({
    chart: 'accuracy',
    title: 'Task metrics per step (against labels)',
    yLabel: 'metric value',
    groups,
    legend: [
      { color: CHART_COLORS.baseline, label: 'baseline (reference)' },
      { color: CHART_COLORS.accuracy, label: 'after step #' },
    ],
  });
}

function sqnrChart(r: CompressionReport): string | null {
  const steps = r.steps ?? [];
  if (!steps.length) return null;
  const outputs = [...new Set(steps.flatMap((s) => Object.keys(s.fidelity ?? {})))];
  if (!outputs.length) return null;
  const shown = outputs.slice(0, MAX_CHART_OUTPUTS);
  const colorOf = (o: string) => OUTPUT_COLORS[shown.indexOf(o) % OUTPUT_COLORS.length]!;
  const groups: BarGroup[] = steps.map((s) => ({
    label: `${s.index}. ${s.pass}`,
    bars: shown.map((o) => {
      const f = s.fidelity?.[o];
      const v = f ? num(f.sqnrDb) : NaN;
      return {
        value: v,
        color: colorOf(o),
        label: f ? `${fixed(v, 1)}${Number.isFinite(v) ? ' dB' : ''}` : '—',
        tooltip: `${o} after step ${s.index}: SQNR ${fixed(v, 2)} dB${v === Infinity ? ' (identical outputs)' : ''}`,
      };
    }),
  }));
  const more = outputs.length - shown.length;
  return barChart({
    chart: 'accuracy',
    title: 'Output fidelity per step: SQNR vs the original model (higher is closer)',
    yLabel: 'SQNR (dB)',
    groups,
    legend: [...shown.map((o) => ({ color: colorOf(o), label: fit(o, 150, 11) })), ...(more > 0 ? [{ color: '#ffffff', label: `+${more} more in the table` }] : [])],
  });
}

function latencyAbsoluteChart(r: CompressionReport): string | null {
  const base = r.baseline.latencyAbsolute ?? [];
  if (!base.length) return null;
  const fin = new Map<number, LatencyStats>((r.final?.latency ?? []).map((l) => [l.batch, l.b]));
  const batches = [...new Set([...base.map((l) => l.batch), ...fin.keys()])].sort((a, b) => a - b);
  const bar = (l: LatencyStats | undefined, who: string, color: string, batch: number): Bar[] =>
    l
      ? [
          {
            value: num(l.p50Ms),
            low: num(l.minMs),
            high: num(l.p90Ms),
            color,
            label: msText(l.p50Ms),
            tick: who,
            tooltip: `${who} at batch ${batch}: p50 ${msText(l.p50Ms)} ms (min ${msText(l.minMs)}, p90 ${msText(l.p90Ms)}), ${sig(l.throughput)} items/s`,
          },
        ]
      : [];
  const groups: BarGroup[] = batches.map((b) => ({
    label: `batch ${b}`,
    bars: [...bar(base.find((l) => l.batch === b), 'base', CHART_COLORS.baseline, b), ...bar(fin.get(b), 'final', CHART_COLORS.final, b)],
  }));
  return barChart({
    chart: 'latency-absolute',
    title: 'Absolute latency per batch size (median; whiskers min to p90)',
    yLabel: 'latency (ms)',
    groups,
    legend: [
      { color: CHART_COLORS.baseline, label: 'baseline' },
      ...(fin.size ? [{ color: CHART_COLORS.final, label: 'final (side-by-side run)' }] : []),
    ],
    yFormat: (v, d) => v.toFixed(d),
  });
}

interface BlockRow {
  name: string;
  share: number;
  paramShare: number | null;
  ms: number;
}

function topBlocks(entries: readonly ProfileEntry[]): BlockRow[] {
  const sorted = [...entries].sort((a, b) => num(b.share) - num(a.share));
  const rows: BlockRow[] = sorted.slice(0, TOP_BLOCKS).map((e) => ({
    name: e.name,
    share: num(e.share),
    paramShare: isMissing(e.paramShare) ? null : num(e.paramShare),
    ms: num(e.ms),
  }));
  const rest = sorted.slice(TOP_BLOCKS);
  if (rest.length) {
    const anyParams = rest.some((e) => !isMissing(e.paramShare));
    rows.push({
      name: `other (${rest.length} blocks)`,
      share: rest.reduce((s, e) => s + num(e.share), 0),
      paramShare: anyParams ? rest.reduce((s, e) => s + (isMissing(e.paramShare) ? 0 : num(e.paramShare)), 0) : null,
      ms: rest.reduce((s, e) => s + num(e.ms), 0),
    });
  }
  return rows;
}

/** Paired horizontal bars: where the time goes next to where the parameters are. */
function profileChart(p: ProfileReport, stage: 'baseline' | 'final'): string {
  const rows = topBlocks(p.byBlock ?? []);
  const withParams = rows.some((r) => r.paramShare !== null);
  const W = CHART_W;
  const labelW = 214;
  const valueW = 48;
  const rowH = withParams ? 24 : 16;
  const m = { t: 34, b: 26 };
  const H = m.t + Math.max(1, rows.length) * rowH + m.b;
  const x0 = labelW;
  const pw = W - labelW - valueW - 8;
  const maxShare = Math.max(0.01, ...rows.flatMap((r) => [r.share, r.paramShare ?? 0]).filter(Number.isFinite));
  const s = niceScale(0, maxShare, 4);
  const x = (v: number): number => x0 + (Math.max(0, Math.min(s.max, v)) / s.max) * pw;
  const title = `Profile by block, ${stage}: share of kernel time${withParams ? ' and of parameters' : ''} (batch ${p.batch}, ${msText(p.totalMs)} ms per run)`;
  let out = svgOpen('profile-blocks', title, W, H, ` data-stage="${stage}"`);
  out += legend(
    [{ color: CHART_COLORS.profileLatency, label: 'latency share' }, ...(withParams ? [{ color: CHART_COLORS.profileParams, label: 'parameter share' }] : [])],
    x0,
    16,
    W,
  ).svg;
  for (const t of s.ticks) {
    out += `<line class="grid" x1="${r1(x(t))}" x2="${r1(x(t))}" y1="${m.t - 4}" y2="${H - m.b}"/>`;
    out += `<text class="tick" x="${r1(x(t))}" y="${H - m.b + 14}" text-anchor="middle">${(t * 100).toFixed(Math.max(0, s.decimals - 2))}%</text>`;
  }
  const bh = withParams ? 9 : 11;
  rows.forEach((r, i) => {
    const top = m.t + i * rowH;
    const mid = top + (withParams ? bh + 1 : bh / 2);
    out += `<text class="rowlabel" x="${x0 - 8}" y="${r1(mid + 4)}" text-anchor="end">${esc(fitMiddle(r.name, labelW - 12, 11))}<title>${esc(r.name)}</title></text>`;
    const bars: [number, string, string][] = [[r.share, CHART_COLORS.profileLatency, `latency ${pct(r.share)} (${msText(r.ms)} ms)`]];
    if (withParams) bars.push([r.paramShare ?? 0, CHART_COLORS.profileParams, r.paramShare === null ? 'parameters: not measured' : `parameters ${pct(r.paramShare)}`]);
    bars.forEach(([v, color, tip], k) => {
      const y = top + k * (bh + 2);
      const w = Number.isFinite(v) ? Math.max(v > 0 ? 1 : 0, x(v) - x0) : 0;
      out += `<rect x="${x0}" y="${y}" width="${r1(w)}" height="${bh}" fill="${color}"><title>${esc(`${r.name}: ${tip}`)}</title></rect>`;
      out += `<text class="val" x="${r1(x0 + w + 4)}" y="${y + bh - 1}">${esc(k === 1 && r.paramShare === null ? '—' : pct(v))}</text>`;
    });
  });
  out += `<line class="axisline" x1="${x0}" x2="${x0}" y1="${m.t - 4}" y2="${H - m.b}"/>`;
  return `${out}</svg>`;
}

function figure(svg: string, heading: string, caption: string): string {
  return `<figure><h3>${esc(heading)}</h3>${svg}<figcaption>${caption}</figcaption></figure>`;
}

function chartsSection(r: CompressionReport): string {
  const figs: string[] = [];
  const missing: string[] = [];
  const stages = stagesOf(r);
  const last = stages[stages.length - 1]!;

  figs.push(
    figure(
      sizeChart(r),
      'Model size',
      `Baseline ${esc(bytesText(r.baseline.sizeBytes))} → final ${esc(bytesText(last.m.sizeBytes))} (${esc(ratioText(sizeRatio(r, last.m)))}).`,
    ),
  );

  const lat = latencyChart(r);
  if (lat) {
    figs.push(
      figure(
        lat,
        'Latency vs baseline',
        'Median of per-round ratios, measured side by side with the original (rounds alternate). Whiskers: p10–p90 of the rounds. ' +
          'A verdict is “faster” or “slower” only when the whole spread is on one side of 1.',
      ),
    );
  } else missing.push('latency ratios (benchmarking was off)');

  const task = taskChart(r);
  if (task) {
    figs.push(figure(task, 'Task metrics', 'Each stage against the labels; the baseline bar is the original model.'));
  } else {
    const sq = sqnrChart(r);
    if (sq) figs.push(figure(sq, 'Output fidelity (SQNR)', 'Signal-to-noise of each output vs the original on the sample inputs; ∞ means identical outputs.'));
    else missing.push('accuracy (no steps and no task metrics)');
  }

  const abs = latencyAbsoluteChart(r);
  if (abs) {
    figs.push(
      figure(abs, 'Absolute latency', `Milliseconds per batch, onnxruntime intra-op threads: ${esc(threadsOf(r.recipe))}. Bars: median; whiskers: min to p90.`),
    );
  } else missing.push('absolute latency (not measured)');

  if (r.profile?.baseline) {
    figs.push(figure(profileChart(r.profile.baseline, 'baseline'), 'Where the time goes: baseline', profileCaption(r.profile.baseline)));
    if (r.profile.final) figs.push(figure(profileChart(r.profile.final, 'final'), 'Where the time goes: final', profileCaption(r.profile.final)));
  } else missing.push('per-block profile (profiling was off)');

  const note = missing.length ? `<p class="muted">Not shown: ${esc(missing.join('; '))}.</p>` : '';
  return `<section id="charts"><h2>Charts</h2><div class="charts">${figs.join('')}</div>${note}</section>`;
}

function profileCaption(p: ProfileReport): string {
  const n = (p.byBlock ?? []).length;
  return esc(
    `${n} blocks by node-name prefix (depth ${p.depth}); top ${Math.min(n, TOP_BLOCKS)} by kernel time${n > TOP_BLOCKS ? ', the rest summed as “other”' : ''}. ` +
      `${p.runs} timed runs at batch ${p.batch}. A block with a much larger time share than parameter share is likely bound by activations, not weights.`,
  );
}

// ---------------------------------------------------------------- tables

function verdictBadge(v: LatencyRatio['verdict']): string {
  return `<span class="verdict ${VERDICT_CLASS[v] ?? 'v-nogain'}">${esc(v)}</span>`;
}

function latencyCell(s: Stage): string {
  if (s.kind === 'baseline') return '<span class="muted">reference</span>';
  const l = s.m.latency;
  if (!l || !l.length) return '<span class="muted">not measured</span>';
  return l
    .map(
      (x) =>
        `<div class="nowrap"><span class="muted">b${esc(x.batch)}</span> <b>${esc(ratioText(x.ratio))}</b> <span class="muted">(${esc(fixed(x.low, 2))}–${esc(fixed(x.high, 2))})</span> ${verdictBadge(x.verdict)}</div>`,
    )
    .join('');
}

function fidelityCell(s: Stage): string {
  if (s.kind === 'baseline') return '<span class="muted">reference</span>';
  const f = Object.entries(s.m.fidelity ?? {});
  if (!f.length) return '<span class="muted">—</span>';
  return f
    .map(([name, v]) => {
      const sq = num(v.sqnrDb);
      const parts = [`<b>${esc(fixed(sq, 1))}</b>${Number.isFinite(sq) ? ' dB' : ''}`, `max ${esc(sig(v.maxAbsError))}`];
      if (!isMissing(v.top1Agreement)) parts.push(`top-1 ${esc(pct(v.top1Agreement, 1))}`);
      if (!isMissing(v.sequenceAgreement)) parts.push(`seq. ${esc(pct(v.sequenceAgreement, 1))}`);
      return `<div><span class="mono">${esc(name)}</span> <span class="nowrap">${parts.join(' · ')}</span></div>`;
    })
    .join('');
}

function taskCell(s: Stage, reference: TaskMetrics | undefined): string {
  const t = s.m.task;
  if (!t || !Object.keys(t).length) return '<span class="muted">—</span>';
  return Object.entries(t)
    .map(([k, v]) => {
      const ref = s.kind === 'baseline' ? undefined : reference?.[k];
      const delta = ref === undefined ? '' : ` <span class="muted nowrap">(ref ${esc(metric(ref))}, ${esc(signed(num(v) - num(ref)))})</span>`;
      return `<div><span class="nowrap">${esc(k)} <b>${esc(metric(v))}</b></span>${delta}</div>`;
    })
    .join('');
}

/** Task metrics: accuracies differ in the 4th decimal, so keep it (3 significant digits would hide it). */
function metric(v: unknown): string {
  if (isMissing(v)) return '—';
  const x = num(v);
  const nf = nonFinite(x);
  if (nf) return nf;
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-4 || a >= 1e6)) return x.toExponential(3).replace(/^-/, '−');
  return String(Number(x.toFixed(a < 10 ? 4 : a < 1000 ? 2 : 0))).replace(/^-/, '−');
}

function signed(x: number): string {
  const nf = nonFinite(x);
  if (nf) return nf;
  if (Math.abs(x) < 5e-7) return '±0';
  return `${x > 0 ? '+' : '−'}${metric(Math.abs(x))}`;
}

function summaryTable(r: CompressionReport): string {
  const stages = stagesOf(r);
  const anyTask = stages.some((s) => s.m.task && Object.keys(s.m.task).length);
  const head = ['stage', 'size', 'params', 'nodes', 'MACs', 'latency vs baseline (p10–p90)', 'fidelity (SQNR · max |err| · top-1)', ...(anyTask ? ['task metrics (Δ vs baseline)'] : [])];
  const rows = stages.map((s) => {
    const cells = [
      `<th scope="row" class="nowrap">${esc(s.label)}</th>`,
      `<td class="num">${esc(bytesText(s.m.sizeBytes))}<br><span class="muted">${esc(int(s.m.sizeBytes))} B${s.kind === 'baseline' ? '' : ` · ${esc(ratioText(sizeRatio(r, s.m)))}`}</span></td>`,
      `<td class="num">${esc(int(s.m.params))}${s.kind === 'baseline' ? '' : `<br><span class="muted">${esc(ratioText(paramsRatio(r, s.m)))}</span>`}</td>`,
      `<td class="num">${esc(int(s.m.nodes))}</td>`,
      `<td class="num">${esc(macsText(s.m.macs))}</td>`,
      `<td>${latencyCell(s)}</td>`,
      `<td>${fidelityCell(s)}</td>`,
      ...(anyTask ? [`<td>${taskCell(s, r.baseline.task)}</td>`] : []),
    ];
    return `<tr class="stage-${s.kind}">${cells.join('')}</tr>`;
  });
  return `<section id="summary"><h2>Summary</h2><div class="scroll"><table class="summary"><thead><tr>${head.map((h) => `<th scope="col">${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table></div>` +
    '<p class="muted note">Ratios (×) are against the baseline. MACs: multiply-accumulates of Conv/Gemm/MatMul at batch 1, counted from shapes. ' +
    'Latency b/a is the median of per-round ratios measured side by side; fidelity compares outputs with the baseline on the sample inputs.</p></section>';
}

// ---------------------------------------------------------------- header

function headerSection(r: CompressionReport, title: string): string {
  const env = r.environment ?? ({} as CompressionReport['environment']);
  const bench = (r.recipe as { benchmark?: Record<string, unknown> } | null)?.benchmark;
  const samples = r.samples;
  const meta: [string, string][] = [
    ['created', esc(r.createdAt ?? '—')],
    ['input', `${r.input?.name ? `${esc(r.input.name)}<br>` : ''}<span class="mono">sha256 ${esc(r.input?.sha256 ?? '—')}</span>`],
    ['output', `<span class="mono">sha256 ${esc(r.final?.sha256 ?? '—')}</span>`],
    [
      'environment',
      esc(
        `${env.cpuModel ?? 'unknown CPU'}, ${env.cores ?? '?'} cores, ${env.platform ?? ''}${env.int8Dot ? ` (int8 dot products: ${env.int8Dot})` : ''}; onnxruntime ${env.onnxruntime ?? '?'}, ` +
          `intra-op threads: ${threadsOf(r.recipe)}; Node ${env.node ?? '?'}, modelpress ${env.modelpress ?? '?'}`,
      ),
    ],
    [
      'benchmark',
      bench && bench.enabled !== false
        ? esc(
            `batch sizes ${Array.isArray(bench.batchSizes) ? bench.batchSizes.join(', ') : '?'}; ${String(bench.warmup ?? '?')} warmup + ${String(bench.runs ?? '?')} runs` +
              `${isMissing(bench.rounds) ? '' : `, ${String(bench.rounds)} side-by-side rounds`}`,
          )
        : '<span class="muted">off</span>',
    ],
    [
      'samples',
      samples
        ? `${samples.source === 'synthetic' ? '<b class="bad">synthetic (random) inputs</b>' : 'user data'}: ${esc(int(samples.items))} items in ${esc(int(samples.batches))} batches${samples.labels ? ', with labels' : ''}`
        : '<span class="muted">not recorded</span>',
    ],
    ['run time', `${esc(msText(num(r.durationMs) / 1000))} s`],
  ];
  const synthetic =
    samples?.source === 'synthetic'
      ? `<div class="banner bad"><b>Synthetic inputs.</b> Fidelity (and the float16 range check, if any) was measured on random inputs, not on representative data. ` +
        'The numbers show how close the outputs stay on noise; give real samples (<span class="mono">--data</span>) for numbers that mean something.</div>'
      : '';
  const warnings = (r.warnings ?? []).length
    ? `<div class="banner"><b>Warnings (${r.warnings.length})</b><ul>${r.warnings.map((w) => `<li>${esc(w)}</li>`).join('')}</ul></div>`
    : '';
  const recipe = `<details><summary>recipe</summary><pre>${esc(cap(json(r.recipe), 20000))}</pre></details>`;
  return (
    `<header><h1>${esc(title)}</h1><p class="muted">modelpress compression report · schema v${esc(r.schemaVersion ?? '?')}</p>` +
    `<dl class="meta">${meta.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join('')}</dl>${synthetic}${warnings}${recipe}</header>`
  );
}

function keyFigures(r: CompressionReport): string {
  const f = r.final;
  if (!f) return '';
  const items: [string, string, string][] = [
    ['size', ratioText(isMissing(f.sizeRatio) ? sizeRatio(r, f) : f.sizeRatio), `${bytesText(r.baseline.sizeBytes)} → ${bytesText(f.sizeBytes)}`],
    ['params', ratioText(isMissing(f.paramsRatio) ? paramsRatio(r, f) : f.paramsRatio), `${int(r.baseline.params)} → ${int(f.params)}`],
  ];
  let latency = '';
  if (f.latency?.length) {
    latency = `<div class="kf"><div class="kf-k">latency (final vs baseline)</div><div class="kf-v">${f.latency
      .map((l) => `<span class="nowrap">b${esc(l.batch)} ${esc(ratioText(l.ratio))} ${verdictBadge(l.verdict)}</span>`)
      .join(' ')}</div></div>`;
  }
  const sq = Object.values(f.fidelity ?? {}).map((v) => num(v.sqnrDb));
  if (sq.length && (r.steps ?? []).length) items.push(['worst SQNR', `${fixed(Math.min(...sq.map((x) => (Number.isNaN(x) ? -Infinity : x))), 1)} dB`, `over ${sq.length} output${sq.length > 1 ? 's' : ''}`]);
  const kf = items.map(([k, v, sub]) => `<div class="kf"><div class="kf-k">${esc(k)}</div><div class="kf-v">${esc(v)}</div><div class="muted">${esc(sub)}</div></div>`);
  return `<div class="kfs">${kf.join('')}${latency}</div>`;
}

// ---------------------------------------------------------------- per-step details

function cell(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'object') return `<span class="mono">${esc(JSON.stringify(v))}</span>`;
  return esc(typeof v === 'number' ? sig(v) : v);
}

function rowsTable(key: string, rows: unknown[]): string {
  const shown = rows.slice(0, MAX_ROWS);
  const objects = shown.every((x) => x !== null && typeof x === 'object' && !Array.isArray(x));
  let body: string;
  if (objects) {
    const cols = [...new Set(shown.flatMap((x) => Object.keys(x as object)))];
    body =
      `<table class="list"><thead><tr>${cols.map((c) => `<th>${esc(c)}</th>`).join('')}</tr></thead><tbody>` +
      shown.map((x) => `<tr>${cols.map((c) => `<td>${cell((x as Record<string, unknown>)[c])}</td>`).join('')}</tr>`).join('') +
      (rows.length > shown.length ? `<tr><td colspan="${cols.length}" class="muted">… ${(rows.length - shown.length).toLocaleString('en-US')} more</td></tr>` : '') +
      '</tbody></table>';
  } else {
    body =
      `<ul>${shown.map((x) => `<li>${cell(x)}</li>`).join('')}` +
      (rows.length > shown.length ? `<li class="muted">… ${(rows.length - shown.length).toLocaleString('en-US')} more</li>` : '') +
      '</ul>';
  }
  return `<details><summary>${esc(key)} (${rows.length.toLocaleString('en-US')})</summary>${body}</details>`;
}

/** `changes` is pass-specific; render any shape: counts, stats, warnings, then lists of nodes. */
function changesBlock(changes: unknown): string {
  if (!changes || typeof changes !== 'object') return '<p class="muted">no change log</p>';
  const counts: string[] = [];
  const tables: string[] = [];
  const lists: string[] = [];
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || typeof v !== 'object') {
      counts.push(`<span class="count">${esc(k)} <b>${cell(v)}</b></span>`);
    } else if (Array.isArray(v)) {
      if (!v.length) counts.push(`<span class="count">${esc(k)} <b>none</b></span>`);
      else if (k === 'warnings' && v.every((x) => typeof x === 'string')) tables.push(`<div class="banner"><b>pass warnings</b><ul>${v.map((w) => `<li>${esc(w)}</li>`).join('')}</ul></div>`);
      else lists.push(rowsTable(k, v));
    } else {
      const entries = Object.entries(v as Record<string, unknown>);
      if (!entries.length) continue;
      if (entries.every(([, x]) => x === null || typeof x !== 'object')) {
        tables.push(`<table class="kv"><caption>${esc(k)}</caption><tbody>${entries.map(([a, b]) => `<tr><th>${esc(a)}</th><td class="num">${cell(b)}</td></tr>`).join('')}</tbody></table>`);
      } else {
        lists.push(`<details><summary>${esc(k)}</summary><pre>${esc(cap(json(v), 20000))}</pre></details>`);
      }
    }
  }
  return `${counts.length ? `<p class="counts">${counts.join(' ')}</p>` : ''}${tables.join('')}${lists.join('')}`;
}

function stepsSection(r: CompressionReport): string {
  const steps = r.steps ?? [];
  if (!steps.length) return '<section id="steps"><h2>Steps</h2><p class="muted">The recipe ran no steps: the output is the input.</p></section>';
  let prev: StageMetrics = r.baseline;
  const blocks = steps.map((s) => {
    const line =
      `took ${esc(msText(num(s.durationMs) / 1000))} s · size ${esc(bytesText(prev.sizeBytes))} → ${esc(bytesText(s.sizeBytes))} · ` +
      `nodes ${esc(int(prev.nodes))} → ${esc(int(s.nodes))} · params ${esc(int(prev.params))} → ${esc(int(s.params))}`;
    prev = s;
    return (
      `<section class="step"><h3>${esc(`${s.index}. ${s.pass}`)}</h3><p class="muted">${line}</p>` +
      `${changesBlock(s.changes)}<details><summary>config</summary><pre>${esc(cap(json(s.config), 20000))}</pre></details></section>`
    );
  });
  return `<section id="steps"><h2>Steps</h2>${blocks.join('')}</section>`;
}

// ---------------------------------------------------------------- document

// Chart fill colours appear only in charts (the browser test counts their pixels as proof that each chart was drawn).
const CSS = `
:root{--fg:#1f2328;--muted:#5b6570;--line:#d8dee4;--panel:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;background:#fff;color:var(--fg);font:14px/1.45 system-ui,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Liberation Sans","DejaVu Sans",sans-serif}
main{max-width:1180px;margin:0 auto;padding:24px 24px 48px}
h1{font-size:22px;margin:0}
h2{font-size:17px;margin:28px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:14px;margin:0 0 6px}
header>p{margin:2px 0 12px}
.muted{color:var(--muted)}
.bad{color:#b3261e}
.nowrap{white-space:nowrap}
.mono,pre,code{font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,"Liberation Mono","DejaVu Sans Mono",monospace;font-size:12px}
.mono{overflow-wrap:anywhere}
pre{background:var(--panel);padding:8px 10px;border-radius:4px;overflow:auto;max-height:420px;margin:6px 0}
.meta{display:grid;grid-template-columns:max-content 1fr;gap:3px 16px;margin:0 0 10px;font-size:13px}
.meta dt{color:var(--muted)}.meta dd{margin:0}
.banner{border-left:4px solid #e8b400;background:#fff8e6;padding:8px 12px;margin:10px 0;font-size:13px}
.banner.bad{border-color:#b3261e;background:#fdf0ef;color:var(--fg)}
.banner ul{margin:4px 0 0;padding-left:20px}
details{margin:6px 0}summary{cursor:pointer;color:#24508f}
.kfs{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0 4px}
.kf{border:1px solid var(--line);border-radius:6px;padding:8px 14px;min-width:150px}
.kf-k{font-size:12px;color:var(--muted)}.kf-v{font-size:20px;font-weight:600}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;vertical-align:top;padding:6px 8px;border-bottom:1px solid var(--line)}
thead th{background:var(--panel);font-weight:600;font-size:12px}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.stage-final{background:#f3f7fc}
.note{font-size:12px;margin:6px 0 0}
.scroll{overflow-x:auto}
.verdict{display:inline-block;padding:0 7px;border-radius:9px;font-size:11px;font-weight:600;line-height:17px}
.v-faster{background:#e2f3e8;color:#1c6b3c}
.v-nogain{background:#fcefcc;color:#6e5200}
.v-slower{background:#fbe1df;color:#a3221b}
.charts{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:14px}
@media (max-width:1000px){.charts{grid-template-columns:1fr}}
figure{margin:0;border:1px solid var(--line);border-radius:6px;padding:10px 10px 8px}
figcaption{font-size:12px;color:var(--muted);margin-top:4px}
svg{display:block;max-width:100%;height:auto}
svg text{font-family:system-ui,"Segoe UI",Roboto,Arial,"Liberation Sans","DejaVu Sans",sans-serif;font-size:11px;fill:#333}
svg .tick{font-size:10px;fill:#5b6570}
svg .val{font-size:10px;fill:#1f2328;paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}
svg .grp{font-size:11px;fill:#1f2328;font-weight:600}
svg .axis{font-size:11px;fill:#5b6570}
svg .grid{stroke:#e8ecf0;stroke-width:1}
svg .axisline{stroke:#8a939d;stroke-width:1}
svg .ref{stroke:#1f2328;stroke-width:1.2;stroke-dasharray:5 3}
svg .whisker{stroke:#1f2328;stroke-width:1.3;fill:none}
.step{border-top:1px solid var(--line);padding:10px 0}
.step:first-of-type{border-top:0}
.counts{display:flex;flex-wrap:wrap;gap:6px 14px;margin:6px 0}
.count{background:var(--panel);border-radius:4px;padding:1px 8px;font-size:13px}
table.kv{width:auto;min-width:320px;margin:6px 0}
table.kv caption{text-align:left;font-weight:600;font-size:12px;padding:2px 0;color:var(--muted)}
table.kv th{font-weight:normal}
table.kv th,table.kv td,table.list td,table.list th{padding:3px 8px}
table.summary th,table.summary td{padding:6px 7px}
table.list td{font-size:12px}
@media print{.charts{grid-template-columns:1fr 1fr}details{display:block}}
`;

/** One self-contained HTML document for a compression report (no scripts, nothing loaded from the network). */
export function renderReportHtml(report: CompressionReport, opts: { title?: string } = {}): string {
  const title = opts.title ?? `Compression report: ${report.input?.name ?? (report.input?.sha256 ? `${report.input.sha256.slice(0, 12)}…` : 'model')}`;
  return [
    '<!DOCTYPE html>',
    '<html lang="en"><head><meta charset="utf-8">',
    // Defence in depth: even if some text slipped through unescaped, nothing runs and nothing is fetched.
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${esc(title)}</title><style>${CSS}</style></head><body><main>`,
    headerSection(report, title),
    keyFigures(report),
    summaryTable(report),
    chartsSection(report),
    stepsSection(report),
    '</main></body></html>',
    '',
  ].join('\n');
}
