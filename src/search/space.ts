// What a search may try: slots in a fixed order (prune → factorize → quantize), each either left out
// (optional slots) or filled by one of its alternatives, whose knobs take values from a range or a
// list. A point of the space is a choice per slot; its recipe is the concrete steps.
import { instantiateStep, knobsOf, type Goal, type Knob, type SpaceStep } from '../pipeline/goal.js';
import type { RecipeStep } from '../pipeline/recipe.js';
import type { Model } from '../onnx/ir.js';
import { getConstant } from '../onnx/constants.js';
import { tensorDims } from '../onnx/tensor-data.js';
import { weightLayerOf } from '../onnx/weight-layers.js';
import type { ProfileReport } from '../report/schema.js';

export interface Slot {
  /** A short name for reports: "prune", "factorize", "quantize" or the pass of an explicit template. */
  name: string;
  optional: boolean;
  alternatives: SpaceStep[];
}

/** Per slot: null when left out, else the alternative and a value for each of its knobs. */
export type Point = ({ alternative: number; picks: Record<string, unknown> } | null)[];

export interface Space {
  slots: Slot[];
  /** Why the space is what it is (auto spaces: which passes apply, and the profile shares behind it). */
  notes: string[];
}

/**
 * Which way a numeric knob makes a pass more aggressive (smaller, faster, less accurate): the
 * search bisects these, assuming accuracy falls monotonically as they move that way.
 */
export const AGGRESSIVE_DIRECTION: Record<string, Record<string, 'up' | 'down'>> = {
  'prune.structured': { ratio: 'up' },
  'prune.magnitude': { sparsity: 'up' },
  'factorize.tucker': { rank: 'down' },
  'factorize.svd': { rank: 'down' },
  'factorize.cp': { rank: 'down' },
};

/** A knob value at aggressiveness a ∈ [0, 1] (0 = mildest end of its range, 1 = most aggressive). */
export function knobAt(pass: string, key: string, knob: Extract<Knob, { kind: 'range' }>, a: number): number {
  const up = (AGGRESSIVE_DIRECTION[pass]?.[key] ?? 'up') === 'up';
  const t = Math.min(1, Math.max(0, a));
  const v = up ? knob.lo + (knob.hi - knob.lo) * t : knob.hi - (knob.hi - knob.lo) * t;
  return Math.round(v * 1000) / 1000;
}

/** The aggressiveness of a value of a range knob (the inverse of knobAt). */
export function aggressivenessOf(pass: string, key: string, knob: Extract<Knob, { kind: 'range' }>, value: number): number {
  if (knob.hi === knob.lo) return 1;
  const up = (AGGRESSIVE_DIRECTION[pass]?.[key] ?? 'up') === 'up';
  const t = (value - knob.lo) / (knob.hi - knob.lo);
  return up ? t : 1 - t;
}

export function recipeOf(space: Space, point: Point): RecipeStep[] {
  const steps: RecipeStep[] = [];
  point.forEach((p, i) => {
    if (p) steps.push(instantiateStep(space.slots[i]!.alternatives[p.alternative]!, p.picks));
  });
  return steps;
}

/** A stable text for a point (its recipe): the trial table's identity of a candidate. */
export function pointKey(space: Space, point: Point): string {
  return JSON.stringify(recipeOf(space, point));
}

/** A user's explicit space: one slot per template, in the given order. */
export function explicitSpace(templates: SpaceStep[]): Space {
  return {
    slots: templates.map((t) => ({ name: t.pass, optional: t.optional === true, alternatives: [t] })),
    notes: ['explicit space from the recipe'],
  };
}

/** Share of the profiled time spent in these op types (0..1); null without a profile. */
function timeShare(profile: ProfileReport | undefined, ops: string[]): number | null {
  if (!profile || profile.totalMs <= 0) return null;
  const ms = profile.byOpType.filter((e) => ops.some((o) => e.name === o || e.name.startsWith(`${o} `))).reduce((s, e) => s + e.ms, 0);
  return ms / profile.totalMs;
}

/** Below this share of the run time a family is not worth its trials. */
const MIN_TIME_SHARE = 0.1;

export interface AutoSpaceInputs {
  goal: Goal;
  /** The user gave calibration data (or the search part may be used): static quantization and recovery can run. */
  canCalibrate: boolean;
  hasLabels: boolean;
  /** The original profiled at the goal's batch size and threads. */
  profile?: ProfileReport;
}

/**
 * The space built from the model itself: structured pruning and Tucker when convolutions take a
 * real share of the time, SVD for large MatMul/Gemm, then one quantization slot whose alternatives
 * are the variants that apply (static with each calibrator, static with sensitivity exclusion,
 * dynamic, fp16, int4 weights for size).
 */
export function autoSpace(model: Model, inputs: AutoSpaceInputs): Space {
  const notes: string[] = [];
  let convs = 0;
  let spatialConvs = 0;
  let matmuls = 0;
  for (const node of model.graph.nodes) {
    const layer = weightLayerOf(node);
    if (!layer) continue;
    if (node.opType === 'Conv') {
      convs++;
      // the kernel's dims from the weight tensor itself (an initializer's value carries no declared shape)
      const w = getConstant(layer.weight);
      const dims = w ? tensorDims(w) : [];
      if (dims.length === 4 && dims.slice(2).some((d) => d > 1)) spatialConvs++;
    } else if (node.opType === 'MatMul' || node.opType === 'Gemm') matmuls++;
  }
  const convShare = timeShare(inputs.profile, ['Conv', 'FusedConv']);
  const mmShare = timeShare(inputs.profile, ['MatMul', 'Gemm', 'FusedMatMul', 'FusedGemm']);
  const pct = (x: number | null) => (x === null ? 'unprofiled' : `${(x * 100).toFixed(0)}% of the time`);
  notes.push(`profile at batch ${inputs.goal.batchSize}, ${inputs.goal.threads || 'default'} thread(s): Conv ${pct(convShare)}, MatMul/Gemm ${pct(mmShare)}`);
  const slots: Slot[] = [];
  const worth = (share: number | null) => share === null || share >= MIN_TIME_SHARE || inputs.goal.objective !== 'latency';
  const speedBatch = inputs.goal.batchSize;
  if (convs > 0 && worth(convShare) && inputs.canCalibrate) {
    slots.push({ name: 'prune', optional: true, alternatives: [{ pass: 'prune.structured', ratio: { range: [0.05, 0.6] }, scope: 'global', importance: 'l2' }] });
    notes.push(`prune.structured: ${convs} Conv layers`);
  } else if (convs > 0) notes.push(`prune.structured left out: ${!inputs.canCalibrate ? 'no calibration data for the recovery' : `Conv is ${pct(convShare)}`}`);
  if (spatialConvs > 0 && worth(convShare)) {
    slots.push({
      name: 'factorize',
      optional: true,
      alternatives: [{ pass: 'factorize.tucker', rank: { range: [0.15, 0.9] }, refine: inputs.canCalibrate, requireSpeedup: inputs.goal.objective !== 'size', speedBatch }],
    });
    notes.push(`factorize.tucker: ${spatialConvs} Conv layers with spatial kernels`);
  } else if (matmuls > 0 && worth(mmShare)) {
    slots.push({
      name: 'factorize',
      optional: true,
      alternatives: [{ pass: 'factorize.svd', rank: { range: [0.1, 0.9] }, opTypes: ['MatMul', 'Gemm'], refine: inputs.canCalibrate, requireSpeedup: inputs.goal.objective !== 'size', speedBatch }],
    });
    notes.push(`factorize.svd: ${matmuls} MatMul/Gemm layers`);
  }
  const quant: SpaceStep[] = [];
  if (inputs.canCalibrate) {
    quant.push({ pass: 'quantize.static', calibrationMethod: { choices: ['percentile', 'entropy', 'minmax'] } });
    const target = sensitivityTarget(inputs.goal, inputs.hasLabels);
    if (target) quant.push({ pass: 'quantize.static', calibrationMethod: 'percentile', sensitivity: target });
  }
  if (matmuls > 0) quant.push({ pass: 'quantize.dynamic' });
  quant.push({ pass: 'convert.fp16' });
  if (matmuls > 0 && inputs.goal.objective !== 'latency') quant.push({ pass: 'quantize.weights', bits: 4, blockSize: 32 });
  slots.push({ name: 'quantize', optional: true, alternatives: quant });
  notes.push(`quantize: ${quant.map(describeTemplate).join('; ')}`);
  return { slots, notes };
}

/** The sensitivity loop's own limit, from the goal: half the budget, so later steps keep some. */
function sensitivityTarget(goal: Goal, hasLabels: boolean): Record<string, number> | null {
  if (goal.metric === 'top1' && hasLabels && goal.maxDrop !== undefined) return { maxAccuracyDrop: (goal.maxDrop * 100) / 2 };
  if (goal.metric === 'agreement') return { maxFidelityDrop: ((goal.maxDrop ?? 1 - (goal.min ?? 1)) * 100) / 2 };
  if (goal.metric === 'sqnr' && goal.min !== undefined) return { minSqnrDb: goal.min + 3 };
  return null;
}

export function describeTemplate(t: SpaceStep): string {
  const knobs = knobsOf(t);
  const parts = Object.entries(t)
    .filter(([k]) => k !== 'pass' && k !== 'optional')
    .map(([k, v]) => {
      const knob = knobs.get(k);
      if (knob?.kind === 'range') return `${k} ${knob.lo}–${knob.hi}`;
      if (knob?.kind === 'choices') return `${k} ∈ {${knob.values.map((x) => JSON.stringify(x)).join(', ')}}`;
      return `${k} ${JSON.stringify(v)}`;
    });
  return parts.length ? `${t.pass} (${parts.join(', ')})` : t.pass;
}
