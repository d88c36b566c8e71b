// A goal-driven search: split the evaluation data (search part / held-out part), measure the
// original, build the space, let a strategy propose candidates within the budget, keep the best so
// far where the caller wants it, then re-time the frontier's finalists and judge them on the
// held-out part. The result is always a model: the best that meets the goal, or the closest one.
import { createHash } from 'node:crypto';
import { CanceledError, InvalidInputError, throwIfAborted } from '../errors.js';
import { gatherLabels, gatherRows, hashFeeds, sharedItems, splitIndices } from '../data/split.js';
import { evaluateModels } from '../eval/evaluate.js';
import { inputsForBatch } from '../measure/benchmark.js';
import { profileModel } from '../measure/profile.js';
import { Model } from '../onnx/ir.js';
import { decodeModel } from '../onnx/model-io.js';
import { repairOnImport } from '../onnx/import-repair.js';
import { verifyModel } from '../onnx/verify.js';
import { needsLabels } from '../pipeline/goal.js';
import { parseRecipe, type Recipe, type RecipeStep } from '../pipeline/recipe.js';
import { recipeTemplates } from '../pipeline/templates.js';
import { REFERENCE_KEEP } from '../pipeline/pipeline.js';
import type { ProfileReport } from '../report/schema.js';
import type { SearchReport, SearchTrialReport } from '../report/search.js';
import { itemsOf, sha256Of, sizeOf, type Feeds, type ModelSource } from '../runtime/ort.js';
import { StepCache } from './cache.js';
import { finalize, type SearchResult } from './finalize.js';
import { finalTimingSeconds, latencyOf, searchSection, type SearchProgress, type SearchState } from './state.js';
import { meetsBounds, objectiveScore } from './frontier.js';
import { autoSpace, describeTemplate, explicitSpace, pointKey, recipeOf, type Space } from './space.js';
import { SEARCH_STRATEGIES, type TrialOutcome } from './strategies.js';
import { runTrial, type TrialData } from './trial.js';

export interface SearchOptions {
  recipe: Recipe;
  /** Evaluation data: split into the search part and the held-out part. */
  samples: Feeds[];
  labels?: ArrayLike<number | bigint>;
  labelOutput?: string;
  /** The user's calibration data; without it, passes calibrate on the search part (never on held-out samples). */
  calibration?: Feeds[];
  signal?: AbortSignal;
  onProgress?: (p: SearchProgress) => void;
  /** A new best so far (the original first): keep it where the user will find it. */
  onBest?: (best: { model: Model; trial: SearchTrialReport; search: SearchReport }) => void | Promise<void>;
  /** Each model of the final frontier, with its trial (for --frontier). */
  onFrontierModel?: (trial: SearchTrialReport, model: Model) => void | Promise<void>;
  /** Every finished trial, as it finishes. */
  onTrial?: (trial: SearchTrialReport) => void | Promise<void>;
  /** Keep every step's output on disk here as well as in memory. */
  cacheDir?: string;
  inputName?: string;
  /** Clock for the budget (tests). */
  now?: () => number;
}

/** Consecutive proposals already measured after which a strategy counts as exhausted. */
const MAX_REPEATS = 200;

export async function runSearch(input: ModelSource, opts: SearchOptions): Promise<SearchResult> {
  const now = opts.now ?? Date.now;
  const started = now();
  const { recipe } = opts;
  const goal = recipe.goal!;
  const settings = recipe.search!;
  const budgetMs = settings.budget.minutes * 60_000;
  const deadline = started + budgetMs;
  const elapsed = () => now() - started;
  const progress = (p: Omit<SearchProgress, 'elapsedMs' | 'remainingMs' | 'percent' | 'maxTrials'>) =>
    opts.onProgress?.({ ...p, maxTrials: settings.budget.trials, elapsedMs: elapsed(), remainingMs: Math.max(0, deadline - now()), percent: Math.min(100, Math.round((elapsed() / budgetMs) * 1000) / 10) });
  progress({ phase: 'preparing', trial: 0, message: 'splitting the data and measuring the original' });

  const original = input instanceof Model ? input : decodeModel(input);
  repairOnImport(original);
  verifyModel(original, 'input model');
  if (!opts.samples?.length) throw new InvalidInputError('a goal is judged on data: give evaluation samples (--data), split into a search part and a held-out part');
  const isTask = needsLabels(goal.metric);
  if (isTask && !opts.labels) throw new InvalidInputError(`goal metric '${goal.metric}' is measured against labels: give --labels, or use a fidelity metric (agreement, sqnr)`);

  // the split: by sample, fixed seed; labels follow their samples
  const total = itemsOf(opts.samples);
  const split = splitIndices(total, settings.heldOutFraction, settings.seed);
  const batchSize = recipe.evaluate.batchSize;
  const search = gatherRows(opts.samples, split.search, batchSize);
  const heldOut = gatherRows(opts.samples, split.heldOut, batchSize);
  const searchLabels = opts.labels ? gatherLabels(opts.labels, split.search) : undefined;
  const heldOutLabels = opts.labels ? gatherLabels(opts.labels, split.heldOut) : undefined;

  // calibration never reads a held-out sample unless the user allows it, and then the report says so
  const overlap = opts.calibration ? sharedItems(opts.calibration, heldOut) : 0;
  if (overlap > 0 && !settings.calibrateOnEvaluation) {
    throw new InvalidInputError(
      `${overlap} calibration samples are also evaluation samples the goal is judged on: calibrate on other data, or set search.calibrateOnEvaluation to allow it (the report then flags it)`,
    );
  }
  const calibration = opts.calibration ?? search;
  const calibrationInfo: SearchReport['data']['calibration'] = {
    source: opts.calibration ? 'given' : 'search-part',
    samples: itemsOf(calibration),
    overlapsHeldOut: overlap,
    ...(overlap > 0 ? { flagged: `calibration shares ${overlap} samples with the held-out part (search.calibrateOnEvaluation): the held-out verdict is optimistic` } : {}),
  };

  const originalSource: ModelSource = input instanceof Model ? input : input;
  const originalSize = sizeOf(originalSource);
  const dataKey = createHash('sha256')
    .update(hashFeeds(calibration))
    .update(hashFeeds(search))
    .update(searchLabels ? Buffer.from(JSON.stringify(Array.from(searchLabels, Number))) : '')
    .digest('hex');
  // the original once on the search part: its outputs are every candidate's reference
  const refOn = async (batches: Feeds[], labels?: ArrayLike<number | bigint>) =>
    evaluateModels(originalSource, originalSource, batches, {
      keepReference: REFERENCE_KEEP,
      ...(labels && isTask ? { labels, metrics: [goal.metric as never] } : {}),
      ...(opts.labelOutput ? { labelOutput: opts.labelOutput } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  const searchRef = await refOn(search, searchLabels);
  // the held-out part is not run before the search ends (test/search.test.ts watches every feed)
  const heldOutEvalMs = ((searchRef.elapsedMs ?? 0) * itemsOf(heldOut)) / Math.max(1, itemsOf(search));

  let profile: ProfileReport | undefined;
  if (settings.space === 'auto') {
    progress({ phase: 'preparing', trial: 0, message: `profiling the original at batch ${goal.batchSize}` });
    profile = await profileModel(original, inputsForBatch(original, goal.batchSize, { data: search[0]! }), { intraOpThreads: goal.threads, warmup: 3, runs: 10 }).catch(() => undefined);
  }
  const space: Space =
    settings.space === 'auto'
      ? autoSpace(original, { goal, canCalibrate: true, hasLabels: !!opts.labels, ...(profile ? { profile } : {}) })
      : explicitSpace(settings.space);

  const cache = new StepCache({ ...(opts.cacheDir ? { dir: opts.cacheDir } : {}) });
  const probeItems = Math.max(1, Math.round(itemsOf(search) * settings.probeFraction));
  let probeBatches = 0;
  for (let n = 0; probeBatches < search.length && n < probeItems; probeBatches++) n += itemsOf([search[probeBatches]!]);
  const data: TrialData = {
    goal,
    original: originalSource,
    originalSize,
    start: original,
    startKey: sha256Of(originalSource),
    dataKey,
    calibration,
    calibrationIsUsers: !!opts.calibration,
    search,
    ...(searchLabels ? { searchLabels } : {}),
    ...(opts.labelOutput ? { labelOutput: opts.labelOutput } : {}),
    ...(searchRef.referenceOutputs ? { searchReference: searchRef.referenceOutputs } : {}),
    probeBatches,
    timingSeconds: Math.min(10, Math.max(2, (budgetMs / 1000) * 0.004)),
    cache,
  };

  const state: SearchState = {
    goal,
    settings,
    space,
    data,
    trials: [],
    fixed: recipe.steps,
    heldOut,
    ...(heldOutLabels ? { heldOutLabels } : {}),
    ...(profile ? { profile } : {}),
    started,
    stoppedBy: 'trials',
    calibration: calibrationInfo,
    split: { search: itemsOf(search), heldOut: itemsOf(heldOut), probe: itemsOf(search.slice(0, probeBatches)) },
    recipe,
    ...(opts.inputName ? { inputName: opts.inputName } : {}),
  };
  let best: SearchTrialReport | null = null;
  const scoreOf = (t: SearchTrialReport) => (t.status === 'meets' ? objectiveScore(goal, latencyOf(t), t.sizeRatio ?? 1) : Infinity);
  // strategies bisect on accuracy: a candidate that holds it but misses a speed or size bound is not "too aggressive"
  const outcomeOf = (t: SearchTrialReport): TrialOutcome => {
    const accurate = t.status === 'meets' || t.status === 'out-of-bounds';
    return { meets: accurate, score: accurate ? objectiveScore(goal, latencyOf(t), t.sizeRatio ?? 1) : Infinity };
  };
  const record = async (t: SearchTrialReport, model: Model): Promise<void> => {
    state.trials.push(t);
    await opts.onTrial?.(t);
    if (t.status === 'meets' && (!best || scoreOf(t) < scoreOf(best))) {
      best = t;
      await opts.onBest?.({ model, trial: t, search: searchSection(state, best) });
    }
  };

  // trial 0: the start itself (the original, or the fixed steps' result)
  const measure = async (n: number, steps: RecipeStep[], signal?: AbortSignal, template?: string): Promise<SearchTrialReport> => {
    const chain = [...state.fixed, ...steps];
    const { model, stepStats: _s, ...rest } = await runTrial(data, chain, signal);
    void _s;
    const t: SearchTrialReport = { n, steps: chain, ...(template ? { template } : {}), ...rest, atMs: elapsed() };
    if (t.status === 'meets' && !meetsBounds(goal, latencyOf(t), t.sizeRatio ?? 1)) {
      t.status = 'out-of-bounds';
      t.reason = `meets the accuracy goal but not ${goal.minSpeedup !== undefined ? `minSpeedup ${goal.minSpeedup}` : ''}${goal.minSpeedup !== undefined && goal.maxSizeRatio !== undefined ? ' / ' : ''}${goal.maxSizeRatio !== undefined ? `maxSizeRatio ${goal.maxSizeRatio}` : ''}`;
    }
    await record(t, model ?? original);
    return t;
  };
  // the original's outputs may sit in a temp file: it goes whatever ends the search
  try {
    await measure(0, [], opts.signal);

    // the loop: the strategy proposes, the engine measures within the budget
    const strategy = SEARCH_STRATEGIES[settings.strategy];
    const gen = strategy.propose({ space, goal, seed: settings.seed });
    const seen = new Map<string, SearchTrialReport>([[pointKey(space, space.slots.map(() => null)), state.trials[0]!]]);
    let repeats = 0;
    let outcome: TrialOutcome | undefined;
    const trialMs: number[] = [];
    const tried = new Set<string>();
    /** One trial within the budget; null when the budget (trials, time) or a cancel ends the search. */
    const attempt = async (steps: RecipeStep[], template?: string): Promise<SearchTrialReport | null> => {
      const n = state.trials.length;
      const builtBefore = cache.stats.misses;
      if (n > settings.budget.trials) {
        state.stoppedBy = 'trials';
        return null;
      }
      // stop before a trial that would not finish before the finalists' share of the budget
      const reserve = finalistsReserveMs(state, heldOutEvalMs, budgetMs);
      const typical = trialMs.length ? median(trialMs) : 0;
      if (now() + typical > deadline - reserve) {
        state.stoppedBy = 'time';
        return null;
      }
      if (opts.signal?.aborted) {
        state.stoppedBy = 'canceled';
        return null;
      }
      progress({ phase: 'searching', trial: n, message: `${template ? `recipe ${template}: ` : ''}${steps.map((s) => describeTemplate(s as never)).join(' → ')}`, ...bestSummary(best) });
      // a trial that outlives the budget is cut short (the loop then ends on time)
      const cut = new AbortController();
      const timer = setTimeout(() => cut.abort(), Math.max(0, deadline - reserve - now() + 0.03 * budgetMs));
      const signal = opts.signal ? AbortSignal.any([opts.signal, cut.signal]) : cut.signal;
      try {
        const t = await measure(n, steps, signal, template);
        trialMs.push(t.durationMs);
        tried.add(JSON.stringify(steps));
        return t;
      } catch (err) {
        if (!(err instanceof CanceledError)) throw err;
        if (opts.signal?.aborted) {
          state.stoppedBy = 'canceled';
          return null;
        }
        state.trials.push({ n, steps: [...state.fixed, ...steps], status: 'failed', reason: 'cut short: the time budget ran out', built: cache.stats.misses - builtBefore, cached: 0, durationMs: 0, atMs: elapsed() });
        state.stoppedBy = 'time';
        return null;
      } finally {
        clearTimeout(timer);
      }
    };
    let exhausted = false;
    for (;;) {
      const next = outcome === undefined ? gen.next() : gen.next(outcome);
      if (next.done) {
        exhausted = true;
        break;
      }
      const key = pointKey(space, next.value);
      const prior = seen.get(key);
      if (prior) {
        outcome = outcomeOf(prior);
        if (++repeats > MAX_REPEATS) {
          exhausted = true;
          break;
        }
        continue;
      }
      repeats = 0;
      const t = await attempt(recipeOf(space, next.value));
      if (!t) break;
      seen.set(key, t);
      outcome = outcomeOf(t);
    }
    // budget left when the strategy is done: the shipped recipes that can run here, so the answer is
    // never worse than a documented one (a chain measured already is not measured again)
    if (exhausted) {
      state.stoppedBy = 'space-exhausted';
      for (const tpl of applicableTemplates()) {
        if (tried.has(JSON.stringify(tpl.steps))) continue;
        if (!(await attempt(tpl.steps, tpl.name))) break;
      }
    }
    if (state.stoppedBy === 'canceled') {
      // the best so far is already where onBest put it
      throw new CanceledError();
    }
    throwIfAborted(opts.signal);
    return await finalize(state, { ...opts, ...(opts.onFrontierModel ? { onFrontierModel: opts.onFrontierModel } : {}), progress: (p) => progress({ ...p, ...bestSummary(best) }), best: () => best, cacheStats: cache.stats });
  } finally {
    searchRef.referenceOutputs?.dispose();
  }
}

/**
 * The templates in recipes/ a search can try after its strategy: plain step lists with no goal of
 * their own (a search always has calibration data: the user's, or the search part).
 */
function applicableTemplates(): { name: string; steps: RecipeStep[] }[] {
  const out: { name: string; steps: RecipeStep[] }[] = [];
  for (const tpl of recipeTemplates()) {
    let recipe: Recipe;
    try {
      recipe = parseRecipe(tpl.recipe);
    } catch {
      continue; // a template this version cannot read is the templates test's concern, not a search's
    }
    if (recipe.goal || recipe.steps.length === 0) continue;
    out.push({ name: tpl.name, steps: recipe.steps });
  }
  return out;
}

/**
 * Time kept for the end: each likely finalist re-timed and evaluated on the held-out part, then the
 * report's pipeline run (the original and up to four steps on the held-out part, timed once each).
 */
function finalistsReserveMs(state: SearchState, heldOutEvalMs: number, budgetMs: number): number {
  const finalTiming = finalTimingSeconds(state.settings) * 1000;
  const likely = Math.max(1, Math.min(state.settings.finalists, state.trials.filter((t) => t.status === 'meets').length));
  const reportMs = heldOutEvalMs + 4 * (heldOutEvalMs + 2 * state.data.timingSeconds * 1000);
  return Math.min(0.3 * budgetMs, likely * (finalTiming * 1.5 + heldOutEvalMs) + reportMs);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function bestSummary(best: SearchTrialReport | null): Pick<SearchProgress, 'best'> {
  if (!best) return {};
  return {
    best: {
      trial: best.n,
      ...(best.value !== undefined ? { value: best.value } : {}),
      ...(best.loss !== undefined ? { loss: best.loss } : {}),
      ...(best.latency ? { latencyRatio: best.latency.ratio } : {}),
      ...(best.sizeRatio !== undefined ? { sizeRatio: best.sizeRatio } : {}),
    },
  };
}

