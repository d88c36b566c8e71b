// What a running search knows, shared by the trial loop (engine.ts) and its end (finalize.ts), and the
// report section built from it.
import type { Goal, SearchSettings } from '../pipeline/goal.js';
import type { Recipe, RecipeStep } from '../pipeline/recipe.js';
import type { ProfileReport } from '../report/schema.js';
import type { SearchReport, SearchTrialReport } from '../report/search.js';
import type { Feeds } from '../runtime/ort.js';
import { describeTemplate, type Space } from './space.js';
import type { TrialData } from './trial.js';

export interface SearchProgress {
  phase: 'preparing' | 'searching' | 'finalists' | 'report';
  trial: number;
  maxTrials: number;
  elapsedMs: number;
  remainingMs: number;
  /** 0..100 of the time budget. */
  percent: number;
  best?: { trial: number; value?: number; loss?: number; latencyRatio?: number; sizeRatio?: number };
  message?: string;
}

export interface SearchState {
  goal: Goal;
  settings: SearchSettings;
  space: Space;
  data: TrialData;
  trials: SearchTrialReport[];
  /** The recipe's fixed steps: every candidate starts with them. */
  fixed: RecipeStep[];
  heldOut: Feeds[];
  heldOutLabels?: ArrayLike<number | bigint>;
  profile?: ProfileReport;
  started: number;
  stoppedBy: SearchReport['stoppedBy'];
  calibration: SearchReport['data']['calibration'];
  split: { search: number; heldOut: number; probe: number };
  recipe: Recipe;
  inputName?: string;
}

/** Seconds of side-by-side timing for each finalist: more rounds than a trial gets. */
export function finalTimingSeconds(settings: SearchSettings): number {
  return Math.min(30, Math.max(5, settings.budget.minutes * 60 * 0.02));
}

export { latencyOf } from '../report/search.js';

/** The search section as it stands (a best-so-far report, or the final one with finalists filled in). */
export function searchSection(state: SearchState, best: SearchTrialReport, extra: Partial<SearchReport> = {}): SearchReport {
  return {
    goal: state.goal,
    strategy: state.settings.strategy,
    budget: state.settings.budget,
    stoppedBy: state.stoppedBy,
    elapsedMs: Date.now() - state.started,
    space: {
      slots: state.space.slots.map((s) => ({ name: s.name, optional: s.optional, alternatives: s.alternatives.map(describeTemplate) })),
      notes: state.space.notes,
    },
    data: { searchSamples: state.split.search, heldOutSamples: state.split.heldOut, probeSamples: state.split.probe, seed: state.settings.seed, calibration: state.calibration },
    trials: state.trials,
    frontier: [],
    finalists: [],
    best: { trial: best.n, steps: best.steps, goalMet: false, reason: 'the search is still running: this is the best so far on the search part, not yet judged on the held-out part', ...(best.loss !== undefined ? { searchLoss: best.loss } : {}) },
    cache: { hits: state.data.cache.stats.hits, misses: state.data.cache.stats.misses },
    ...extra,
  };
}
