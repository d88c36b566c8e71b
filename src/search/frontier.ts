// The goal's arithmetic: the loss of a metric against the original, whether a candidate meets the
// goal, its objective score, and the Pareto frontier of measured candidates. Pure functions.
import { HIGHER_IS_BETTER } from '../metrics/task.js';
import type { Goal } from '../pipeline/goal.js';

/** How much worse `value` is than `reference` in the metric's own units (negative: better). */
export function lossOf(goal: Goal, value: number, reference: number): number {
  return HIGHER_IS_BETTER.has(goal.metric) ? reference - value : value - reference;
}

/** The accuracy side of the goal: the loss within maxDrop, or the value above min. */
export function meetsAccuracy(goal: Goal, value: number, reference: number): boolean {
  if (!Number.isFinite(value) && !(goal.metric === 'sqnr' && value === Infinity)) return false;
  if (goal.min !== undefined) return value >= goal.min;
  // a hair of slack for float noise in metrics computed as ratios
  return lossOf(goal, value, reference) <= (goal.maxDrop ?? 0) + 1e-9;
}

/** How far a candidate is from the accuracy goal (≤ 0: met); ranks the closest when none meets. */
export function shortfall(goal: Goal, value: number, reference: number): number {
  if (goal.min !== undefined) return goal.min - value;
  return lossOf(goal, value, reference) - (goal.maxDrop ?? 0);
}

/** The speed and size side of the goal: `minSpeedup` and `maxSizeRatio`, when given. */
export function meetsBounds(goal: Goal, latencyRatio: number | undefined, sizeRatio: number): boolean {
  if (goal.maxSizeRatio !== undefined && sizeRatio > goal.maxSizeRatio) return false;
  if (goal.minSpeedup !== undefined && (latencyRatio === undefined || 1 / latencyRatio < goal.minSpeedup)) return false;
  return true;
}

/** What the search minimizes: the latency ratio, the size ratio, or their geometric mean. */
export function objectiveScore(goal: Goal, latencyRatio: number | undefined, sizeRatio: number): number {
  if (goal.objective === 'size') return sizeRatio;
  if (latencyRatio === undefined) return Infinity;
  return goal.objective === 'latency' ? latencyRatio : Math.sqrt(latencyRatio * sizeRatio);
}

export interface FrontierPoint {
  id: number;
  loss: number;
  latencyRatio: number;
  sizeRatio: number;
}

/** a is at least as good as b on every axis and better on one. */
export function dominates(a: FrontierPoint, b: FrontierPoint): boolean {
  const le = a.loss <= b.loss && a.latencyRatio <= b.latencyRatio && a.sizeRatio <= b.sizeRatio;
  const lt = a.loss < b.loss || a.latencyRatio < b.latencyRatio || a.sizeRatio < b.sizeRatio;
  return le && lt;
}

/** The points no other point dominates (ties on every axis keep the first). */
export function paretoFrontier<P extends FrontierPoint>(points: readonly P[]): P[] {
  const out: P[] = [];
  points.forEach((p, i) => {
    const beaten = points.some((q, j) => dominates(q, p) || (j < i && q.loss === p.loss && q.latencyRatio === p.latencyRatio && q.sizeRatio === p.sizeRatio));
    if (!beaten) out.push(p);
  });
  return out;
}

/**
 * A margin for an early stop on a probe of `n` samples: a paired difference of proportions has a
 * standard error of about sqrt(discordant share / n); two of them plus one sample is "clearly off".
 * Metrics that are not proportions get twice the allowed drop.
 */
export function probeMargin(goal: Goal, n: number, disagreement: number | undefined): number {
  const proportion = goal.metric === 'top1' || goal.metric === 'top5' || goal.metric === 'agreement' || goal.metric === 'obo';
  if (proportion) return 2 * Math.sqrt(Math.max(disagreement ?? 0.25, 1 / n) / n) + 1 / n;
  if (goal.metric === 'sqnr') return 3; // dB
  return goal.maxDrop ?? 0;
}
