// The `search` section of a report: the goal, every trial, the frontier and the held-out verdict.
import type { CompressionReport, LatencyRatio } from './schema.js';

export interface SearchGoalReport {
  metric: string;
  maxDrop?: number;
  min?: number;
  objective: 'latency' | 'size' | 'balanced';
  batchSize: number;
  threads: number;
  minSpeedup?: number;
  maxSizeRatio?: number;
}

export interface SearchTrialReport {
  /** 0 is the original model (no steps); trials count from 1. */
  n: number;
  steps: { pass: string; [key: string]: unknown }[];
  /** The shipped recipe (recipes/) this trial ran as it is, tried after the strategy. */
  template?: string;
  status: 'meets' | 'misses' | 'stopped-early' | 'failed' | 'out-of-bounds';
  /** Why it misses, stopped or failed. */
  reason?: string;
  /** The goal's metric on the search part (or on the probe, when it stopped there), and the original's. */
  value?: number;
  reference?: number;
  /** Loss against the original in the metric's units (sqnr and min goals: the shortfall from min, plus 0). */
  loss?: number;
  samples?: number;
  probe?: { samples: number; value: number; margin: number };
  /** b/a against the original at the goal's batch size and threads (only for candidates that meet the accuracy goal). */
  latency?: LatencyRatio;
  sizeRatio?: number;
  sizeBytes?: number;
  /** Steps built for this trial, and steps the cache already had. */
  built: number;
  cached: number;
  durationMs: number;
  /** Elapsed search time when the trial finished. */
  atMs: number;
}

export interface SearchFinalistReport {
  trial: number;
  /** Re-timed with more rounds. */
  latency?: LatencyRatio;
  heldOut: { value: number; reference: number; loss: number; samples: number; meets: boolean };
}

export interface SearchReport {
  goal: SearchGoalReport;
  strategy: string;
  budget: { minutes: number; trials: number };
  /** Why the trial loop ended. */
  stoppedBy: 'trials' | 'time' | 'space-exhausted' | 'canceled';
  elapsedMs: number;
  space: { slots: { name: string; optional: boolean; alternatives: string[] }[]; notes: string[] };
  data: {
    searchSamples: number;
    heldOutSamples: number;
    probeSamples: number;
    seed: number;
    /** Where calibration came from; `flagged` when it overlaps the judged samples by the user's choice. */
    calibration: { source: 'given' | 'search-part'; samples: number; overlapsHeldOut: number; flagged?: string };
  };
  trials: SearchTrialReport[];
  /** Trial numbers on the Pareto frontier (loss, latency, size) among measured candidates that meet the goal on the search part. */
  frontier: number[];
  finalists: SearchFinalistReport[];
  best: {
    trial: number;
    steps: { pass: string; [key: string]: unknown }[];
    /** The goal held on the held-out part (accuracy and bounds). */
    goalMet: boolean;
    /** Why not, or what was kept instead. */
    reason?: string;
    /** The loss predicted on the search part and measured on the held-out part. */
    searchLoss?: number;
    heldOutLoss?: number;
  };
  cache: { hits: number; misses: number };
  /** Run overhead rather than compute dominates the original's latency in this regime: ratios near 1 are expected. */
  overheadNote?: string;
}

/** b/a latency of a trial: 1 for the original itself (the reference), else what was timed (nothing for the untimed). */
export function latencyOf(t: SearchTrialReport): number | undefined {
  return t.steps.length === 0 ? 1 : t.latency?.ratio;
}

/** A report that may carry a search (a goal run): the rest of it measures the chosen recipe on the held-out part. */
export type ReportWithSearch = CompressionReport & { search?: SearchReport };
