// How long to time a model: the benchmark's default settings scaled to a time budget from the
// measured single-run time, so a model at 4 s per inference is timed in about a minute per step,
// not an hour. Explicit settings always win; the plan says what it chose and why.
import type { TimingPlan } from '../report/schema.js';

export type { TimingPlan };

/** The settings a user gave; an absent field is the default's to choose. */
export interface TimingRequest {
  warmup?: number | undefined;
  runs?: number | undefined;
  rounds?: number | undefined;
  /** Given batch sizes are kept; default ones are dropped from the largest down when over budget. */
  batchSizes?: number[] | undefined;
  /** Timing per step (one side-by-side comparison over every batch size, or one model's benchmark). */
  budgetSeconds?: number | undefined;
}

export const DEFAULT_TIMING = { warmup: 10, runs: 32, rounds: 6, batchSizes: [1, 8, 16], budgetSeconds: 60 } as const;

/** The least a scaled plan goes down to: two A/B rounds of one warmup and one timed run each. */
export const MIN_TIMING = { rounds: 2, warmupPerRound: 1, runsPerRound: 1, warmup: 1, runs: 3 } as const;

// Side-by-side settings from best to least, then single-model settings; each costs about half the one before.
const COMPARE_LADDER: readonly [rounds: number, warmupPerRound: number, runsPerRound: number][] = [
  [6, 3, 6],
  [6, 2, 4],
  [6, 1, 3],
  [4, 1, 2],
  [4, 1, 1],
  [3, 1, 1],
  [MIN_TIMING.rounds, MIN_TIMING.warmupPerRound, MIN_TIMING.runsPerRound],
];
const SINGLE_LADDER: readonly [warmup: number, runs: number][] = [
  [10, 32],
  [5, 16],
  [3, 8],
  [2, 5],
  [MIN_TIMING.warmup, MIN_TIMING.runs],
];

/** Per-round settings a comparison uses for total warmup/runs over `rounds` (a fresh session needs a few warm runs). */
export function perRound(warmup: number, runs: number, rounds: number): { warmupPerRound: number; runsPerRound: number } {
  return { warmupPerRound: Math.max(3, Math.ceil(warmup / rounds)), runsPerRound: Math.max(1, Math.ceil(runs / rounds)) };
}

/** Runs of one model at batch 1 a comparison costs, per unit of batch size (both models). */
const compareCost = (rounds: number, w: number, r: number) => 2 * rounds * (w + r);

type RoundSettings = { rounds: number; warmupPerRound: number; runsPerRound: number };

/**
 * Whether a comparison loads each model once per round and times every batch size with that session,
 * instead of once per round and batch size: when the load (measured on the first session) takes longer
 * than the runs it would serve at the first batch size. Sessions per batch size would then spend most
 * of a step loading — the 2.2 GB model of issue 17 loads in seconds and runs in a fraction of one, and
 * reloaded it about 14 times — while one load per round cuts the loads by the number of batch sizes.
 * The pairing stays close: the time between a round's A and B runs is mostly the load either way, and
 * at most doubles. Still one live session at a time (two steal CPU from each other on 2 cores, and
 * past 2 GB two would hold the weights twice), and rounds still alternate A/B.
 */
export function sessionPerRound(loadMs: number | null, singleRunMs: number | null, p: RoundSettings, batchSizes: readonly number[]): boolean {
  if (loadMs === null || singleRunMs === null || batchSizes.length < 2) return false;
  return loadMs > (p.warmupPerRound + p.runsPerRound) * singleRunMs * batchSizes[0]!;
}

/**
 * The timing plan for a model whose single run at batch 1 takes `singleRunMs` and whose session took
 * `loadMs` to create (pure: the rule, testable without a model). A run at batch b is taken to cost
 * b × singleRunMs, which over-estimates for small models and is about right for large ones, the ones
 * the budget is for; every session a comparison creates is taken to cost loadMs.
 */
export function planTiming(singleRunMs: number | null, req: TimingRequest = {}, loadMs: number | null = null): TimingPlan {
  const budgetSeconds = req.budgetSeconds ?? DEFAULT_TIMING.budgetSeconds;
  const explicit = req.warmup !== undefined || req.runs !== undefined || req.rounds !== undefined;
  const warmup = req.warmup ?? DEFAULT_TIMING.warmup;
  const runs = req.runs ?? DEFAULT_TIMING.runs;
  const rounds = Math.max(MIN_TIMING.rounds, req.rounds ?? DEFAULT_TIMING.rounds);
  const given = { warmup, runs, rounds, ...perRound(warmup, runs, rounds) };
  let batchSizes = req.batchSizes ?? [...DEFAULT_TIMING.batchSizes];
  const estimate = (p: RoundSettings, sizes: number[]) => {
    if (singleRunMs === null) return null;
    const loads = 2 * p.rounds * (sessionPerRound(loadMs, singleRunMs, p, sizes) ? 1 : sizes.length);
    return (compareCost(p.rounds, p.warmupPerRound, p.runsPerRound) * sizes.reduce((s, b) => s + b, 0) * singleRunMs + loads * (loadMs ?? 0)) / 1000;
  };
  const plan = (p: Omit<TimingPlan, 'batchSizes' | 'singleRunMs' | 'loadMs' | 'sessionPerRound' | 'budgetSeconds' | 'estimatedSeconds'>): TimingPlan => ({
    ...p,
    batchSizes,
    singleRunMs,
    loadMs,
    sessionPerRound: sessionPerRound(loadMs, singleRunMs, p, batchSizes),
    budgetSeconds,
    estimatedSeconds: estimate(p, batchSizes),
  });
  if (singleRunMs === null || explicit) {
    return plan({ ...given, scaled: false, note: explicit ? 'settings as given' : 'default settings' });
  }
  const fits = (p: RoundSettings, sizes: number[]) => estimate(p, sizes)! <= budgetSeconds;
  // the largest default batch sizes go first when even the least settings do not fit; the loads no
  // setting can avoid (one per model in each of the least rounds) do not cost batch sizes
  const least = { rounds: MIN_TIMING.rounds, warmupPerRound: MIN_TIMING.warmupPerRound, runsPerRound: MIN_TIMING.runsPerRound };
  const unavoidableLoads = (2 * MIN_TIMING.rounds * (loadMs ?? 0)) / 1000;
  const dropped: number[] = [];
  if (req.batchSizes === undefined) {
    while (batchSizes.length > 1 && estimate(least, batchSizes)! - unavoidableLoads > budgetSeconds) dropped.unshift(batchSizes.pop()!);
  }
  const step = COMPARE_LADDER.findIndex(([r, w, n]) => fits({ rounds: r, warmupPerRound: w, runsPerRound: n }, batchSizes));
  const at = step === -1 ? COMPARE_LADDER.length - 1 : step;
  if (at === 0 && dropped.length === 0) return plan({ ...given, scaled: false, note: 'default settings (within the budget)' });
  const [r, w, n] = COMPARE_LADDER[at]!;
  const [sw, sn] = SINGLE_LADDER[Math.min(at, SINGLE_LADDER.length - 1)]!;
  const why = [
    `scaled to a ${budgetSeconds} s budget per step: one run at batch 1 takes ${formatMs(singleRunMs)}${loadMs !== null ? `, a session loads in ${formatMs(loadMs)}` : ''}`,
    ...(dropped.length ? [`batch sizes ${dropped.join(', ')} dropped`] : []),
    ...(step === -1 ? ['even the least settings take longer than the budget'] : []),
  ];
  return plan({ warmup: sw, runs: sn, rounds: r, warmupPerRound: w, runsPerRound: n, scaled: true, note: why.join('; ') });
}

function formatMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
}
