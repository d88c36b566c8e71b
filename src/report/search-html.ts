// The page's account of a goal search (a report's `search` section): the goal and the verdict on the
// held-out part with the chosen recipe, the frontier chart, every trial and the finalists. html.ts puts
// it above the chosen recipe's own report; the drawing is svg.ts's scatterChart.
import { escapeHtml as esc } from './escape.js';
import { formatCount, formatMetric, formatMetricDelta, formatRatio, formatSeconds, formatSpread, num } from '../format.js';
import { HIGHER_IS_BETTER } from '../metrics/task.js';
import type { LatencyRatio } from './schema.js';
import { latencyOf, type SearchFinalistReport, type SearchGoalReport, type SearchReport, type SearchTrialReport } from './search.js';
import { scatterChart, type EdgePoint, type LegendItem, type ScatterPoint } from './svg.js';
import { CHART_COLORS } from './charts.js';

/** The frontier chart's colours; exported so tests can look for them in a screenshot (used nowhere else). */
export const SEARCH_CHART_COLORS = {
  trial: '#5b6b7b',
  frontier: '#1d4ed8',
  chosen: '#f5b301',
} as const;

type Step = SearchTrialReport['steps'][number];

const STATUS_CLASS: Record<SearchTrialReport['status'], string> = {
  meets: 'v-faster',
  misses: 'v-slower',
  'stopped-early': 'v-nogain',
  failed: 'v-slower',
  'out-of-bounds': 'v-nogain',
};

const VERDICT_CLASS: Record<LatencyRatio['verdict'], string> = { faster: 'v-faster', 'no gain': 'v-nogain', slower: 'v-slower' };

const STOPPED_BY: Record<SearchReport['stoppedBy'], string> = {
  trials: 'the trial budget',
  time: 'the time budget',
  'space-exhausted': 'the space running out of new candidates',
  canceled: 'cancellation',
};

const OBJECTIVE: Record<SearchGoalReport['objective'], string> = {
  latency: 'latency',
  size: 'model size',
  balanced: 'the geometric mean of latency and size',
};

const badge = (cls: string, text: string): string => `<span class="verdict ${cls}">${esc(text)}</span>`;

// ---------------------------------------------------------------- steps in a few words

/**
 * Per pass, the options whose values differ between trials: the knobs that tell candidates apart. A pass
 * always run the same way shows its plain (non-object) options instead.
 */
function varyingOptions(trials: readonly SearchTrialReport[]): Map<string, string[]> {
  const byPass = new Map<string, Step[]>();
  for (const t of trials) for (const s of t.steps) byPass.set(s.pass, [...(byPass.get(s.pass) ?? []), s]);
  const out = new Map<string, string[]>();
  for (const [pass, steps] of byPass) {
    const keys = [...new Set(steps.flatMap((s) => Object.keys(s)))].filter((k) => k !== 'pass');
    const varying = keys.filter((k) => new Set(steps.map((s) => JSON.stringify(s[k]))).size > 1);
    out.set(pass, varying.length ? varying : keys.filter((k) => steps.every((s) => s[k] === null || typeof s[k] !== 'object')));
  }
  return out;
}

function compactValue(v: unknown): string {
  if (v === undefined) return '(default)';
  if (typeof v === 'number') return String(Number(v.toPrecision(4)));
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

/** `prune.structured ratio 0.325 → quantize.static calibrationMethod percentile`; the full steps go in the tooltip. */
function stepsText(steps: readonly Step[], varying: Map<string, string[]>): string {
  if (!steps.length) return 'original (no steps)';
  return steps.map((s) => [s.pass, ...(varying.get(s.pass) ?? []).filter((k) => s[k] !== undefined).map((k) => `${k} ${compactValue(s[k])}`)].join(' ')).join(' → ');
}

/** A trial's steps; a shipped recipe the search ran as it is is named. */
const stepsCell = (steps: readonly Step[], varying: Map<string, string[]>, template?: string): string =>
  `<td class="steps" title="${esc(JSON.stringify(steps))}">${template ? `recipe ${esc(template)}: ` : ''}${esc(stepsText(steps, varying))}</td>`;

// ---------------------------------------------------------------- the goal's arithmetic, as the page needs it

/** The original's value on the search part (every trial's reference). */
const referenceOf = (s: SearchReport): number | undefined => s.trials.find((t) => t.reference !== undefined)?.reference;

/** The search-part value a candidate must reach (the original's value, less the allowed drop); null when unknown. */
function threshold(s: SearchReport): number | null {
  const g = s.goal;
  if (g.min !== undefined) return g.min;
  const ref = referenceOf(s);
  if (ref === undefined || g.maxDrop === undefined) return null;
  return HIGHER_IS_BETTER.has(g.metric) ? num(ref) - g.maxDrop : num(ref) + g.maxDrop;
}

function goalText(g: SearchGoalReport): string {
  const higher = HIGHER_IS_BETTER.has(g.metric);
  const target = g.min !== undefined ? `${g.metric} ≥ ${g.min}` : `${g.metric} ${higher ? 'drops' : 'grows'} by at most ${g.maxDrop} against the original`;
  const bounds = [g.minSpeedup !== undefined ? `speed-up ≥ ${g.minSpeedup}×` : '', g.maxSizeRatio !== undefined ? `size ≤ ${g.maxSizeRatio}× of the original` : ''].filter(Boolean);
  return `${target}${bounds.length ? `, ${bounds.join(', ')}` : ''}; minimize ${OBJECTIVE[g.objective] ?? g.objective}; judged at batch ${g.batchSize} with ${g.threads || 'default'} thread${g.threads === 1 ? '' : 's'}`;
}

function latencyText(l: LatencyRatio | undefined, original: boolean): string {
  if (original) return '<span class="muted">1× (reference)</span>';
  if (!l) return '<span class="muted">not timed</span>';
  return `<span class="nowrap"><b>${esc(formatRatio(l.ratio))}</b> <span class="muted">(${esc(formatSpread(l.low, l.high))})</span></span> ${badge(VERDICT_CLASS[l.verdict] ?? 'v-nogain', l.verdict)}`;
}

// ---------------------------------------------------------------- header card

function headerCard(s: SearchReport, varying: Map<string, string[]>): string {
  const chosen = s.trials.find((t) => t.n === s.best.trial);
  const count = (status: SearchTrialReport['status']) => s.trials.filter((t) => t.n > 0 && t.status === status).length;
  const run = s.trials.filter((t) => t.n > 0).length;
  const verdict = s.best.goalMet
    ? `${badge('v-faster', 'goal met')} on ${esc(formatCount(s.data.heldOutSamples))} held-out samples`
    : `${badge('v-slower', 'goal NOT met')} on ${esc(formatCount(s.data.heldOutSamples))} held-out samples: the result is the closest candidate`;
  const allowed = s.goal.min !== undefined ? `the shortfall from ${s.goal.min}: met at ≤ 0` : `met at ≤ ${formatMetric(s.goal.maxDrop ?? 0)}`;
  const rows: [string, string][] = [
    ['goal', esc(goalText(s.goal))],
    [
      'chosen',
      `trial ${esc(s.best.trial)}: <span class="mono">${esc(stepsText(s.best.steps, varying))}</span>` +
        (chosen ? ` · latency ${latencyText(chosen.latency, chosen.steps.length === 0)} · size ${esc(formatRatio(chosen.sizeRatio, 3))}` : ''),
    ],
    [
      'loss',
      `<b>${esc(s.best.searchLoss === undefined ? '—' : formatMetricDelta(num(s.best.searchLoss)))}</b> on the ${esc(formatCount(s.data.searchSamples))}-sample search part → ` +
        `<b>${esc(s.best.heldOutLoss === undefined ? '—' : formatMetricDelta(num(s.best.heldOutLoss)))}</b> on the ${esc(formatCount(s.data.heldOutSamples))} held-out samples ` +
        `<span class="muted">(${esc(s.goal.metric)} against the original; ${esc(allowed)})</span>`,
    ],
    [
      'trials',
      esc(
        `${run} by the ${s.strategy} strategy: ${count('meets')} meet the goal, ${count('misses')} miss it, ${count('stopped-early')} stopped early on the probe, ` +
          `${count('out-of-bounds')} out of bounds, ${count('failed')} failed; stopped by ${STOPPED_BY[s.stoppedBy] ?? s.stoppedBy} after ${formatSeconds(s.elapsedMs)} ` +
          `(budget ${s.budget.minutes} min, ${s.budget.trials} trials)`,
      ),
    ],
    ['step cache', esc(`${s.cache.hits} hits, ${s.cache.misses} builds`)],
    [
      'data',
      esc(
        `search part ${formatCount(s.data.searchSamples)} samples (probe ${formatCount(s.data.probeSamples)}), held-out ${formatCount(s.data.heldOutSamples)}, split seed ${s.data.seed}; ` +
          `calibration: ${formatCount(s.data.calibration.samples)} ${s.data.calibration.source === 'given' ? 'given samples' : 'samples of the search part'}`,
      ),
    ],
    [
      'space',
      s.space.slots
        .map((slot) => `<div><b>${esc(slot.name)}</b>${slot.optional ? ' <span class="muted">(optional)</span>' : ''}: ${slot.alternatives.map((a) => `<span class="mono">${esc(a)}</span>`).join(' | ')}</div>`)
        .join(''),
    ],
  ];
  const recipe = JSON.stringify({ steps: s.best.steps }, null, 2);
  const banners = [
    !s.best.goalMet || s.best.reason ? `<div class="banner${s.best.goalMet ? '' : ' bad'}">${esc(s.best.reason ?? 'no reason recorded')}</div>` : '',
    s.data.calibration.flagged ? `<div class="banner bad">${esc(s.data.calibration.flagged)}</div>` : '',
    s.overheadNote ? `<div class="banner"><b>Run overhead:</b> ${esc(s.overheadNote)}</div>` : '',
    s.space.notes.length ? `<details><summary>how the space was built (${s.space.notes.length})</summary><ul>${s.space.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul></details>` : '',
  ];
  return (
    `<div class="goalcard ${s.best.goalMet ? 'met' : 'notmet'}"><p class="goal-verdict">${verdict}</p>` +
    `<dl class="meta">${rows.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join('')}</dl>` +
    `<p class="muted note">The chosen recipe (it re-runs without a search: <span class="mono">--recipe</span>):</p><pre class="recipe">${esc(recipe)}</pre>` +
    `${banners.join('')}</div>`
  );
}

// ---------------------------------------------------------------- frontier chart

function trialTooltip(t: SearchTrialReport, s: SearchReport, varying: Map<string, string[]>): string {
  const where = t.status === 'stopped-early' && t.probe ? `on the ${t.probe.samples}-sample probe` : 'on the search part';
  const lat = t.steps.length === 0 ? 'latency 1× (the reference)' : t.latency ? `latency ${formatRatio(t.latency.ratio)} (p10–p90 ${formatSpread(t.latency.low, t.latency.high)}, ${t.latency.rounds} rounds)` : 'latency not timed';
  return (
    `trial ${t.n} (${t.status}): ${stepsText(t.steps, varying)}; ${s.goal.metric} ${formatMetric(t.value)} ${where}` +
    `${t.loss === undefined ? '' : ` (loss ${formatMetricDelta(num(t.loss))})`}; ${lat}; size ${formatRatio(t.sizeRatio, 3)}${t.reason ? `; ${t.reason}` : ''}`
  );
}

function frontierChart(s: SearchReport, varying: Map<string, string[]>): { svg: string; plotted: number; edge: number } {
  const bySize = s.goal.objective === 'size';
  const frontier = new Set(s.frontier);
  const xOf = (t: SearchTrialReport) => (bySize ? (t.sizeRatio === undefined ? undefined : num(t.sizeRatio)) : latencyOf(t));
  // a value measured on the search part; a probe's value is only shown beside the plot
  const onSearchPart = (t: SearchTrialReport) => t.value !== undefined && t.status !== 'stopped-early' && t.status !== 'failed';
  const points: ScatterPoint[] = [];
  const edge: EdgePoint[] = [];
  const line: number[] = [];
  for (const t of s.trials) {
    const x = xOf(t);
    if (t.value === undefined) continue; // failed: in the table only
    const tooltip = trialTooltip(t, s, varying);
    if (x === undefined || !onSearchPart(t)) {
      edge.push({ y: num(t.value), tooltip, attrs: { class: `pt-untimed${t.n === s.best.trial ? ' chosen' : ''}`, 'data-trial': String(t.n) }, ...(t.n === s.best.trial ? { ring: SEARCH_CHART_COLORS.chosen } : {}) });
      continue;
    }
    const onFrontier = frontier.has(t.n);
    const original = t.n === 0;
    const chosen = t.n === s.best.trial;
    if (onFrontier) line.push(points.length);
    points.push({
      x,
      y: num(t.value),
      r: bySize ? 6 : Math.max(2.5, 10 * Math.sqrt(num(t.sizeRatio ?? 1))),
      shape: original ? 'square' : 'circle',
      color: onFrontier ? SEARCH_CHART_COLORS.frontier : original ? CHART_COLORS.baseline : SEARCH_CHART_COLORS.trial,
      faint: !onFrontier && !original && !chosen,
      ...(chosen ? { ring: SEARCH_CHART_COLORS.chosen } : {}),
      ...(!bySize && onFrontier && t.latency ? { xLow: num(t.latency.low), xHigh: num(t.latency.high) } : {}),
      // trial 0 is the original, or what the recipe's fixed steps made of it
      ...(original || onFrontier || chosen ? { label: `${original ? (t.steps.length ? 'start' : 'original') : `#${t.n}`}${chosen ? ' chosen' : ''}` } : {}),
      tooltip,
      attrs: { class: `pt${onFrontier ? ' frontier' : ''}${chosen ? ' chosen' : ''}`, 'data-trial': String(t.n) },
    });
  }
  const limit = threshold(s);
  const higher = HIGHER_IS_BETTER.has(s.goal.metric);
  const legend: LegendItem[] = [
    { color: SEARCH_CHART_COLORS.trial, label: bySize ? 'trial' : 'trial (area ∝ size ratio)', marker: 'circle' },
    { color: SEARCH_CHART_COLORS.frontier, label: 'frontier', marker: 'circle' },
    { color: CHART_COLORS.baseline, label: 'original', marker: 'square' },
    { color: SEARCH_CHART_COLORS.chosen, label: 'chosen', marker: 'ring' },
    ...(edge.length ? [{ color: SEARCH_CHART_COLORS.trial, label: bySize ? 'probe only (right)' : 'not timed (right)', marker: 'hollow' as const }] : []),
    ...(limit !== null ? [{ color: '', label: 'goal', line: true }] : []),
  ];
  const svg = scatterChart({
    chart: 'search-frontier',
    title: `Search trials: ${s.goal.metric} on the search part against ${bySize ? 'size' : 'latency'} ratio to the original; frontier joined`,
    xLabel: bySize ? 'size ratio b/a (×, lower is smaller)' : `latency ratio b/a at batch ${s.goal.batchSize} (×, lower is faster)`,
    yLabel: `${s.goal.metric}${s.goal.metric === 'sqnr' ? ' (dB)' : ''} on the search part (${higher ? 'higher' : 'lower'} is better)`,
    points,
    line: { indices: line, color: SEARCH_CHART_COLORS.frontier, attrs: { class: 'frontier-line' } },
    ...(limit !== null ? { yRef: { value: limit, label: `goal: ${s.goal.metric} ${higher ? '≥' : '≤'} ${formatMetric(limit)}` } } : {}),
    ...(edge.length ? { edge: { label: bySize ? 'probe only' : 'not timed', color: SEARCH_CHART_COLORS.trial, points: edge } } : {}),
    legend,
    xFormat: (v, d) => `${v.toFixed(d)}×`,
  });
  return { svg, plotted: points.length, edge: edge.length };
}

function chartFigure(s: SearchReport, varying: Map<string, string[]>): string {
  const { svg, plotted, edge } = frontierChart(s, varying);
  const bySize = s.goal.objective === 'size';
  const failed = s.trials.filter((t) => t.value === undefined).length;
  const caption =
    `${plotted} trial${plotted === 1 ? '' : 's'} plotted at their measured ${bySize ? 'size' : 'latency'} ratio; the original is 1× by definition. ` +
    (bySize ? '' : 'Marker area is proportional to the size ratio; whiskers on frontier points are the p10–p90 spread of the side-by-side rounds. ') +
    (edge
      ? `${edge} ${bySize ? 'stopped early on the probe: shown at the probe’s value' : 'missed the accuracy goal or stopped early on the probe, so their latency was never timed: shown'} in the strip at the right (a triangle when off the scale), not at a ${bySize ? 'size' : 'latency'} they don’t have. `
      : '') +
    (failed ? `${failed} failed (no metric): in the table only. ` : '') +
    'The frontier is over loss, latency and size together, so in this view one frontier point may look dominated by another.';
  return `<figure class="frontier"><h3>Trials and frontier</h3>${svg}<figcaption>${esc(caption)}</figcaption></figure>`;
}

// ---------------------------------------------------------------- tables

function trialsTable(s: SearchReport, varying: Map<string, string[]>): string {
  const frontier = new Set(s.frontier);
  const finalists = new Set(s.finalists.map((f) => f.trial));
  const ref = referenceOf(s);
  const head = [
    '#',
    'steps',
    'status',
    `${s.goal.metric}${ref !== undefined ? ` (original ${formatMetric(ref)})` : ''}`,
    'loss',
    `latency b/a (p10–p90)`,
    'size',
    'built / cached',
    'took',
  ];
  const rows = s.trials.map((t) => {
    const tags = [frontier.has(t.n) ? '<span class="tag t-frontier">frontier</span>' : '', finalists.has(t.n) ? '<span class="tag">finalist</span>' : '', t.n === s.best.trial ? '<span class="tag t-chosen">chosen</span>' : ''].join('');
    const cls = [frontier.has(t.n) ? 'trial-frontier' : '', t.n === s.best.trial ? 'trial-chosen' : ''].filter(Boolean).join(' ');
    const metric =
      t.value === undefined
        ? '<span class="muted">—</span>'
        : `${esc(formatMetric(t.value))}${t.status === 'stopped-early' && t.probe ? `<div class="muted">probe of ${esc(formatCount(t.probe.samples))}, margin ${esc(formatMetric(t.probe.margin))}</div>` : ''}`;
    return (
      `<tr class="${cls}" data-trial="${esc(t.n)}"><th scope="row" class="num">${esc(t.n)}${tags ? `<div class="tags">${tags}</div>` : ''}</th>` +
      stepsCell(t.steps, varying, t.template) +
      `<td class="status">${badge(STATUS_CLASS[t.status] ?? 'v-nogain', t.status)}${t.reason ? `<div class="why">${esc(t.reason)}</div>` : ''}</td>` +
      `<td class="num">${metric}</td>` +
      `<td class="num">${esc(t.loss === undefined ? '—' : formatMetricDelta(num(t.loss)))}</td>` +
      `<td class="lat">${latencyText(t.latency, t.steps.length === 0)}</td>` +
      `<td class="num" title="${esc(t.sizeBytes === undefined ? '' : `${formatCount(t.sizeBytes)} bytes`)}">${esc(formatRatio(t.sizeRatio, 3))}</td>` +
      `<td class="num">${esc(t.built)} / ${esc(t.cached)}</td>` +
      `<td class="num" title="${esc(`finished ${formatSeconds(t.atMs)} into the search`)}">${esc(formatSeconds(t.durationMs))}</td></tr>`
    );
  });
  return (
    `<h3>Trials (${esc(s.trials.length)})</h3><table class="trials"><thead><tr>${head.map((h) => `<th scope="col">${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>` +
    `<p class="muted note">${esc(s.goal.metric)} and loss on the ${esc(formatCount(s.data.searchSamples))}-sample search part (stopped-early trials: on the probe); loss is against the original in the metric's units ` +
    '(negative: better than the original). Latency is timed side by side with the original at the goal’s batch size and threads, only for candidates that meet the accuracy goal. ' +
    'Steps show each pass with the options that differ between trials; hover for the full step list.</p>'
  );
}

function finalistsTable(s: SearchReport, varying: Map<string, string[]>): string {
  if (!s.finalists.length) return `<h3>Finalists</h3><p class="muted">No finalists: no candidate met the goal on the search part.</p>`;
  const rows = s.finalists.map((f: SearchFinalistReport) => {
    const t = s.trials.find((x) => x.n === f.trial);
    const held = f.heldOut;
    return (
      `<tr class="${f.trial === s.best.trial ? 'trial-chosen' : ''}" data-trial="${esc(f.trial)}"><th scope="row" class="num">${esc(f.trial)}${f.trial === s.best.trial ? '<div class="tags"><span class="tag t-chosen">chosen</span></div>' : ''}</th>` +
      stepsCell(t?.steps ?? [], varying, t?.template) +
      `<td class="lat">${latencyText(t?.latency, (t?.steps.length ?? 0) === 0)}</td>` +
      `<td class="lat">${latencyText(f.latency, (t?.steps.length ?? 0) === 0)}${f.latency ? `<div class="muted">${esc(f.latency.rounds)} rounds</div>` : ''}</td>` +
      `<td class="num">${esc(formatMetric(held.value))}<div class="muted">original ${esc(formatMetric(held.reference))}, n = ${esc(formatCount(held.samples))}</div></td>` +
      `<td class="num">${esc(formatMetricDelta(num(held.loss)))}</td>` +
      `<td>${held.meets ? badge('v-faster', 'met') : badge('v-slower', 'missed')}</td></tr>`
    );
  });
  const head = ['trial', 'steps', 'latency in the search', 're-timed latency (p10–p90)', `held-out ${s.goal.metric}`, 'held-out loss', 'goal on held-out'];
  return (
    `<h3>Finalists (${esc(s.finalists.length)})</h3><table class="finalists"><thead><tr>${head.map((h) => `<th scope="col">${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>` +
    '<p class="muted note">The best frontier candidates, re-timed with more rounds and measured on the held-out samples no session saw during the search; the first that meets the goal there (accuracy and bounds), in re-timed order, is chosen.</p>'
  );
}

/** The search section of the page; the rest of the report is the chosen recipe measured on the held-out part. */
export function searchSectionHtml(s: SearchReport): string {
  const varying = varyingOptions(s.trials);
  return `<section id="search"><h2>Goal search</h2>${headerCard(s, varying)}${chartFigure(s, varying)}${trialsTable(s, varying)}${finalistsTable(s, varying)}</section>`;
}
