// One candidate of a search: built step by step through the cache, measured first on a probe of the
// search part (stopped there when clearly off the goal), then on the whole search part, then timed
// side by side against the original in the goal's regime. Never sees the held-out part.
import { InvalidInputError, PassFailedError, ModelpressError, throwIfAborted, toModelpressError } from '../errors.js';
import type { Model } from '../onnx/ir.js';
import { verifyModel } from '../onnx/verify.js';
import { evaluateModels } from '../eval/evaluate.js';
import type { ReferenceOutputs } from '../eval/reference-outputs.js';
import { compareModels } from '../measure/benchmark.js';
import { ChangeLog } from '../pipeline/pass.js';
import type { Goal } from '../pipeline/goal.js';
import { parseRecipe, type RecipeStep } from '../pipeline/recipe.js';
import { PASSES } from '../passes/index.js';
import type { EvaluationResult, LatencyRatio } from '../report/schema.js';
import { itemsOf, runtimeSource, sizeOf, type Feeds, type ModelSource } from '../runtime/ort.js';
import { stepKey, type CachedStep, type StepCache } from './cache.js';
import { meetsAccuracy, probeMargin, shortfall } from './frontier.js';

/** What the goal's metric is on one evaluation: the candidate's value, the original's, and how often decisions differ. */
export function metricOf(goal: Goal, ev: EvaluationResult): { value: number; reference: number; disagreement?: number } {
  const outputs = Object.values(ev.fidelity);
  const agreements = outputs.map((f) => f.sequenceAgreement ?? f.top1Agreement).filter((a): a is number => a !== undefined);
  const disagreement = agreements.length ? 1 - Math.min(...agreements) : undefined;
  if (goal.metric === 'sqnr') return { value: Math.min(...outputs.map((f) => f.sqnrDb)), reference: Infinity, ...(disagreement !== undefined ? { disagreement } : {}) };
  if (goal.metric === 'agreement') {
    if (!agreements.length) throw new InvalidInputError('goal metric agreement needs an output of classes [N, C] or sequences [N, T, C]; this model has neither: use sqnr');
    return { value: Math.min(...agreements), reference: 1, disagreement: disagreement! };
  }
  const cand = ev.task?.candidate[goal.metric];
  const ref = ev.task?.reference[goal.metric];
  if (cand === undefined || ref === undefined) throw new InvalidInputError(`goal metric ${goal.metric} needs labels (--labels)`);
  return { value: cand, reference: ref, ...(disagreement !== undefined ? { disagreement } : {}) };
}

export interface TrialData {
  goal: Goal;
  /** The user's model: every ratio is against it. */
  original: ModelSource;
  originalSize: number;
  /** The model the candidates start from (the original after the recipe's fixed steps) and its cache key. */
  start: Model;
  startKey: string;
  /** Hash of everything a pass may read (calibration, search part, labels): part of every step's key. */
  dataKey: string;
  calibration: Feeds[];
  calibrationIsUsers: boolean;
  search: Feeds[];
  searchLabels?: ArrayLike<number | bigint>;
  labelOutput?: string;
  /** The original's outputs on the search batches (so it runs once). */
  searchReference?: ReferenceOutputs;
  probeBatches: number;
  /** Seconds of side-by-side timing per trial. */
  timingSeconds: number;
  cache: StepCache;
}

export type TrialStatus = 'meets' | 'misses' | 'stopped-early' | 'failed' | 'out-of-bounds';

export interface TrialMeasure {
  status: TrialStatus;
  reason?: string;
  value?: number;
  reference?: number;
  loss?: number;
  /** On the probe, when the trial stopped there. */
  probe?: { samples: number; value: number; margin: number };
  samples?: number;
  latency?: LatencyRatio;
  sizeRatio?: number;
  sizeBytes?: number;
  /** Steps built for this trial, and steps the cache served. */
  built: number;
  cached: number;
  stepStats: { pass: string; durationMs: number; cached: boolean; warnings: string[] }[];
  durationMs: number;
  model?: Model;
}

/** Builds the chain of `steps` from the start model, each step through the cache. */
export async function buildCandidate(
  data: TrialData,
  steps: RecipeStep[],
  signal?: AbortSignal,
): Promise<{ model: Model; built: number; cached: number; stepStats: TrialMeasure['stepStats']; entries: CachedStep[] }> {
  let model = data.start;
  let key = data.startKey;
  let built = 0;
  let cached = 0;
  const stepStats: TrialMeasure['stepStats'] = [];
  const entries: CachedStep[] = [];
  // keys and passes take the steps with their defaults filled in, however the caller wrote them
  for (const step of steps.length ? parseRecipe({ steps }).steps : []) {
    throwIfAborted(signal);
    const def = PASSES[step.pass]!;
    const input = model;
    key = stepKey(key, step, data.dataKey);
    const got = await data.cache.get(key, async () => {
      const changes = new ChangeLog();
      const t0 = Date.now();
      let out: Model;
      try {
        out = await def.run(input, step as never, {
          ...(signal ? { signal } : {}),
          changes,
          progress: () => {},
          sampleInputs: async () => data.calibration,
          samplesAreSynthetic: false,
          samplesAreCalibration: data.calibrationIsUsers,
          evaluationInputs: async () => data.search,
          ...(data.searchLabels ? { labels: data.searchLabels } : {}),
          ...(data.labelOutput ? { labelOutput: data.labelOutput } : {}),
        });
        verifyModel(out, `model after ${step.pass}`);
      } catch (err) {
        const e = toModelpressError(err);
        if (e.code === 'canceled' || e.code === 'memory_limit') throw e;
        throw new PassFailedError(step.pass, e.message, { cause: err });
      }
      return { model: out, changes: changes.toJSON(), durationMs: Date.now() - t0 };
    });
    if (got.cached) cached++;
    else built++;
    stepStats.push({ pass: step.pass, durationMs: got.durationMs, cached: got.cached, warnings: (got.changes as { warnings?: string[] }).warnings ?? [] });
    entries.push(got);
    model = got.model;
  }
  return { model, built, cached, stepStats, entries };
}

/** Builds and measures one candidate on the search part; a failing pass is a failed trial, not a failed search. */
export async function runTrial(data: TrialData, steps: RecipeStep[], signal?: AbortSignal): Promise<TrialMeasure> {
  const t0 = Date.now();
  const goal = data.goal;
  let chain: Awaited<ReturnType<typeof buildCandidate>>;
  try {
    chain = await buildCandidate(data, steps, signal);
  } catch (err) {
    const e = toModelpressError(err);
    if (e.code === 'canceled' || e.code === 'memory_limit') throw e;
    return { status: 'failed', reason: e.message, built: 0, cached: 0, stepStats: [], durationMs: Date.now() - t0 };
  }
  const base = { built: chain.built, cached: chain.cached, stepStats: chain.stepStats, model: chain.model };
  const candidate = steps.length === 0 ? data.original : runtimeSource(chain.model);
  const sizeBytes = sizeOf(candidate);
  const sizeRatio = sizeBytes / data.originalSize;
  const evalOn = (batches: Feeds[], reference: ReferenceOutputs | undefined, labels?: ArrayLike<number | bigint>) =>
    evaluateModels(data.original, candidate, batches, {
      ...(reference ? { referenceOutputs: reference } : {}),
      ...(labels && goal.metric !== 'agreement' && goal.metric !== 'sqnr' ? { labels, metrics: [goal.metric as never] } : {}),
      ...(data.labelOutput ? { labelOutput: data.labelOutput } : {}),
      ...(signal ? { signal } : {}),
    });
  try {
    // the probe: the first batches of the search part
    if (data.probeBatches < data.search.length) {
      const probe = data.search.slice(0, data.probeBatches);
      const n = itemsOf(probe);
      const ev = await evalOn(probe, data.searchReference, data.searchLabels ? sliceLabels(data.searchLabels, n) : undefined);
      const m = metricOf(goal, ev);
      const margin = probeMargin(goal, n, m.disagreement);
      if (shortfall(goal, m.value, m.reference) > margin) {
        return {
          ...base,
          status: 'stopped-early',
          reason: `on the ${n}-sample probe the metric is ${fmt(m.value)} against ${fmt(m.reference)}: short of the goal by more than the probe's margin (${fmt(margin)})`,
          probe: { samples: n, value: m.value, margin },
          value: m.value,
          reference: m.reference,
          loss: shortfall(goal, m.value, m.reference) + (goal.maxDrop ?? 0),
          sizeBytes,
          sizeRatio,
          durationMs: Date.now() - t0,
        };
      }
    }
    const ev = await evalOn(data.search, data.searchReference, data.searchLabels);
    const m = metricOf(goal, ev);
    const loss = shortfall(goal, m.value, m.reference) + (goal.maxDrop ?? 0);
    const measured = { ...base, value: m.value, reference: m.reference, loss, samples: ev.samples, sizeBytes, sizeRatio };
    if (!meetsAccuracy(goal, m.value, m.reference)) {
      return { ...measured, status: 'misses', reason: `${goal.metric} ${fmt(m.value)} against ${fmt(m.reference)} on the search part`, durationMs: Date.now() - t0 };
    }
    const latency = steps.length === 0 ? undefined : await timeAgainstOriginal(data, candidate, data.timingSeconds, signal);
    return { ...measured, status: 'meets', ...(latency ? { latency } : {}), durationMs: Date.now() - t0 };
  } catch (err) {
    const e = toModelpressError(err);
    if (e.code === 'canceled' || e.code === 'memory_limit' || (e instanceof InvalidInputError && /needs labels|needs an output/.test(e.message))) throw e;
    return { ...base, status: 'failed', reason: `the candidate does not run: ${e.message}`, sizeBytes, sizeRatio, durationMs: Date.now() - t0 };
  }
}

/** b/a at the goal's batch size and threads, side by side, in about `seconds`. */
export async function timeAgainstOriginal(data: TrialData, candidate: ModelSource, seconds: number, signal?: AbortSignal): Promise<LatencyRatio> {
  const cmp = await compareModels(data.original, candidate, {
    batchSizes: [data.goal.batchSize],
    intraOpThreads: data.goal.threads,
    budgetSeconds: seconds,
    data: data.search[0]!,
    ...(signal ? { signal } : {}),
  });
  const r = cmp.ratios[0];
  if (!r) throw new ModelpressError('internal', 'the side-by-side timing returned no ratio');
  return r;
}

function sliceLabels(labels: ArrayLike<number | bigint>, n: number): ArrayLike<number | bigint> {
  const sub = (labels as { subarray?: (a: number, b: number) => ArrayLike<number | bigint> }).subarray;
  return sub ? sub.call(labels, 0, n) : Array.from(labels).slice(0, n);
}

function fmt(x: number): string {
  return Number.isFinite(x) ? (Math.abs(x) >= 100 ? x.toFixed(1) : x.toFixed(4)) : String(x);
}
