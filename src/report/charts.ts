// The report's charts: which figures of a compression report go into which chart, with their captions.
// The drawing itself is in svg.ts.
import { escapeHtml as esc } from './escape.js';
import {
  formatBytes,
  formatCount,
  formatDb,
  formatMetric,
  formatMs,
  formatPercent,
  formatRatio,
  formatSignificant,
  formatSpread,
  formatThreads,
  isMissing,
  num,
} from '../format.js';
import type { CompressionReport, LatencyRatio, LatencyStats, ProfileEntry, ProfileReport } from './schema.js';
import { benchmarkSettings, sizeRatio, stagesOf } from './stages.js';
import { barChart, fit, rowChart, type Bar, type BarGroup } from './svg.js';

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

/** Blocks shown per profile chart; the rest are summed as "other". */
const TOP_BLOCKS = 15;
/** Outputs shown in the SQNR chart (a model may have dozens; the table lists all). */
const MAX_CHART_OUTPUTS = 6;

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
          label: s.kind === 'baseline' ? formatBytes(s.m.sizeBytes) : `${formatBytes(s.m.sizeBytes)} (${formatRatio(ratio)})`,
          tooltip: `${s.label}: ${formatCount(s.m.sizeBytes)} bytes, ${formatRatio(ratio)} of the baseline`,
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
      label: formatRatio(l.ratio),
      tick: `b${l.batch}`,
      tooltip: `step ${s.index} at batch ${l.batch}: ${formatRatio(l.ratio)} of baseline latency (p10–p90 of ${l.rounds} rounds: ${formatSpread(l.low, l.high)}), ${l.verdict}`,
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
        label: formatMetric(v),
        tick: s.kind === 'baseline' ? 'base' : `#${s.step!.index}`,
        tooltip: `${name} ${s.label}: ${formatMetric(v)}`,
      };
    }),
  }));
  return barChart({
    chart: 'accuracy',
    title: 'Task metrics per step (against labels)',
    yLabel: 'metric value',
    zoom: true,
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
        label: f ? formatDb(v) : '—',
        tooltip: `${o} after step ${s.index}: SQNR ${formatDb(v, 2)}${v === Infinity ? ' (identical outputs)' : ''}`,
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
            label: formatMs(l.p50Ms),
            tick: who,
            tooltip: `${who} at batch ${batch}: p50 ${formatMs(l.p50Ms)} ms (min ${formatMs(l.minMs)}, p90 ${formatMs(l.p90Ms)}), ${formatSignificant(l.throughput)} items/s`,
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
  const blocks = topBlocks(p.byBlock ?? []);
  const withParams = blocks.some((b) => b.paramShare !== null);
  return rowChart({
    chart: 'profile-blocks',
    attrs: { 'data-stage': stage },
    title: `Profile by block, ${stage}: share of kernel time${withParams ? ' and of parameters' : ''} (batch ${p.batch}, ${formatMs(p.totalMs)} ms per run)`,
    legend: [{ color: CHART_COLORS.profileLatency, label: 'latency share' }, ...(withParams ? [{ color: CHART_COLORS.profileParams, label: 'parameter share' }] : [])],
    rows: blocks.map((b) => ({
      label: b.name,
      bars: [
        { value: b.share, color: CHART_COLORS.profileLatency, label: formatPercent(b.share), tooltip: `${b.name}: latency ${formatPercent(b.share)} (${formatMs(b.ms)} ms)` },
        ...(withParams
          ? [
              b.paramShare === null
                ? { value: 0, color: CHART_COLORS.profileParams, label: '—', tooltip: `${b.name}: parameters: not measured` }
                : { value: b.paramShare, color: CHART_COLORS.profileParams, label: formatPercent(b.paramShare), tooltip: `${b.name}: parameters ${formatPercent(b.paramShare)}` },
            ]
          : []),
      ],
    })),
    atLeast: 0.01,
    xFormat: (v, d) => formatPercent(v, Math.max(0, d - 2)),
  });
}

function profileCaption(p: ProfileReport): string {
  const n = (p.byBlock ?? []).length;
  return esc(
    `${n} blocks by node-name prefix (depth ${p.depth}); top ${Math.min(n, TOP_BLOCKS)} by kernel time${n > TOP_BLOCKS ? ', the rest summed as “other”' : ''}. ` +
      `${p.runs} timed runs at batch ${p.batch}. A block with a much larger time share than parameter share is likely bound by activations, not weights.`,
  );
}

/** `caption` is markup; callers escape what they put in it. */
function figure(svg: string, heading: string, caption: string): string {
  return `<figure><h3>${esc(heading)}</h3>${svg}<figcaption>${caption}</figcaption></figure>`;
}

/** Every chart the report's data allows, and a note naming those it doesn't. */
export function chartsSection(r: CompressionReport): string {
  const figs: string[] = [];
  const missing: string[] = [];
  const stages = stagesOf(r);
  const last = stages[stages.length - 1]!;

  figs.push(
    figure(
      sizeChart(r),
      'Model size',
      `Baseline ${esc(formatBytes(r.baseline.sizeBytes))} → final ${esc(formatBytes(last.m.sizeBytes))} (${esc(formatRatio(sizeRatio(r, last.m)))}).`,
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
    const threads = formatThreads(benchmarkSettings(r)?.intraOpThreads);
    figs.push(figure(abs, 'Absolute latency', `Milliseconds per batch, onnxruntime intra-op threads: ${esc(threads)}. Bars: median; whiskers: min to p90.`));
  } else missing.push('absolute latency (not measured)');

  if (r.profile?.baseline) {
    figs.push(figure(profileChart(r.profile.baseline, 'baseline'), 'Where the time goes: baseline', profileCaption(r.profile.baseline)));
    if (r.profile.final) figs.push(figure(profileChart(r.profile.final, 'final'), 'Where the time goes: final', profileCaption(r.profile.final)));
  } else missing.push('per-block profile (profiling was off)');

  const note = missing.length ? `<p class="muted">Not shown: ${esc(missing.join('; '))}.</p>` : '';
  return `<section id="charts"><h2>Charts</h2><div class="charts">${figs.join('')}</div>${note}</section>`;
}
