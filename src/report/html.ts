// Offline HTML rendering of a compression report: one self-contained document (inline CSS, charts as
// inline SVG, no JavaScript, no network), so it can be mailed, archived or opened from a CI artifact.
// This module is the page: header, key figures, summary table and per-step details. The charts are in
// charts.ts, the stylesheet in css.ts, and every number goes through format.ts.
import { chartsSection } from './charts.js';
import { REPORT_CSS } from './css.js';
import { escapeHtml as esc } from './escape.js';
import {
  formatBytes,
  formatCount,
  formatDb,
  formatMacs,
  formatMetric,
  formatMetricDelta,
  formatPercent,
  formatRatio,
  formatSeconds,
  formatSignificant,
  formatSpread,
  formatThreads,
  isMissing,
  num,
  formatTiming,
} from '../format.js';
import type { CompressionReport, LatencyRatio, StageMetrics, TaskMetrics } from './schema.js';
import { searchSectionHtml } from './search-html.js';
import type { ReportWithSearch, SearchReport } from './search.js';
import { benchmarkSettings, paramsRatio, sizeRatio, stagesOf, type Stage } from './stages.js';

/** Rows shown per list of changes before "… N more". */
const MAX_ROWS = 200;
/** Characters of a recipe or config shown before the rest is cut. */
const MAX_JSON_CHARS = 20000;
/** Longest text value a stats table still right-aligns (and keeps on one line), like its numbers. */
const MAX_RIGHT_ALIGNED_CHARS = 24;

const VERDICT_CLASS: Record<LatencyRatio['verdict'], string> = { faster: 'v-faster', 'no gain': 'v-nogain', slower: 'v-slower' };

const json = (v: unknown): string =>
  JSON.stringify(v, (_k, x: unknown) => (typeof x === 'number' && !Number.isFinite(x) ? String(x) : x), 2) ?? 'undefined';

function cap(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n)}\n… ${(s.length - n).toLocaleString('en-US')} more characters` : s;
}

const jsonBlock = (label: string, v: unknown): string => `<details><summary>${esc(label)}</summary><pre>${esc(cap(json(v), MAX_JSON_CHARS))}</pre></details>`;

/** Bold the number of a formatted quantity, not its unit: "<b>16.9</b> dB". */
function boldValue(text: string): string {
  const space = text.indexOf(' ');
  return space < 0 ? `<b>${esc(text)}</b>` : `<b>${esc(text.slice(0, space))}</b>${esc(text.slice(space))}`;
}

// ---------------------------------------------------------------- header

function headerSection(r: ReportWithSearch, title: string): string {
  const env = r.environment ?? ({} as CompressionReport['environment']);
  const bench = benchmarkSettings(r);
  const samples = r.samples;
  const meta: [string, string][] = [
    ['created', esc(r.createdAt ?? '—')],
    ['input', `${r.input?.name ? `${esc(r.input.name)}<br>` : ''}<span class="mono">sha256 ${esc(r.input?.sha256 ?? '—')}</span>`],
    ['output', `<span class="mono">sha256 ${esc(r.final?.sha256 ?? '—')}</span>`],
    [
      'environment',
      esc(
        `${env.cpuModel ?? 'unknown CPU'}, ${env.cores ?? '?'} cores, ${env.platform ?? ''}${env.int8Dot ? ` (int8 dot products: ${env.int8Dot})` : ''}; onnxruntime ${env.onnxruntime ?? '?'}, ` +
          `intra-op threads: ${formatThreads(bench?.intraOpThreads)}; Node ${env.node ?? '?'}, modelpress ${env.modelpress ?? '?'}`,
      ),
    ],
    [
      'benchmark',
      r.timing
        ? esc(formatTiming(r.timing))
        : bench && bench.enabled !== false
          ? esc(
              `batch sizes ${Array.isArray(bench.batchSizes) ? bench.batchSizes.join(', ') : '?'}; ${String(bench.warmup ?? '?')} warmup + ${String(bench.runs ?? '?')} runs` +
                `${isMissing(bench.rounds) ? '' : `, ${String(bench.rounds)} side-by-side rounds`}`,
            )
          : '<span class="muted">off</span>',
    ],
    [
      'samples',
      samples
        ? `${samples.source === 'synthetic' ? '<b class="bad">synthetic (random) inputs</b>' : 'user data'}: ${esc(formatCount(samples.items))} items in ${esc(formatCount(samples.batches))} batches${samples.given ? ` (of ${esc(formatCount(samples.given.items))} given: the ${esc(String(samples.budgetSeconds))} s budget ran out)` : ''}${samples.labels ? ', with labels' : ''}` +
          `${samples.calibration ? `; calibration ${esc(formatCount(samples.calibration.items))} items${samples.calibration.given ? ` of ${esc(formatCount(samples.calibration.given.items))} given (${esc(String(samples.calibration.budgetSeconds))} s budget)` : ''}` : ''}`
        : '<span class="muted">not recorded</span>',
    ],
    ['run time', esc(formatSeconds(r.durationMs))],
  ];
  const synthetic =
    samples?.source === 'synthetic'
      ? `<div class="banner bad"><b>Synthetic inputs.</b> Fidelity (and the float16 range check, if any) was measured on random inputs, not on representative data. ` +
        'The numbers show how close the outputs stay on noise; give real samples (<span class="mono">--data</span>) for numbers that mean something.</div>'
      : '';
  const warnings = (r.warnings ?? []).length
    ? `<div class="banner"><b>Warnings (${r.warnings.length})</b><ul>${r.warnings.map((w) => `<li>${esc(w)}</li>`).join('')}</ul></div>`
    : '';
  const notes = (r.importNotes ?? []).length
    ? `<div class="banner"><b>Changed on import</b><ul>${r.importNotes!.map((n) => `<li><span class="mono">${esc(n.kind)}</span>: ${esc(n.message)}</li>`).join('')}</ul></div>`
    : '';
  return (
    `<header><h1>${esc(title)}</h1><p class="muted">modelpress ${r.search ? 'goal search' : 'compression'} report · schema v${esc(r.schemaVersion ?? '?')}</p>` +
    `<dl class="meta">${meta.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join('')}</dl>${synthetic}${notes}${warnings}${jsonBlock('recipe', r.recipe)}</header>`
  );
}

function verdictBadge(v: LatencyRatio['verdict']): string {
  return `<span class="verdict ${VERDICT_CLASS[v] ?? 'v-nogain'}">${esc(v)}</span>`;
}

/** Task metrics that are shares of samples: their changes read as percentage points. */
const ACCURACY_METRICS: ReadonlySet<string> = new Set(['top1', 'top5']);

function keyFigures(r: CompressionReport): string {
  const f = r.final;
  if (!f) return '';
  const items: [string, string, string][] = [
    ['size', formatRatio(isMissing(f.sizeRatio) ? sizeRatio(r, f) : f.sizeRatio), `${formatBytes(r.baseline.sizeBytes)} → ${formatBytes(f.sizeBytes)}`],
    ['params', formatRatio(isMissing(f.paramsRatio) ? paramsRatio(r, f) : f.paramsRatio), `${formatCount(r.baseline.params)} → ${formatCount(f.params)}`],
  ];
  let latency = '';
  if (f.latency?.length) {
    latency = `<div class="kf"><div class="kf-k">latency (final vs baseline)</div><div class="kf-v">${f.latency
      .map((l) => `<span class="nowrap">b${esc(l.batch)} ${esc(formatRatio(l.ratio))} ${verdictBadge(l.verdict)}</span>`)
      .join(' ')}</div></div>`;
  }
  const sq = Object.values(f.fidelity ?? {}).map((v) => num(v.sqnrDb));
  if (sq.length && (r.steps ?? []).length) {
    const worst = Math.min(...sq.map((x) => (Number.isNaN(x) ? -Infinity : x)));
    items.push(['worst SQNR', formatDb(worst), `over ${sq.length} output${sq.length > 1 ? 's' : ''}`]);
  }
  // the task metrics' change, final against baseline: the number a reader looks for first
  for (const [name, value] of Object.entries(f.task ?? {})) {
    const ref = r.baseline.task?.[name];
    if (isMissing(ref) || isMissing(value) || !(r.steps ?? []).length) continue;
    const delta = num(value) - num(ref);
    const shown = ACCURACY_METRICS.has(name) ? `${delta > 0 ? '+' : delta < 0 ? '−' : '±'}${Math.abs(delta * 100).toFixed(2)} pt` : formatMetricDelta(delta);
    items.push([`${name} change`, shown, `${formatMetric(ref)} → ${formatMetric(value)}`]);
  }
  const kf = items.map(([k, v, sub]) => `<div class="kf"><div class="kf-k">${esc(k)}</div><div class="kf-v">${esc(v)}</div><div class="muted">${esc(sub)}</div></div>`);
  return `<div class="kfs">${kf.join('')}${latency}</div>`;
}

// ---------------------------------------------------------------- summary table

function latencyCell(s: Stage): string {
  if (s.kind === 'baseline') return '<span class="muted">reference</span>';
  const l = s.m.latency;
  if (!l || !l.length) return '<span class="muted">not measured</span>';
  return l
    .map(
      (x) =>
        `<div class="nowrap"><span class="muted">b${esc(x.batch)}</span> <b>${esc(formatRatio(x.ratio))}</b> <span class="muted">(${esc(formatSpread(x.low, x.high))})</span> ${verdictBadge(x.verdict)}</div>`,
    )
    .join('');
}

function fidelityCell(s: Stage): string {
  if (s.kind === 'baseline') return '<span class="muted">reference</span>';
  const f = Object.entries(s.m.fidelity ?? {});
  if (!f.length) return '<span class="muted">—</span>';
  return f
    .map(([name, v]) => {
      const parts = [boldValue(formatDb(v.sqnrDb)), `max ${esc(formatSignificant(v.maxAbsError))}`];
      if (!isMissing(v.top1Agreement)) parts.push(`top-1 ${esc(formatPercent(v.top1Agreement))}`);
      if (!isMissing(v.sequenceAgreement)) parts.push(`seq. ${esc(formatPercent(v.sequenceAgreement))}`);
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
      const delta = ref === undefined ? '' : ` <span class="muted nowrap">(ref ${esc(formatMetric(ref))}, ${esc(formatMetricDelta(num(v) - num(ref)))})</span>`;
      return `<div><span class="nowrap">${esc(k)} <b>${esc(formatMetric(v))}</b></span>${delta}</div>`;
    })
    .join('');
}

function summaryTable(r: CompressionReport): string {
  const stages = stagesOf(r);
  const anyTask = stages.some((s) => s.m.task && Object.keys(s.m.task).length);
  const head = ['stage', 'size', 'params', 'nodes', 'compute', 'latency vs baseline (p10–p90)', 'fidelity (SQNR · max |err| · top-1)', ...(anyTask ? ['task metrics (Δ vs baseline)'] : [])];
  const rows = stages.map((s) => {
    const cells = [
      `<th scope="row" class="nowrap">${esc(s.label)}</th>`,
      `<td class="num">${esc(formatBytes(s.m.sizeBytes))}<br><span class="muted">${esc(formatCount(s.m.sizeBytes))} B${s.kind === 'baseline' ? '' : ` · ${esc(formatRatio(sizeRatio(r, s.m)))}`}</span></td>`,
      `<td class="num">${esc(formatCount(s.m.params))}${s.kind === 'baseline' ? '' : `<br><span class="muted">${esc(formatRatio(paramsRatio(r, s.m)))}</span>`}</td>`,
      `<td class="num">${esc(formatCount(s.m.nodes))}</td>`,
      `<td class="num">${esc(formatMacs(s.m.macs))}</td>`,
      `<td>${latencyCell(s)}</td>`,
      `<td>${fidelityCell(s)}</td>`,
      ...(anyTask ? [`<td>${taskCell(s, r.baseline.task)}</td>`] : []),
    ];
    return `<tr class="stage-${s.kind}">${cells.join('')}</tr>`;
  });
  return (
    `<section id="summary"><h2>Summary</h2><div class="scroll"><table class="summary"><thead><tr>${head.map((h) => `<th scope="col">${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table></div>` +
    '<p class="muted note">Ratios (×) are against the baseline. Compute: multiply-accumulates (MACs) of Conv/Gemm/MatMul at batch 1, counted from shapes. ' +
    'Latency b/a is the median of per-round ratios measured side by side; fidelity compares outputs with the baseline on the sample inputs.</p></section>'
  );
}

// ---------------------------------------------------------------- per-step details

function cell(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'object') return `<span class="mono">${esc(JSON.stringify(v))}</span>`;
  return esc(typeof v === 'number' ? formatSignificant(v) : v);
}

function rowsTable(key: string, rows: unknown[]): string {
  const shown = rows.slice(0, MAX_ROWS);
  const more = rows.length - shown.length;
  const objects = shown.every((x) => x !== null && typeof x === 'object' && !Array.isArray(x));
  let body: string;
  if (objects) {
    const cols = [...new Set(shown.flatMap((x) => Object.keys(x as object)))];
    body =
      `<table class="list"><thead><tr>${cols.map((c) => `<th>${esc(c)}</th>`).join('')}</tr></thead><tbody>` +
      shown.map((x) => `<tr>${cols.map((c) => `<td>${cell((x as Record<string, unknown>)[c])}</td>`).join('')}</tr>`).join('') +
      (more > 0 ? `<tr><td colspan="${cols.length}" class="muted">… ${esc(formatCount(more))} more</td></tr>` : '') +
      '</tbody></table>';
  } else {
    body = `<ul>${shown.map((x) => `<li>${cell(x)}</li>`).join('')}${more > 0 ? `<li class="muted">… ${esc(formatCount(more))} more</li>` : ''}</ul>`;
  }
  return `<details><summary>${esc(key)} (${esc(formatCount(rows.length))})</summary>${body}</details>`;
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
        // values line up on the right, unless a long text (some stats are sentences) makes the column wide:
        // then all go left, next to their names, and the text wraps instead of running off the page
        const wide = entries.some(([, x]) => typeof x === 'string' && x.length > MAX_RIGHT_ALIGNED_CHARS);
        const td = (x: unknown) => `<td${wide ? '' : ' class="num"'}>${cell(x)}</td>`;
        tables.push(`<table class="kv"><caption>${esc(k)}</caption><tbody>${entries.map(([a, b]) => `<tr><th>${esc(a)}</th>${td(b)}</tr>`).join('')}</tbody></table>`);
      } else {
        lists.push(jsonBlock(k, v));
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
      `took ${formatSeconds(s.durationMs)} · size ${formatBytes(prev.sizeBytes)} → ${formatBytes(s.sizeBytes)} · ` +
      `nodes ${formatCount(prev.nodes)} → ${formatCount(s.nodes)} · params ${formatCount(prev.params)} → ${formatCount(s.params)}`;
    prev = s;
    return `<section class="step"><h3>${esc(`${s.index}. ${s.pass}`)}</h3><p class="muted">${esc(line)}</p>${changesBlock(s.changes)}${jsonBlock('config', s.config)}</section>`;
  });
  return `<section id="steps"><h2>Steps</h2>${blocks.join('')}</section>`;
}

// ---------------------------------------------------------------- document

/** After a search, the rest of the page is the chosen recipe's own report, measured on the held-out part. */
function chosenHeading(r: CompressionReport, s: SearchReport): string {
  return (
    `<h2 id="chosen">The chosen recipe (trial ${esc(s.best.trial)}) on the held-out part</h2>` +
    `<p class="muted note">Its steps run once more through the pipeline, served from the search's cache, and measured on the ${esc(formatCount(r.samples?.items ?? s.data.heldOutSamples))} held-out samples: ` +
    'sizes, side-by-side latency, fidelity and task metrics against the original, as for any recipe.</p>'
  );
}

/** One self-contained HTML document for a compression report (no scripts, nothing loaded from the network). */
export function renderReportHtml(report: ReportWithSearch, opts: { title?: string } = {}): string {
  const title = opts.title ?? `${report.search ? 'Goal search' : 'Compression'} report: ${report.input?.name ?? (report.input?.sha256 ? `${report.input.sha256.slice(0, 12)}…` : 'model')}`;
  return [
    '<!DOCTYPE html>',
    '<html lang="en"><head><meta charset="utf-8">',
    // Defence in depth: even if some text slipped through unescaped, nothing runs and nothing is fetched.
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${esc(title)}</title><style>${REPORT_CSS}</style></head><body><main>`,
    headerSection(report, title),
    ...(report.search ? [searchSectionHtml(report.search), chosenHeading(report, report.search)] : []),
    keyFigures(report),
    summaryTable(report),
    chartsSection(report),
    stepsSection(report),
    '</main></body></html>',
    '',
  ].join('\n');
}
