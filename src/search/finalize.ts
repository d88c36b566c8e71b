// The end of a search: the frontier of what met the goal on the search part, its finalists re-timed
// with more rounds and measured on the held-out part, the first that meets the goal there chosen
// (or the closest, with the reason), and the chosen recipe run through the pipeline on the held-out
// part for the report, every step served from the cache.
import { evaluateModels } from '../eval/evaluate.js';
import type { Model } from '../onnx/ir.js';
import { needsLabels, type Goal } from '../pipeline/goal.js';
import { REFERENCE_KEEP, runPipeline, type PipelineReport } from '../pipeline/pipeline.js';
import type { Recipe, RecipeStep } from '../pipeline/recipe.js';
import type { SearchFinalistReport, SearchReport, SearchTrialReport } from '../report/search.js';
import { runtimeSource, type ModelSource } from '../runtime/ort.js';
import type { CacheStats } from './cache.js';
import { finalTimingSeconds, latencyOf, searchSection, type SearchProgress, type SearchState } from './state.js';
import { meetsAccuracy, meetsBounds, objectiveScore, paretoFrontier, shortfall } from './frontier.js';
import { buildCandidate, metricOf, timeAgainstOriginal } from './trial.js';

export interface SearchResult {
  model: Model;
  output: ModelSource;
  report: PipelineReport & { search: SearchReport };
}

interface FinalizeOptions {
  signal?: AbortSignal;
  progress: (p: Omit<SearchProgress, 'elapsedMs' | 'remainingMs' | 'percent' | 'maxTrials'>) => void;
  best: () => SearchTrialReport | null;
  cacheStats: CacheStats;
  onFrontierModel?: (trial: SearchTrialReport, model: Model) => void | Promise<void>;
  /** The search's clock (tests). */
  now?: () => number;
}

export async function finalize(state: SearchState, opts: FinalizeOptions): Promise<SearchResult> {
  const { goal, data } = state;
  const measured = state.trials.filter((t) => t.status === 'meets' && t.loss !== undefined && (goal.objective === 'size' || latencyOf(t) !== undefined));
  const frontier = paretoFrontier(measured.map((t) => ({ id: t.n, loss: t.loss!, latencyRatio: latencyOf(t) ?? Infinity, sizeRatio: t.sizeRatio ?? 1, t })));
  const score = (t: SearchTrialReport, latency = latencyOf(t)) => objectiveScore(goal, latency, t.sizeRatio ?? 1);
  const ranked = frontier
    .map((p) => p.t)
    .filter((t) => meetsBounds(goal, latencyOf(t), t.sizeRatio ?? 1))
    .sort((a, b) => score(a) - score(b) || a.loss! - b.loss!);
  // the first `finalists` of the frontier; when every one of them misses on the held-out part, the
  // next frontier candidates in turn while the budget (plus 5%) lasts, until one meets the goal
  const now = opts.now ?? Date.now;
  const overtime = () => now() - state.started > state.settings.budget.minutes * 60_000 * 1.05;

  const finalTiming = finalTimingSeconds(state.settings);
  // the original on the held-out part, once, now that the search is over
  opts.progress({ phase: 'finalists', trial: 0, message: 'measuring the original on the held-out part' });
  const isTask = needsLabels(goal.metric);
  const heldRef = await evaluateModels(data.original, data.original, state.heldOut, {
    keepReference: REFERENCE_KEEP,
    ...(state.heldOutLabels && isTask ? { labels: state.heldOutLabels, metrics: [goal.metric as never] } : {}),
    ...(data.labelOutput ? { labelOutput: data.labelOutput } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  try {
    const heldOutOf = async (t: SearchTrialReport): Promise<SearchFinalistReport['heldOut'] & { model: Model }> => {
      const { model } = await buildCandidate(data, t.steps, opts.signal);
      const candidate = t.steps.length === 0 ? data.original : runtimeSource(model);
      const ev = await evaluateModels(data.original, candidate, state.heldOut, {
        ...(heldRef.referenceOutputs ? { referenceOutputs: heldRef.referenceOutputs } : {}),
        ...(state.heldOutLabels && isTask ? { labels: state.heldOutLabels, metrics: [goal.metric as never] } : {}),
        ...(data.labelOutput ? { labelOutput: data.labelOutput } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      const m = metricOf(goal, ev);
      const loss = shortfall(goal, m.value, m.reference) + (goal.maxDrop ?? 0);
      return { model, value: m.value, reference: m.reference, loss, samples: ev.samples, meets: meetsAccuracy(goal, m.value, m.reference) };
    };

    const finalists: (SearchFinalistReport & { model: Model })[] = [];
    for (const [i, t] of ranked.entries()) {
      if (i >= state.settings.finalists && (finalists.some((f) => f.heldOut.meets) || overtime())) break;
      const which = i < state.settings.finalists ? `finalist ${i + 1} of ${Math.min(ranked.length, state.settings.finalists)}` : `frontier candidate ${i + 1} of ${ranked.length} (the finalists before it missed on the held-out part)`;
      opts.progress({ phase: 'finalists', trial: t.n, message: `${which}: re-timing and measuring on the held-out part` });
      const held = await heldOutOf(t);
      const latency = t.steps.length === 0 ? undefined : await timeAgainstOriginal(data, runtimeSource(held.model), finalTiming, opts.signal);
      const { model, ...heldOut } = held;
      heldOut.meets = heldOut.meets && meetsBounds(goal, latency?.ratio ?? latencyOf(t), t.sizeRatio ?? 1);
      finalists.push({ trial: t.n, ...(latency ? { latency } : {}), heldOut, model });
    }
    // the re-timed order decides among those that hold on held-out samples
    const retimed = (f: (typeof finalists)[number]) => score(state.trials.find((t) => t.n === f.trial)!, f.latency?.ratio ?? latencyOf(state.trials.find((t) => t.n === f.trial)!));
    const winners = finalists.filter((f) => f.heldOut.meets).sort((a, b) => retimed(a) - retimed(b));
    let chosen: { trial: SearchTrialReport; model: Model; heldOutLoss?: number; goalMet: boolean; reason?: string };
    if (winners.length) {
      const w = winners[0]!;
      const skipped = finalists.filter((f) => !f.heldOut.meets && retimed(f) < retimed(w)).map((f) => f.trial);
      chosen = {
        trial: state.trials.find((t) => t.n === w.trial)!,
        model: w.model,
        heldOutLoss: w.heldOut.loss,
        goalMet: true,
        ...(skipped.length ? { reason: `finalists ranked above it missed the goal on the held-out part: trial${skipped.length > 1 ? 's' : ''} ${skipped.join(', ')}` } : {}),
      };
    } else {
      // never nothing: the closest candidate, and why it is not enough
      const pool = finalists.length ? finalists : [];
      const closestFinalist = [...pool].sort((a, b) => a.heldOut.loss - b.heldOut.loss)[0];
      const closestTrial = closestFinalist
        ? state.trials.find((t) => t.n === closestFinalist.trial)!
        : [...state.trials].filter((t) => t.loss !== undefined).sort((a, b) => a.loss! - b.loss!)[0] ?? state.trials[0]!;
      const held = closestFinalist ?? (await heldOutOf(closestTrial).then(({ model, ...heldOut }) => ({ heldOut, model })));
      const model = held.model;
      chosen = {
        trial: closestTrial,
        model,
        heldOutLoss: held.heldOut.loss,
        goalMet: false,
        reason: !measured.length
          ? `no candidate met the goal on the search part in ${state.trials.length - 1} trials (stopped by ${state.stoppedBy}); the closest is trial ${closestTrial.n}`
          : !ranked.length
            ? `no candidate that meets the accuracy goal also meets ${describeBounds(goal)}; the closest is trial ${closestTrial.n}`
            : `every finalist missed the goal on the held-out part; the closest is trial ${closestTrial.n} (held-out loss ${held.heldOut.loss.toFixed(4)})`,
      };
    }

    if (opts.onFrontierModel) {
      for (const p of frontier) await opts.onFrontierModel(p.t, (await buildCandidate(data, p.t.steps, opts.signal)).model);
    }
    opts.progress({ phase: 'report', trial: chosen.trial.n, message: 'measuring the chosen recipe on the held-out part for the report' });
    const report = await reportOf(state, chosen.trial.steps, opts.signal);
    const search = searchSection(state, chosen.trial, {
      frontier: frontier.map((p) => p.id),
      finalists: finalists.map(({ model: _m, ...f }) => f),
      best: {
        trial: chosen.trial.n,
        steps: chosen.trial.steps,
        goalMet: chosen.goalMet,
        ...(chosen.reason ? { reason: chosen.reason } : {}),
        ...(chosen.trial.loss !== undefined ? { searchLoss: chosen.trial.loss } : {}),
        ...(chosen.heldOutLoss !== undefined ? { heldOutLoss: chosen.heldOutLoss } : {}),
      },
      cache: { hits: opts.cacheStats.hits, misses: opts.cacheStats.misses },
      ...(overheadNote(state, finalists) ? { overheadNote: overheadNote(state, finalists)! } : {}),
    });
    if (!chosen.goalMet) report.report.warnings.unshift(`goal not met: ${chosen.reason}`);
    return { model: report.model, output: report.output, report: { ...report.report, search } };
  } finally {
    heldRef.referenceOutputs?.dispose();
  }
}

function describeBounds(goal: Goal): string {
  return [goal.minSpeedup !== undefined ? `minSpeedup ${goal.minSpeedup}` : '', goal.maxSizeRatio !== undefined ? `maxSizeRatio ${goal.maxSizeRatio}` : ''].filter(Boolean).join(' and ');
}

/** The chosen recipe through the pipeline, on the held-out part, timed in the goal's regime; steps come from the cache. */
async function reportOf(state: SearchState, steps: RecipeStep[], signal?: AbortSignal) {
  const { goal, data } = state;
  const recipe: Recipe = {
    name: `${state.recipe.name ?? 'goal'} (found by search)`,
    description: `Found by a ${state.settings.strategy} search for ${goal.metric} ${goal.min !== undefined ? `≥ ${goal.min}` : `drop ≤ ${goal.maxDrop}`}, objective ${goal.objective} at batch ${goal.batchSize} with ${goal.threads || 'default'} thread(s).`,
    steps,
    benchmark: { ...state.recipe.benchmark, enabled: true, batchSizes: [goal.batchSize], intraOpThreads: goal.threads, budgetSeconds: data.timingSeconds * 2 },
    evaluate: { ...state.recipe.evaluate, maxSamples: 100_000 },
    ...(state.recipe.output ? { output: state.recipe.output } : {}),
  };
  return runPipeline(data.original, {
    recipe,
    samples: state.heldOut,
    calibration: data.calibration,
    ...(state.heldOutLabels ? { labels: state.heldOutLabels } : {}),
    ...(data.labelOutput ? { labelOutput: data.labelOutput } : {}),
    ...(signal ? { signal } : {}),
    ...(state.inputName ? { inputName: state.inputName } : {}),
    stepModel: async (index) => {
      const { entries } = await buildCandidate(data, steps.slice(0, index + 1), signal);
      const last = entries[entries.length - 1]!;
      return { model: last.model, changes: last.changes, durationMs: last.durationMs };
    },
  });
}

/**
 * When kernels take well under half of a run, thread synchronisation and per-node overhead set the
 * latency: ratios near 1 are the regime's, not the methods'.
 */
function overheadNote(state: SearchState, finalists: SearchFinalistReport[]): string | null {
  const p = state.profile;
  const a = finalists.find((f) => f.latency)?.latency?.a;
  if (!p || !a) return null;
  const kernelMs = p.totalMs; // per run
  if (kernelMs >= 0.5 * a.p50Ms) return null;
  return `at batch ${state.goal.batchSize} with ${state.goal.threads || 'default'} thread(s) the original's kernels take ${kernelMs.toFixed(2)} ms of its ${a.p50Ms.toFixed(2)} ms run: run overhead, not compute, dominates, so compression changes latency little in this regime`;
}
