// The one report schema, shared by the CLI (`compress --report`, `bench`, `eval`) and the service.
// Everything in it is measured; nothing is estimated except `macs` (counted from shapes).
import type { Fidelity } from '../metrics/fidelity.js';
import type { ImportNote } from '../onnx/import-repair.js';
import type { Environment } from './environment.js';

export type { ImportNote };

/** Latency of one model at one batch size. */
export interface LatencyStats {
  batch: number;
  warmup: number;
  runs: number;
  meanMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  minMs: number;
  maxMs: number;
  stdMs: number;
  /** items per second at the median latency: batch / p50. */
  throughput: number;
}

/** The settings a benchmark ran with: stated in the report. */
export interface TimingPlan {
  /** Warmup runs per batch size of a single-model benchmark, and its timed runs. */
  warmup: number;
  runs: number;
  /** Side-by-side comparison: A/B rounds per batch size, each with a fresh session warmed up and timed. */
  rounds: number;
  warmupPerRound: number;
  runsPerRound: number;
  batchSizes: number[];
  /** True when the defaults were cut down to fit the budget. */
  scaled: boolean;
  /** The measured time of one run at batch 1 (ms); null when nothing was scaled and nothing measured. */
  singleRunMs: number | null;
  /** The measured time to create that run's session (ms); null when nothing was measured. */
  loadMs: number | null;
  /** The machine's 1-minute load average when that run was measured (other work on the cores slows every run). */
  loadAverage?: number;
  /**
   * True when a session of the comparison is loaded once per round and times every batch size (a load
   * costs more than the runs it serves at one batch size); false: one session per round and batch size.
   */
  sessionPerRound: boolean;
  budgetSeconds: number;
  /** Estimated timing of one comparison step with these settings (s), from singleRunMs × batch and the loads at loadMs. */
  estimatedSeconds: number | null;
  note: string;
}

export interface BenchmarkResult {
  sizeBytes: number;
  params: number;
  /** Multiply-accumulates of Conv/ConvTranspose/Gemm/MatMul at batch 1 (FLOPs ≈ 2 × MACs). */
  macs: number | null;
  intraOpThreads: number;
  /** The batch sizes measured; a model with a fixed batch dim is measured at that size only. */
  batchSizes: number[];
  fixedBatch: number | null;
  inputs: { name: string; dtype: string; shape: number[] }[];
  latency: LatencyStats[];
  /** The settings it ran with, and whether they were scaled to the time budget. */
  timing: TimingPlan;
}

/** b/a latency at one batch size, measured side by side (rounds alternate A/B, one session alive at a time). */
export interface LatencyRatio {
  batch: number;
  /** Median of per-round ratios b/a. < 1 means b is faster. */
  ratio: number;
  /** Spread of the per-round ratios (10th and 90th percentile). */
  low: number;
  high: number;
  rounds: number;
  /** 'faster' / 'slower' only when the whole spread is on one side of 1; otherwise 'no gain'. */
  verdict: 'faster' | 'slower' | 'no gain';
  a: LatencyStats;
  b: LatencyStats;
}

export interface Comparison {
  intraOpThreads: number;
  ratios: LatencyRatio[];
  timing: TimingPlan;
}

export interface TaskMetrics {
  /** e.g. { top1: 0.927, top5: 0.998 } or { mae: 0.17, obo: 0.32 }. */
  [metric: string]: number;
}

export interface EvaluationResult {
  samples: number;
  /** Batches evaluated, and the time they took (ms). */
  batches?: number;
  elapsedMs?: number;
  /** True when the time budget ran out before the last batch. */
  stoppedByBudget?: boolean;
  source: 'data' | 'synthetic';
  /** Candidate vs reference, per output. */
  fidelity: Record<string, Fidelity & { top1Agreement?: number; sequenceAgreement?: number }>;
  /** Candidate (and reference) against labels, when labels were given. */
  task?: { candidate: TaskMetrics; reference: TaskMetrics; output: string };
}

export interface ProfileEntry {
  name: string;
  ms: number;
  /** Share of the total kernel time, 0..1. */
  share: number;
  count?: number;
  opType?: string;
  params?: number;
  paramShare?: number;
}

export interface ProfileReport {
  runs: number;
  batch: number;
  totalMs: number;
  depth: number;
  byNode: ProfileEntry[];
  byOpType: ProfileEntry[];
  /** Blocks by node-name prefix: latency share next to parameter share. */
  byBlock: ProfileEntry[];
}

/** Size, speed and accuracy of the model at one stage of a compression run. */
export interface StageMetrics {
  sizeBytes: number;
  params: number;
  nodes: number;
  macs: number | null;
  /** Latency of this stage vs the baseline model, measured side by side. Absent when benchmarking was off. */
  latency?: LatencyRatio[];
  /** Outputs vs the baseline model's, on the sample inputs. */
  fidelity: Record<string, Fidelity & { top1Agreement?: number; sequenceAgreement?: number }>;
  task?: TaskMetrics;
}

/** One statistic of a step. */
export type StatValue = number | string | boolean;

/** Statistics of some pass: field → value. Which fields, and of which type, each pass declares in its `stats` schema. */
export type StatFields = { [key: string]: StatValue | undefined };

export interface NodeChange {
  node: string;
  opType: string;
  detail?: string;
}

export interface NodeSkip {
  node: string;
  opType: string;
  reason: string;
}

/** What a pass did in one step, as its ChangeLog writes it. */
export interface StepChanges<Stats extends StatFields = StatFields> {
  rewritten: number;
  skipped: NodeSkip[];
  added: number;
  /** The fields of the pass's `stats` schema that applied to this model. */
  stats: Stats;
  warnings: string[];
  rewrittenNodes: NodeChange[];
}

/** Statistics by pass name. The passes' own is `PassStats` (src/passes/index.ts, derived from the table of passes). */
export type StatsByPass = { [pass: string]: StatFields };

/** A step that ran pass `Pass`, which declares the statistics `Stats`. */
export interface PassStepReport<Pass extends string = string, Stats extends StatFields = StatFields> extends StageMetrics {
  index: number;
  pass: Pass;
  config: Record<string, unknown>;
  durationMs: number;
  changes: StepChanges<Stats>;
}

/**
 * A step of any pass in `ByPass`, told apart by `pass`: with `PassStats`, `changes.stats` has exactly the fields that
 * pass declares. The default (any pass, any statistics) is for reports read back, which older versions wrote.
 */
export type StepReport<ByPass extends StatsByPass = StatsByPass> = { [P in keyof ByPass & string]: PassStepReport<P, ByPass[P]> }[keyof ByPass & string];

/** `Step`: the report's steps; `StepReport<PassStats>` for reports the pipeline writes (`PipelineReport`). */
export interface CompressionReport<Step extends PassStepReport = StepReport> {
  schemaVersion: 1;
  kind: 'compress';
  createdAt: string;
  recipe: unknown;
  input: { sha256: string; name?: string };
  /** The samples fidelity was measured on; `given` and `budgetSeconds` when a time budget cut them. Same for calibration. */
  samples: {
    source: 'data' | 'synthetic';
    batches: number;
    items: number;
    given?: { batches: number; items: number };
    budgetSeconds?: number;
    labels: boolean;
    calibration?: { batches: number; items: number; given?: { batches: number; items: number }; budgetSeconds?: number };
  };
  /** The benchmark's settings (absent when benchmarking was off). */
  timing?: TimingPlan;
  baseline: StageMetrics & { latencyAbsolute?: LatencyStats[] };
  steps: Step[];
  final: StageMetrics & { sha256: string; sizeRatio: number; paramsRatio: number };
  profile?: { baseline: ProfileReport; final?: ProfileReport };
  environment: Environment;
  /** What import changed in the input model so the passes could work on it (absent: nothing). */
  importNotes?: ImportNote[];
  warnings: string[];
  durationMs: number;
}
