import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { browserArgs, CHROMIUM, chromium, countColor, decodePng, measureLayout } from './browser.js';
import { FMNIST, MODELS } from './helpers.js';
import { openDataset, readLabelsFile } from '../src/data/samples.js';
import { decodeModel } from '../src/onnx/model-io.js';
import { parseRecipe } from '../src/pipeline/recipe.js';
import { toJson } from '../src/report/environment.js';
import { CHART_COLORS } from '../src/report/charts.js';
import { SEARCH_CHART_COLORS } from '../src/report/search-html.js';
import type { ReportWithSearch, SearchReport, SearchTrialReport } from '../src/report/search.js';
import { runSearch } from '../src/search/engine.js';
import {
  formatBytes,
  formatCount,
  formatDb,
  formatMacs,
  formatMetric,
  formatMetricDelta,
  formatMs,
  formatPercent,
  formatRatio,
  formatSeconds,
  formatSpread,
  formatThreads,
} from '../src/format.js';
import { renderReportHtml } from '../src/report/html.js';
import type { CompressionReport, LatencyRatio, LatencyStats, ProfileEntry, ProfileReport, StepReport } from '../src/report/schema.js';

const HOSTILE = '<script>alert(1)</script>';

// ---- sample reports

function stats(batch: number, p50: number): LatencyStats {
  return {
    batch,
    warmup: 10,
    runs: 32,
    meanMs: p50 * 1.03,
    p50Ms: p50,
    p90Ms: p50 * 1.12,
    p99Ms: p50 * 1.3,
    minMs: p50 * 0.93,
    maxMs: p50 * 1.4,
    stdMs: p50 * 0.05,
    throughput: (batch / p50) * 1000,
  };
}

function ratio(batch: number, aP50: number, r: number, low: number, high: number, verdict: LatencyRatio['verdict']): LatencyRatio {
  return { batch, ratio: r, low, high, rounds: 6, verdict, a: stats(batch, aP50), b: stats(batch, aP50 * r) };
}

function profile(seed: number, scale: number): ProfileReport {
  const names = Array.from({ length: 20 }, (_, i) => (i === 7 ? `/features/${HOSTILE}` : `/features/block${i}/conv_stack`));
  const rawMs = names.map((_, i) => (scale * (20 - i) ** 1.6 * (1 + ((i * 7 + seed) % 5) / 10)) / 100);
  const rawParams = names.map((_, i) => ((i * 37 + seed * 11) % 23) * 1000 + (i === 3 ? 90_000 : 0));
  const totalMs = rawMs.reduce((a, b) => a + b, 0);
  const totalParams = rawParams.reduce((a, b) => a + b, 0);
  const byBlock: ProfileEntry[] = names
    .map((name, i) => ({ name, ms: rawMs[i]!, share: rawMs[i]! / totalMs, count: 3, params: rawParams[i]!, paramShare: rawParams[i]! / totalParams }))
    .sort((a, b) => b.ms - a.ms);
  return { runs: 32, batch: 1, totalMs, depth: 2, byNode: byBlock, byOpType: byBlock.slice(0, 3), byBlock };
}

function fidelity(sqnrDb: number | string, maxAbsError: number, top1Agreement?: number) {
  // Reports on disk carry non-finite numbers as strings; the renderer must take both.
  return { sqnrDb: sqnrDb as number, maxAbsError, meanAbsError: maxAbsError / 7, cosine: 0.99999, count: 2560, ...(top1Agreement === undefined ? {} : { top1Agreement }) };
}

const ENVIRONMENT = {
  cpuModel: 'AMD EPYC 7B13',
  cores: 8,
  totalMemoryBytes: 32 * 1024 ** 3,
  platform: 'linux-x64',
  int8Dot: 'AVX-512 VNNI',
  node: 'v20.20.2',
  onnxruntime: '1.30.0',
  modelpress: '0.1.0',
};

const RECIPE = { name: 'fp16 then int8', steps: [{ pass: 'convert.fp16' }, { pass: 'quantize.dynamic' }], benchmark: { enabled: true, batchSizes: [1, 8, 16], warmup: 10, runs: 32, intraOpThreads: 0, rounds: 6 } };

function fullReport(): CompressionReport {
  const skipped = Array.from({ length: 250 }, (_, i) => ({
    node: i === 3 ? HOSTILE : `/features/block${i % 20}/Resize_${i}`,
    opType: 'Resize',
    reason: i === 3 ? `op blocked by ${HOSTILE}` : 'op type Resize is in the block list',
  }));
  const step1: StepReport = {
    index: 1,
    pass: 'convert.fp16',
    config: { pass: 'convert.fp16', keepIoTypes: true, extraBlockedOps: ['Resize'] },
    durationMs: 1189,
    sizeBytes: 849_334,
    params: 419_514,
    nodes: 47,
    macs: 11_796_480,
    latency: [ratio(1, 0.41, 0.62, 0.58, 0.66, 'faster'), ratio(8, 2.3, 0.97, 0.91, 1.04, 'no gain'), ratio(16, 4.6, 1.08, 1.04, 1.13, 'slower')],
    fidelity: { logits: fidelity(64.08, 0.0137, 0.998), [HOSTILE]: fidelity(Infinity, 0) },
    task: { top1: 0.927, top5: 0.9985 },
    changes: {
      rewritten: 0,
      skipped,
      added: 2,
      stats: { convertedTensors: 67, castsInserted: 2, valuesClampedToFloat16Max: 0, nodesInFloat16: 45, nodesKeptFloat32: 250 },
      warnings: [`node ${HOSTILE} kept in float32`],
      rewrittenNodes: [],
    },
  };
  const step2: StepReport = {
    index: 2,
    pass: 'quantize.dynamic',
    config: { pass: 'quantize.dynamic', perChannel: true },
    durationMs: 2410,
    sizeBytes: 452_118,
    params: 419_514,
    nodes: 61,
    macs: 11_796_480,
    latency: [ratio(1, 0.41, 0.55, 0.51, 0.6, 'faster'), ratio(8, 2.3, 0.86, 0.82, 0.91, 'faster'), ratio(16, 4.6, 1.01, 0.95, 1.07, 'no gain')],
    fidelity: { logits: fidelity(31.7, 0.212, 0.981), [HOSTILE]: fidelity('Infinity', 0) },
    task: { top1: 0.9215, top5: 0.998 },
    changes: { rewritten: 14, skipped: [], added: 14, stats: { quantizedMatMuls: 9, quantizedConvs: 5 }, warnings: [], rewrittenNodes: [{ node: '/classifier/MatMul', opType: 'MatMul', detail: 'int8 per-channel' }] },
  };
  return {
    schemaVersion: 1,
    kind: 'compress',
    createdAt: '2026-11-28T18:15:50.303Z',
    recipe: RECIPE,
    input: { sha256: '72b54202e7ab41ed685fb73d866be843bc30357d0950042ee9a260a67870e3dd', name: 'fmnist-cnn.onnx' },
    samples: { source: 'data', batches: 32, items: 256, labels: true },
    baseline: {
      sizeBytes: 1_688_265,
      params: 419_514,
      nodes: 45,
      macs: 11_796_480,
      fidelity: { logits: fidelity(Infinity, 0, 1), [HOSTILE]: fidelity(Infinity, 0) },
      task: { top1: 0.9275, top5: 0.9985 },
      latencyAbsolute: [stats(1, 0.41), stats(8, 2.3), stats(16, 4.6)],
    },
    steps: [step1, step2],
    final: {
      sizeBytes: step2.sizeBytes,
      params: step2.params,
      nodes: step2.nodes,
      macs: step2.macs,
      latency: step2.latency!,
      fidelity: step2.fidelity,
      task: step2.task!,
      sha256: 'a5afff83f0a419c518debaa21a7ba9994357e4bd66fb7b18011c38c1a6c786f2',
      sizeRatio: step2.sizeBytes / 1_688_265,
      paramsRatio: 1,
    },
    profile: { baseline: profile(1, 1), final: profile(2, 0.6) },
    environment: ENVIRONMENT,
    warnings: [
      'step 1 (convert.fp16): at batch 8 the model is not measurably faster than the original (b/a 0.97, spread 0.91–1.04)',
      'step 1 (convert.fp16): at batch 16 the model is SLOWER than the original (b/a 1.08, spread 1.04–1.13)',
      `step 1 (convert.fp16): node ${HOSTILE} kept in float32`,
    ],
    durationMs: 9321,
  };
}

/** No benchmark, no profile, no labels, synthetic samples. */
function minimalReport(steps: 0 | 1): CompressionReport {
  const step: StepReport = {
    index: 1,
    pass: 'convert.fp16',
    config: { pass: 'convert.fp16' },
    durationMs: 80,
    sizeBytes: 5_100,
    params: 2_300,
    nodes: 9,
    macs: null,
    fidelity: { y: fidelity(58.2, 0.003) },
    changes: { rewritten: 0, skipped: [], added: 2, stats: {}, warnings: [], rewrittenNodes: [] },
  };
  const baseline = { sizeBytes: 9_800, params: 2_300, nodes: 7, macs: null, fidelity: { y: fidelity('Infinity', 0) } };
  const last = steps ? step : baseline;
  return {
    schemaVersion: 1,
    kind: 'compress',
    createdAt: '2026-11-28T18:00:00.000Z',
    recipe: { steps: [{ pass: 'convert.fp16' }], benchmark: { enabled: false } },
    input: { sha256: 'ab'.repeat(32) },
    samples: { source: 'synthetic', batches: 4, items: 4, labels: false },
    baseline,
    steps: steps ? [step] : [],
    final: { ...last, sha256: 'cd'.repeat(32), sizeRatio: last.sizeBytes / baseline.sizeBytes, paramsRatio: 1 },
    environment: ENVIRONMENT,
    warnings: ['fidelity was measured on synthetic inputs: give representative data (--data) for numbers that mean something'],
    durationMs: 400,
  };
}

// ---- structural checks

const count = (s: string, re: RegExp): number => (s.match(re) ?? []).length;
const chartsIn = (html: string): string[] => [...html.matchAll(/<svg[^>]*\sdata-chart="([^"]+)"/g)].map((m) => m[1]!);

function assertWellFormed(html: string): void {
  assert.match(html, /^<!DOCTYPE html>/);
  assert.ok(html.trimEnd().endsWith('</html>'));
  for (const tag of ['svg', 'table', 'details', 'section', 'figure', 'ul', 'pre', 'title']) {
    assert.equal(count(html, new RegExp(`<${tag}[\\s>]`, 'g')), count(html, new RegExp(`</${tag}>`, 'g')), `<${tag}> opened and closed as often`);
  }
  for (const m of html.matchAll(/<svg[^>]*>(.{0,7})/g)) assert.equal(m[1], '<title>', 'every chart starts with a <title>');
  assert.doesNotMatch(html, /<script/i, 'no script element');
  assert.doesNotMatch(html, /https?:\/\//i, 'no network address anywhere');
  assert.doesNotMatch(html, /\s(src|href|xlink:href|action)\s*=/i, 'no external resource references');
  assert.doesNotMatch(html, /url\(/i, 'no CSS url()');
  assert.doesNotMatch(html, /NaN/, 'no NaN leaked from a missing number');
}

describe('report html: rendering', () => {
  it('a full report has every chart, honest verdicts and escaped names', () => {
    const html = renderReportHtml(fullReport());
    assertWellFormed(html);
    assert.deepEqual(chartsIn(html), ['size', 'latency', 'accuracy', 'latency-absolute', 'profile-blocks', 'profile-blocks']);
    assert.match(html, /data-chart="profile-blocks" data-stage="baseline"/);
    assert.match(html, /data-chart="profile-blocks" data-stage="final"/);
    assert.match(html, /<span class="verdict v-nogain">no gain<\/span>/, "'no gain' is shown");
    assert.match(html, /<span class="verdict v-slower">slower<\/span>/, "'slower' is shown");
    assert.match(html, /<span class="verdict v-faster">faster<\/span>/);
    assert.ok(!html.includes(HOSTILE), 'hostile name never appears raw');
    assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'), 'hostile name appears escaped');
    assert.ok(html.includes('∞'), 'infinite SQNR rendered as ∞');
    assert.ok(html.includes('… 50 more'), '250 skipped nodes capped at 200 rows');
    assert.ok(html.includes('other (5 blocks)'), '20 profile blocks: top 15 and the rest summed');
    assert.ok(html.includes('fmnist-cnn.onnx') && html.includes('72b54202e7ab41ed'), 'input named with its hash');
    assert.ok(html.includes('AMD EPYC 7B13') && html.includes('int8 dot products: AVX-512 VNNI') && html.includes('onnxruntime 1.30.0') && html.includes('intra-op threads: default'));
    assert.ok(html.includes('top1 <b>0.9215</b></span> <span class="muted nowrap">(ref 0.9275, −0.006)</span>'), 'task metric next to its reference');
    assert.ok(html.includes('<span class="mono">logits</span> <span class="nowrap"><b>31.7</b> dB · max 0.212 · top-1 98.1%</span>'), 'fidelity per output');
    assert.ok(!html.includes('Synthetic inputs.'), 'no synthetic banner on user data');
    // the task metric's change is a key figure, in percentage points for accuracies
    assert.match(html, /<div class="kf-k">top1 change<\/div><div class="kf-v">−0\.60 pt<\/div><div class="muted">0\.9275 → 0\.9215<\/div>/);
    assert.match(html, /<div class="kf-k">top5 change<\/div><div class="kf-v">−0\.05 pt<\/div>/);
    // the task chart's axis spans the data (0.92–0.93 would look equal from 0) and says where it starts
    const accuracy = html.slice(html.indexOf('data-chart="accuracy"'), html.indexOf('</svg>', html.indexOf('data-chart="accuracy"')));
    const from = /metric value \(axis from (0\.\d+)\)/.exec(accuracy);
    assert.ok(from && Number(from[1]) > 0.8 && Number(from[1]) < 0.9215, `zoomed axis: ${from?.[0]}`);
  });

  it('non-finite numbers written as strings render like the numbers', () => {
    const report = fullReport();
    const roundTripped = JSON.parse(toJson(report)) as CompressionReport;
    assert.equal(typeof roundTripped.baseline.fidelity.logits!.sqnrDb, 'string', 'the writer stringifies Infinity');
    assert.equal(renderReportHtml(roundTripped), renderReportHtml(report));
  });

  it('a minimal report (no latency, profile or task; synthetic samples) renders what it has', () => {
    const html = renderReportHtml(minimalReport(1), { title: `Report for ${HOSTILE}` });
    assertWellFormed(html);
    assert.deepEqual(chartsIn(html), ['size', 'accuracy'], 'size and SQNR charts only');
    assert.ok(html.includes('<title>Report for &lt;script&gt;'), 'custom title escaped');
    assert.ok(html.includes('Synthetic inputs.'), 'synthetic samples said loudly');
    assert.ok(html.includes('not measured'));
    assert.ok(html.includes('<b>58.2</b> dB'));
    assert.ok(html.includes('Not shown: latency ratios'));
  });

  it('zero steps renders without charts that need steps', () => {
    const html = renderReportHtml(minimalReport(0));
    assertWellFormed(html);
    assert.deepEqual(chartsIn(html), ['size']);
    assert.ok(html.includes('ran no steps'));
  });

  it('a stats table with a long text value wraps it instead of running off the page', () => {
    const report = fullReport();
    const { changes } = report.steps[0]!;
    const html = renderReportHtml({ ...report, steps: [{ ...report.steps[0]!, changes: { ...changes, stats: { ...changes.stats, worstLayers: '/features/block1/conv 24.7 dB; '.repeat(8) } } }] });
    assert.ok(html.includes('<th>worstLayers</th><td>/features/block1/conv 24.7 dB;'), 'long text is not nowrap');
    assert.ok(html.includes('<th>convertedTensors</th><td>67</td>'), 'its numbers go left with it');
    assert.ok(renderReportHtml(report).includes('<th>convertedTensors</th><td class="num">67</td>'), 'numbers alone line up on the right');
  });
});

// The CLI's benchmark tables print these too: their output must not change.
describe('report html: one formatter per quantity', () => {
  it('writes each quantity as the CLI always has, and missing or non-finite values plainly', () => {
    assert.deepEqual([500, 269_132, 1_688_265, 5 * 1024 ** 3, undefined, 'Infinity'].map(formatBytes), ['500 B', '262.8 KiB', '1.61 MiB', '5.00 GiB', '—', '—']);
    assert.deepEqual([null, 999, 10_900_000, 2.5e9].map(formatMacs), ['MACs unknown', '999 MACs', '10.9 M MACs', '2.50 G MACs']);
    assert.deepEqual([0.0123, 2.3612, 15.56, 'Infinity', undefined].map(formatMs), ['0.012', '2.361', '15.6', '∞', '—']);
    assert.deepEqual([16.94, -3, 'Infinity', '-Infinity'].map((v) => formatDb(v)), ['16.9 dB', '−3.0 dB', '∞', '−∞']);
    assert.deepEqual([formatRatio(0.0741), formatRatio(0.0741, 3), formatSpread(0.3, 0.33), formatSpread(0.3, 0.33, 3)], ['0.07×', '0.074×', '0.30–0.33', '0.300–0.330']);
    assert.deepEqual([formatPercent(0.961), formatPercent(0.12345, 2), formatCount(419_514), formatCount(null)], ['96.1%', '12.35%', '419,514', '—']);
    assert.deepEqual([formatMetric(0.92149), formatMetricDelta(-0.006), formatMetricDelta(0), formatSeconds(13_204)], ['0.9215', '−0.006', '±0', '13.20 s']);
    assert.deepEqual([0, 4, undefined].map(formatThreads), ['default', '4', 'not recorded']);
  });
});

// ---- headless Chromium: the charts are really painted

/** False (and the test skipped) without a browser, except on CI, where that fails. */
function haveChromium(t: TestContext): boolean {
  if (existsSync(CHROMIUM)) return true;
  if (process.env.CI) assert.fail(`${CHROMIUM} is missing: CI must install it (scripts/setup.sh runs apt-get install chromium as root)`);
  t.skip(`${CHROMIUM} not installed (run scripts/setup.sh as root); the HTML-report browser check is skipped`);
  return false;
}

describe('report html: headless Chromium', () => {
  it('paints every chart (screenshot pixels) and keeps the SVGs in the DOM', async (t) => {
    if (!haveChromium(t)) return;
    const dir = mkdtempSync(join(tmpdir(), 'modelpress-report-html-'));
    try {
      const html = renderReportHtml(fullReport());
      const page = join(dir, 'report.html');
      const shot = join(dir, 'shot.png');
      writeFileSync(page, html);

      const run = await chromium([...browserArgs(dir, 'profile-shot'), `--screenshot=${shot}`, `file://${page}`]);
      assert.ok(existsSync(shot), `chromium wrote no screenshot (exit ${run.code})\n${run.stderr.slice(-2000)}`);
      const png = decodePng(readFileSync(shot));
      assert.equal(png.width, 1280);
      assert.equal(png.height, 2400);
      const painted: Record<string, number> = {};
      for (const [name, hex] of Object.entries(CHART_COLORS)) painted[name] = countColor(png, hex);
      for (const [name, n] of Object.entries(painted)) {
        assert.ok(n >= 300, `chart colour ${name} (${CHART_COLORS[name as keyof typeof CHART_COLORS]}) painted on ${n} pixels, want ≥ 300; all: ${JSON.stringify(painted)}`);
      }

      const dom = await chromium([...browserArgs(dir, 'profile-dom'), '--dump-dom', `file://${page}`]);
      assert.equal(dom.code, 0, `chromium --dump-dom failed\n${dom.stderr.slice(-2000)}`);
      assert.equal(count(dom.stdout, /<svg[\s>]/g), count(html, /<svg[\s>]/g), 'every svg made it into the DOM');
      assert.deepEqual(chartsIn(dom.stdout), chartsIn(html));
      assert.ok(count(dom.stdout, /<rect[\s>]/g) > 50, 'bars are in the DOM');
      assert.doesNotMatch(dom.stdout, /<script/i);

      const keep = process.env.MODELPRESS_KEEP_REPORT_SAMPLE;
      if (keep) {
        // for humans: look at what the report looks like
        mkdirSync(keep, { recursive: true });
        copyFileSync(page, join(keep, 'report-sample.html'));
        copyFileSync(shot, join(keep, 'report-sample.png'));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---- a goal search: a real one on the fmnist CNN, run once for the tests below

let searchRun: Promise<ReportWithSearch> | undefined;

/** A short real search (tiny explicit space, half a minute), its report as the CLI writes and a reader reads it. */
function searchReport(): Promise<ReportWithSearch> {
  searchRun ??= (async () => {
    const model = decodeModel(readFileSync(MODELS.fmnist));
    const space = [
      { pass: 'prune.structured', ratio: { range: [0.1, 0.6] }, optional: true, recovery: { leastSquares: true, batchNorm: true } },
      { pass: 'quantize.static', optional: true, calibrationMethod: { choices: ['percentile', 'minmax'] } },
    ];
    const recipe = parseRecipe({
      goal: { metric: 'top1', maxDrop: 0.02, objective: 'latency', batchSize: 8, threads: 1 },
      search: { budget: { minutes: 0.5, trials: 6 }, space, seed: 1 },
      evaluate: { batchSize: 50, maxSamples: 300 },
    });
    const batches = (path: string, n: number) => [...openDataset(path, model).batches({ batchSize: 50, maxSamples: n })];
    const result = await runSearch(readFileSync(MODELS.fmnist), { recipe, samples: batches(FMNIST.inputs, 300), labels: readLabelsFile(FMNIST.labels), calibration: batches(FMNIST.calibration, 100), inputName: 'fmnist-cnn.onnx' });
    return JSON.parse(toJson(result.report)) as ReportWithSearch;
  })();
  return searchRun;
}

/**
 * The same search with what a short run on a busy machine may not show: timed candidates on and off the
 * frontier, a failure, a far-off early stop, hostile text, long reasons, and a goal not met.
 */
function withHardCases(r: ReportWithSearch): ReportWithSearch {
  const s = structuredClone(r.search!);
  const n = s.trials.length;
  const ref = s.trials[0]!.value!;
  const prune = (ratio: number) => ({ pass: 'prune.structured', ratio, recovery: { leastSquares: true, batchNorm: true } });
  const timed = (k: number, steps: SearchTrialReport['steps'], loss: number, latency: number, sizeRatio: number): SearchTrialReport => ({
    n: k, steps, status: 'meets', value: ref - loss, reference: ref, loss, samples: 180, latency: ratio(8, 2.3, latency, latency * 0.85, latency * 1.2, 'faster'), sizeRatio, built: 1, cached: 1, durationMs: 2000, atMs: 3000,
  });
  const long = 'the candidate does not run: onnxruntime could not create a session for the rewritten graph '.repeat(3);
  s.trials.push(
    timed(n, [prune(0.2), { pass: 'quantize.static', calibrationMethod: 'minmax' }], 0.004, 0.42, 0.2),
    timed(n + 1, [prune(0.35)], 0.006, 0.5, 0.3), // dominated by the one before
    { n: n + 2, steps: [prune(0.6)], status: 'stopped-early', reason: `on the 96-sample probe the metric is 0.1000 ${'and so on '.repeat(12)}`, probe: { samples: 96, value: 0.1, margin: 0.05 }, value: 0.1, reference: ref, loss: ref - 0.1, sizeRatio: 0.4, built: 1, cached: 0, durationMs: 900, atMs: 1000 },
    { n: n + 3, steps: [{ pass: 'quantize.static', calibrationMethod: HOSTILE }], status: 'failed', reason: `${long}${HOSTILE}`, sizeRatio: 0.27, built: 1, cached: 1, durationMs: 400, atMs: 1500 },
  );
  s.frontier = [...s.frontier, n];
  s.best = { ...s.best, goalMet: false, reason: `every finalist missed the goal on the held-out part ${HOSTILE}` };
  return { ...r, search: s };
}

const svgOf = (html: string, chart: string): string => new RegExp(`<svg data-chart="${chart}"[\\s\\S]*?</svg>`).exec(html)?.[0] ?? '';
const trialsOf = (svg: string, cls: string): number[] => [...svg.matchAll(new RegExp(`class="${cls}(?: [^"]*)?" data-trial="(\\d+)"`, 'g'))].map((m) => Number(m[1])).sort((a, b) => a - b);

/** What the chart may place: timed trials (the original is 1× by definition); the rest have a value but no latency. */
function expectedMarkers(s: SearchReport): { timed: number[]; untimed: number[] } {
  const timed = s.trials.filter((t) => t.steps.length === 0 || t.latency).map((t) => t.n);
  const untimed = s.trials.filter((t) => t.value !== undefined && !timed.includes(t.n)).map((t) => t.n);
  return { timed, untimed };
}

describe('report html: a goal search', () => {
  it('shows the goal and verdict, one marker per timed trial, the frontier joined, one row per trial and the finalists', async () => {
    const report = await searchReport();
    const s = report.search!;
    const html = renderReportHtml(report, { title: 'modelpress: fmnist-cnn.onnx' });
    assertWellFormed(html);
    assert.equal(chartsIn(html)[0], 'search-frontier', 'the search chart comes first');
    // the goal card: the goal, the held-out verdict, the chosen recipe to copy, both losses, how the search ran
    assert.match(html, new RegExp(`<span class="verdict v-(faster|slower)">goal (met|NOT met)</span> on ${s.data.heldOutSamples} held-out samples`));
    assert.ok(html.includes('top1 drops by at most 0.02 against the original; minimize latency; judged at batch 8 with 1 thread'));
    assert.ok(html.includes(`<pre class="recipe">${JSON.stringify({ steps: s.best.steps }, null, 2).replace(/"/g, '&quot;')}</pre>`), 'the chosen recipe as JSON');
    assert.match(html, /on the 180-sample search part → <b>[^<]+<\/b> on the 120 held-out samples/);
    assert.match(html, new RegExp(`${s.trials.length - 1} by the staged strategy: .* stopped by (the time budget|the trial budget|the space running out)`));
    assert.ok(html.includes(`<dd>${s.cache.hits} hits, ${s.cache.misses} builds</dd>`));
    // the chart: a marker for each timed trial and only those, untimed ones beside the plot, the frontier joined
    const svg = svgOf(html, 'search-frontier');
    const { timed, untimed } = expectedMarkers(s);
    assert.deepEqual(trialsOf(svg, 'pt'), timed, 'one marker per timed trial');
    assert.deepEqual(trialsOf(svg, 'pt-untimed'), untimed, 'untimed trials in the strip, not at a latency');
    assert.deepEqual(trialsOf(svg, 'pt frontier'), [...s.frontier].sort((a, b) => a - b), 'frontier points highlighted');
    assert.ok(s.frontier.length >= 1, 'the original meets its own goal: the frontier is never empty');
    const line = /<polyline class="frontier-line" points="([^"]*)"/.exec(svg);
    assert.ok(line, 'the frontier polyline');
    assert.equal(line[1]!.split(' ').length, s.frontier.length, 'one vertex per frontier point');
    assert.match(svg, /data-trial="0"/, 'the original is marked');
    assert.match(svg, /latency ratio b\/a at batch 8 \(×, lower is faster\)/);
    // the tables
    const trialRows = [...html.matchAll(/<tr class="[^"]*" data-trial="(\d+)"><th scope="row"/g)].map((m) => Number(m[1]));
    assert.deepEqual(trialRows.slice(0, s.trials.length), s.trials.map((t) => t.n), 'one row per trial, in order');
    assert.equal(trialRows.length, s.trials.length + s.finalists.length, 'then one row per finalist');
    assert.match(html, new RegExp(`<tr class="[^"]*trial-chosen[^"]*" data-trial="${s.best.trial}">`));
    for (const n of s.frontier) assert.match(html, new RegExp(`<tr class="trial-frontier[^"]*" data-trial="${n}">`));
    // the rest of the page is the chosen recipe's report
    assert.ok(html.includes(`The chosen recipe (trial ${s.best.trial}) on the held-out part`));
  });

  it('draws several timed candidates, failures, far-off early stops and a missed goal honestly, with every text escaped', async () => {
    const report = withHardCases(await searchReport());
    const s = report.search!;
    const html = renderReportHtml(report);
    assertWellFormed(html);
    assert.ok(!html.includes(HOSTILE), 'hostile text never appears raw');
    assert.match(html, /goal NOT met<\/span> on \d+ held-out samples: the result is the closest candidate/);
    assert.ok(html.includes('<div class="banner bad">every finalist missed the goal on the held-out part &lt;script&gt;'));
    const svg = svgOf(html, 'search-frontier');
    const { timed, untimed } = expectedMarkers(s);
    assert.ok(timed.length >= 3);
    assert.deepEqual(trialsOf(svg, 'pt'), timed, 'one marker per timed trial');
    assert.deepEqual(trialsOf(svg, 'pt frontier'), [...s.frontier].sort((a, b) => a - b));
    assert.equal(/<polyline class="frontier-line" points="([^"]*)"/.exec(svg)![1]!.split(' ').length, s.frontier.length, 'the frontier joined');
    const stopped = s.trials.length - 2;
    assert.deepEqual(trialsOf(svg, 'pt-untimed'), untimed);
    assert.ok(untimed.includes(stopped));
    assert.match(svg, new RegExp(`class="pt-untimed off-scale" data-trial="${stopped}"`), 'a value far below the plot sits on its border');
    assert.doesNotMatch(svg, new RegExp(`data-trial="${stopped + 1}"`), 'a failed trial has no metric: table only');
    assert.match(html, /<td class="steps" title="[^"]*">prune.structured ratio 0.2 → quantize.static calibrationMethod minmax<\/td>/, 'steps in a few words: the knobs that vary');
    assert.match(html, new RegExp(`data-trial="${stopped + 1}"><th scope="row" class="num">${stopped + 1}</th><td class="steps" title="[^"]*">quantize.static calibrationMethod &lt;script&gt;`));
    assert.match(html, /<span class="verdict v-slower">failed<\/span><div class="why">the candidate does not run/);
    // a size goal: x is the measured size ratio
    const bySize = renderReportHtml({ ...report, search: { ...s, goal: { ...s.goal, objective: 'size' } } });
    assert.match(svgOf(bySize, 'search-frontier'), /size ratio b\/a/);
    assert.deepEqual(
      trialsOf(svgOf(bySize, 'search-frontier'), 'pt'),
      s.trials.filter((t) => t.value !== undefined && t.status !== 'stopped-early' && t.status !== 'failed').map((t) => t.n),
      'every trial measured on the search part has a size',
    );
  });

  it('in Chromium: the chart is painted and nothing scrolls sideways at 1280 px', async (t) => {
    if (!haveChromium(t)) return;
    const dir = mkdtempSync(join(tmpdir(), 'modelpress-report-search-'));
    try {
      for (const [name, report] of [['real', await searchReport()], ['hard cases', withHardCases(await searchReport())]] as const) {
        const html = renderReportHtml(report);
        const page = join(dir, 'search.html');
        const shot = join(dir, 'search.png');
        writeFileSync(page, html);
        const run = await chromium([...browserArgs(dir, 'profile-search'), `--screenshot=${shot}`, `file://${page}`]);
        assert.ok(existsSync(shot), `chromium wrote no screenshot (exit ${run.code})\n${run.stderr.slice(-2000)}`);
        const png = decodePng(readFileSync(shot));
        // the legend's swatches alone paint about 60 (frontier) and 75 (chosen ring) pixels: more is the chart's markers
        for (const [key, least] of [['frontier', 100], ['chosen', 150]] as const) {
          const n = countColor(png, SEARCH_CHART_COLORS[key]);
          assert.ok(n >= least, `${name}: ${key} colour painted on ${n} pixels, want ≥ ${least}`);
        }
        const layout = await measureLayout(html, dir, '#search');
        assert.equal(layout.innerWidth, 1280);
        assert.ok(layout.scrollWidth <= 1280, `${name}: the page is ${layout.scrollWidth} px wide at 1280`);
        assert.deepEqual(layout.scrollers, [], `${name}: boxes that scroll sideways`);
        assert.ok(layout.tableRight <= 1280, `${name}: a search table ends at ${layout.tableRight} px`);
        const keep = process.env.MODELPRESS_KEEP_REPORT_SAMPLE;
        if (keep) {
          mkdirSync(keep, { recursive: true });
          copyFileSync(page, join(keep, `search-sample-${name.replace(' ', '-')}.html`));
          copyFileSync(shot, join(keep, `search-sample-${name.replace(' ', '-')}.png`));
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
