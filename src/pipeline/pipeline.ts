// Runs a recipe's steps in order on one model: verify after every pass, measure size, parameters
// and fidelity after every step, report progress, stop on abort.
import { CanceledError, ModelpressError, PassFailedError, UnsupportedModelError, throwIfAborted, toModelpressError } from '../errors.js';
import { countParameters } from '../onnx/constants.js';
import { Model } from '../onnx/ir.js';
import { assertModelFitsBudget } from '../onnx/budget.js';
import { decodeModel, withWeights } from '../onnx/model-io.js';
import { repairOnImport } from '../onnx/import-repair.js';
import { weightLayerTypes } from '../onnx/float-weights.js';
import { verifyModel } from '../onnx/verify.js';
import { itemsOf, pinForSessions, runtimeSource, sha256Of, sizeOf, syntheticInputs, type Feeds, type ModelSource, type SyntheticInputOptions } from '../runtime/ort.js';
import { probeInputShapes } from '../runtime/input-shapes.js';
import { environment } from '../report/environment.js';
import type { CompressionReport, LatencyStats, StageMetrics, StepReport } from '../report/schema.js';
import { assertBatchesFit, compareModels, inputsForBatch, resolveTimingPlan, type BenchmarkOptions } from '../measure/benchmark.js';
import { estimateMacs } from '../measure/macs.js';
import { evaluateModels } from '../eval/evaluate.js';
import { profileModel } from '../measure/profile.js';
import type { ProfileReport } from '../report/schema.js';
import { PASSES, type PassStats } from '../passes/index.js';
import { ChangeLog } from './pass.js';
import type { Recipe } from './recipe.js';

export interface PipelineProgress {
  step: number; // 1-based; 0 before the first step
  steps: number;
  stepName: string;
  /** 0..1 within the current step. */
  fraction: number;
  /** 0..100 over the whole run. */
  percent: number;
  message?: string;
}

export interface PipelineOptions {
  recipe: Recipe;
  signal?: AbortSignal;
  onProgress?: (p: PipelineProgress) => void;
  /** Representative inputs (user data). Without them, synthetic inputs are generated. */
  samples?: Feeds[];
  /** Calibration inputs for passes that need data (quantization ranges, recovery); default: `samples`. */
  calibration?: Feeds[];
  /** How to shape synthetic inputs (dynamic dims, fixed values). */
  synthetic?: SyntheticInputOptions;
  /** One label per sample (in sample order): task metrics for every stage. */
  labels?: ArrayLike<number | bigint>;
  /** The output the labels refer to (default: the first output). */
  labelOutput?: string;
  /** A name for the input model in the report (e.g. its file name). */
  inputName?: string;
  /** A step's output built before (a search's cache): the pass does not run again, its log is reused. */
  stepModel?: (index: number) => Promise<{ model: Model; changes: unknown; durationMs: number } | undefined>;
  /** A step's pass ran (not a prebuilt step) and took `durationMs`, as its report step will say: called as it ends. */
  onPassDone?: (pass: string, durationMs: number) => void;
}

/** A report as the pipeline writes it: each step's statistics typed by its pass. */
export type PipelineReport = CompressionReport<StepReport<PassStats>>;

export interface PipelineResult {
  model: Model;
  /** What was measured: the encoded model, or the model itself when it is too large for one protobuf. */
  output: ModelSource;
  /** The encoded model; throws for a model over 2 GB (write `model` with writeModelFile instead). */
  readonly bytes: Uint8Array;
  report: PipelineReport;
}

function countNodes(model: Model): number {
  let n = 0;
  for (const g of model.allGraphs()) n += g.nodes.length;
  return n;
}

/** Every step runs the model in onnxruntime-node, which feeds and returns tensors only. */
function assertTensorInterface(model: Model): void {
  const inits = new Set(model.graph.initializers);
  const io = [...model.graph.inputs.filter((v) => !inits.has(v)).map((v) => ['input', v] as const), ...model.graph.outputs.map((v) => ['output', v] as const)];
  const bad = io.filter(([, v]) => v.type?.value.case && v.type.value.case !== 'tensorType');
  if (bad.length > 0) {
    const list = bad.map(([kind, v]) => `${kind} '${v.name}' is a ${v.type!.value.case!.replace(/Type$/, '')}`).join(', ');
    throw new UnsupportedModelError(`${list}: onnxruntime-node feeds and returns tensors only, so the model cannot be run to measure a step; inspect works, compression needs tensor inputs and outputs`);
  }
}

/**
 * The original's outputs on the fidelity samples are kept for the steps' comparisons: this much in
 * memory, the rest in a temp file up to the second size (past it, the original runs again beside
 * each step's model).
 */
export const REFERENCE_KEEP = { memoryBytes: 256 * 2 ** 20, diskBytes: 4 * 2 ** 30 };

/** The leading batches whose items take at most `budgetMs` at `msPerItem` (at least one batch). */
export function cutToBudget(batches: readonly Feeds[], budgetMs: number, msPerItem: number): Feeds[] {
  let spent = 0;
  let n = 0;
  while (n < batches.length) {
    spent += itemsOf([batches[n]!]) * msPerItem;
    if (n > 0 && spent > budgetMs) break;
    n++;
  }
  return batches.slice(0, n);
}

/** `input`: the model's bytes, or a model already loaded (with its external data, or too large to encode). */
export async function runPipeline(input: ModelSource, opts: PipelineOptions): Promise<PipelineResult> {
  const disposers: (() => void)[] = [];
  try {
    return await run(input, opts, disposers);
  } finally {
    for (const dispose of disposers) dispose();
  }
}

async function run(input: ModelSource, opts: PipelineOptions, disposers: (() => void)[]): Promise<PipelineResult> {
  const started = Date.now();
  const { recipe, signal } = opts;
  const steps = recipe.steps;
  const bench = recipe.benchmark;
  // progress: each step's share covers its pass and its measurements; the baseline counts as one more share
  const shares = steps.length + 1;
  const report = (p: Omit<PipelineProgress, 'percent' | 'steps'>): void => {
    const percent = ((p.step + Math.min(1, p.fraction)) / shares) * 100;
    opts.onProgress?.({ ...p, steps: steps.length, percent: Math.min(100, Math.round(percent * 10) / 10) });
  };
  throwIfAborted(signal);
  let model = input instanceof Model ? input : decodeModel(input);
  // onnxruntime runs graphs in any node order; the passes need a toposorted one
  const importNotes = repairOnImport(model);
  verifyModel(model, 'input model');
  assertTensorInterface(model);
  // before the first allocation from a declared shape: a tiny model can declare a huge tensor
  assertModelFitsBudget(model);

  // onnxruntime's CPU provider has almost no bfloat16 kernels: say so rather than only quote its loader
  const explainBfloat16 = (err: unknown): never => {
    const bf16 = weightLayerTypes(model).bfloat16;
    if (bf16 && err instanceof ModelpressError && (err.code === 'invalid_model' || err.code === 'unsupported_model')) {
      throw new UnsupportedModelError(
        `the model computes in bfloat16 (${bf16} weight layer${bf16 === 1 ? '' : 's'}), which onnxruntime's CPU provider cannot run (${err.message}); ` +
          'modelpress measures every step by running the model: convert its weights and compute to float32 or float16 first',
        { cause: err },
      );
    }
    throw err;
  };
  const synthetic = !opts.samples || opts.samples.length === 0;
  const warnings: string[] = [];
  // one choice of shapes for open dims, probed on the original, shared by every run after it
  let shapes = opts.synthetic;
  if (synthetic) {
    report({ step: 0, stepName: 'baseline', fraction: 0, message: 'choosing input shapes' });
    const probe = await probeInputShapes(model, input, opts.synthetic, signal).catch(explainBfloat16);
    shapes = probe.synthetic;
    if (probe.guessed || probe.attempts > 1) {
      const used = Object.entries(probe.shapes).map(([k, d]) => `${k}=${d.join(',')}`).join(' ');
      warnings.push(`synthetic inputs: open dimensions set to ${used}${probe.attempts > 1 ? ` (the first that ran of ${probe.attempts} tried)` : ''}; set them with --shape`);
    }
  }
  const samples: Feeds[] = synthetic
    ? [1, 2, 3, 4].map((seed) => syntheticInputs(model, { ...shapes, seed: (shapes?.seed ?? 0) + seed }))
    : opts.samples!;
  const calibration = opts.calibration && opts.calibration.length > 0 ? opts.calibration : undefined;
  if (synthetic) warnings.push('fidelity was measured on synthetic inputs: give representative data (--data) for numbers that mean something');
  const benchOptions: BenchmarkOptions = {
    ...(bench.batchSizes ? { batchSizes: bench.batchSizes } : {}),
    ...(bench.warmup !== undefined ? { warmup: bench.warmup } : {}),
    ...(bench.runs !== undefined ? { runs: bench.runs } : {}),
    intraOpThreads: bench.intraOpThreads,
    budgetSeconds: bench.budgetSeconds,
    ...(shapes ? { inputs: shapes } : {}),
    ...(synthetic ? {} : { data: samples[0]! }),
    ...(signal ? { signal } : {}),
  };

  if (bench.enabled) assertBatchesFit(model, benchOptions); // fail now, not after the baseline is measured
  report({ step: 0, stepName: 'baseline', fraction: 0, message: 'running the original model' });
  const evalOptions = {
    source: synthetic ? ('synthetic' as const) : ('data' as const),
    referenceHint: synthetic ? 'give the shapes it expects with --shape name=d0,d1,… or inputs with --data' : "check the data against the model's inputs",
    ...(opts.labels ? { labels: opts.labels } : {}),
    ...(opts.labelOutput ? { labelOutput: opts.labelOutput } : {}),
    ...(signal ? { signal } : {}),
  };
  // the original alone, on as many batches as fit the fidelity budget; every step is measured on those
  const baselineEval = await evaluateModels(input, input, samples, {
    ...evalOptions,
    budgetMs: recipe.evaluate.budgetSeconds * 1000,
    keepReference: REFERENCE_KEEP,
  }).catch(explainBfloat16);
  if (baselineEval.referenceOutputs) disposers.push(() => baselineEval.referenceOutputs!.dispose());
  const evalSamples = samples.slice(0, baselineEval.batches ?? samples.length);
  const referenceOutputs = baselineEval.referenceOutputs;
  const evaluateStage = (candidate: ModelSource) => evaluateModels(input, candidate, evalSamples, { ...evalOptions, ...(referenceOutputs ? { referenceOutputs } : {}) });
  if (evalSamples.length < samples.length) {
    warnings.push(
      `fidelity was measured on ${itemsOf(evalSamples)} of ${itemsOf(samples)} samples: the original model used up the ${recipe.evaluate.budgetSeconds} s budget (evaluate.budgetSeconds)`,
    );
  }
  // a step that calibrates on the evaluation data is then judged on the data it was tuned on: say so
  const tunedOnEvaluation = calibration || synthetic ? [] : steps.flatMap((step, i) => (PASSES[step.pass]!.calibration?.(step as never) ? [`step ${i + 1} (${step.pass})`] : []));
  if (tunedOnEvaluation.length > 0) {
    warnings.push(
      `${tunedOnEvaluation.join(', ')} calibrated on the evaluation data, as no calibration data was given: the fidelity and accuracy reported for ${tunedOnEvaluation.length > 1 ? 'them' : 'it'} are measured on data the step was tuned on; give separate calibration data (CLI --calibration, job input \`calibration\`) for an independent measurement`,
    );
  }
  // calibration: as many batches as the original runs in the calibration budget, at the rate just measured
  const calibrationGiven = calibration ?? samples;
  const msPerItem = (baselineEval.elapsedMs ?? 0) / Math.max(1, baselineEval.samples);
  const calibrationUsed = cutToBudget(calibrationGiven, recipe.evaluate.calibrationBudgetSeconds * 1000, msPerItem);
  if (calibrationUsed.length < calibrationGiven.length) {
    warnings.push(
      `calibration used ${itemsOf(calibrationUsed)} of ${itemsOf(calibrationGiven)} samples: at ${msPerItem.toFixed(0)} ms per sample the rest would take longer than ${recipe.evaluate.calibrationBudgetSeconds} s (evaluate.calibrationBudgetSeconds)`,
    );
  }
  // MACs are informative: inputs that cannot be resized to batch 1 (a test-data set) leave them unknown
  const macsOf = (m: Model) => Promise.resolve().then(() => estimateMacs(m, inputsForBatch(m, 1, benchOptions))).catch(() => null);
  const baseline: StageMetrics & { latencyAbsolute?: LatencyStats[] } = {
    sizeBytes: sizeOf(input),
    params: countParameters(model),
    nodes: countNodes(model),
    macs: await macsOf(model),
    fidelity: baselineEval.fidelity,
    ...(baselineEval.task ? { task: baselineEval.task.reference } : {}),
  };
  // one timing plan for the whole run, scaled from one measured run of the original
  if (bench.enabled || bench.profile) {
    report({ step: 0, stepName: 'baseline', fraction: 0.5, message: 'measuring one run to size the benchmark' });
    benchOptions.plan = await resolveTimingPlan(model, input, { ...benchOptions, ...(bench.rounds !== undefined ? { rounds: bench.rounds } : {}) });
  }
  const timing = benchOptions.plan;
  const profileOf = (m: Model) =>
    profileModel(m, inputsForBatch(m, 1, benchOptions), { depth: bench.profileDepth, warmup: timing!.warmup, runs: timing!.runs, intraOpThreads: bench.intraOpThreads });
  let baselineProfile: ProfileReport | undefined;
  if (bench.profile) {
    report({ step: 0, stepName: 'baseline', fraction: 0.8, message: 'profiling the original model' });
    baselineProfile = await profileOf(model);
  }
  // a model that keeps its weights in their data files ran from there so far; the passes need them in memory
  if (model.externalDataRoot !== undefined) {
    report({ step: 0, stepName: 'baseline', fraction: 0.9, message: 'reading the weights' });
    model = withWeights(model);
  }
  report({ step: 0, stepName: 'baseline', fraction: 1 });

  const stepReports: StepReport<PassStats>[] = [];
  let output = input;
  for (let i = 0; i < steps.length; i++) {
    throwIfAborted(signal);
    const step = steps[i]!;
    const def = PASSES[step.pass]!;
    const changes = new ChangeLog();
    const t0 = Date.now();
    const at = (fraction: number, message?: string) => report({ step: i + 1, stepName: step.pass, fraction, ...(message ? { message } : {}) });
    at(0);
    const prebuilt = await opts.stepModel?.(i);
    try {
      // a pass returns a new model and never changes its input: steps hand models on as they are,
      // and bytes are encoded only for onnxruntime and the result
      model = prebuilt ? prebuilt.model : await def.run(model, step as never, {
        ...(signal ? { signal } : {}),
        changes,
        progress: (fraction, message) => at(Math.min(0.7, fraction * 0.7), message),
        sampleInputs: async () => calibrationUsed,
        samplesAreSynthetic: !calibration && synthetic,
        samplesAreCalibration: !!calibration,
        evaluationInputs: async () => evalSamples,
        ...(opts.labels ? { labels: opts.labels } : {}),
        ...(opts.labelOutput ? { labelOutput: opts.labelOutput } : {}),
      });
      verifyModel(model, `model after step ${i + 1} (${step.pass})`);
      output = runtimeSource(model);
    } catch (err) {
      const e = toModelpressError(err);
      if (e instanceof CanceledError) throw e;
      if (e.code === 'internal' || e.code === 'invalid_model') {
        throw new PassFailedError(step.pass, `step ${i + 1} failed: ${e.message}`, { cause: err });
      }
      throw e;
    }
    const durationMs = prebuilt ? prebuilt.durationMs : Date.now() - t0;
    if (!prebuilt) opts.onPassDone?.(step.pass, durationMs);
    const stepChanges = (prebuilt ? prebuilt.changes : changes.toJSON()) as ReturnType<typeof changes.toJSON>;
    at(0.75, 'measuring fidelity');
    // the fidelity and the benchmark sessions of a result past 2 GB read one copy of it on disk
    const runnable = pinForSessions(output);
    disposers.push(() => runnable.dispose());
    let evaluation: Awaited<ReturnType<typeof evaluateStage>>;
    try {
      evaluation = await evaluateStage(runnable.source);
    } catch (err) {
      if (err instanceof ModelpressError && err.code === 'canceled') throw err;
      throw new PassFailedError(step.pass, `the rewritten model does not run in onnxruntime: ${(err as Error).message}`, { cause: err });
    }
    // a pass's ChangeLog takes only the statistics its `stats` schema declares, so these are PassStats[step.pass]
    const stage = {
      index: i + 1,
      pass: step.pass,
      config: step,
      durationMs,
      sizeBytes: sizeOf(output),
      params: countParameters(model),
      nodes: countNodes(model),
      // the same graph: its session reads the copy on disk too
      macs: await macsOf(runnable.source instanceof Model ? runnable.source : model),
      changes: stepChanges,
      fidelity: evaluation.fidelity,
      ...(evaluation.task ? { task: evaluation.task.candidate } : {}),
    } as StepReport<PassStats>;
    if (bench.enabled) {
      at(0.8, 'timing against the original, side by side');
      stage.latency = (await compareModels(input, runnable.source, benchOptions)).ratios;
      // the original's absolute latency: its side of the first comparison (no separate benchmark run)
      baseline.latencyAbsolute ??= stage.latency.map((r) => r.a);
      for (const r of stage.latency) {
        if (r.verdict !== 'faster') warnings.push(`step ${i + 1} (${step.pass}): at batch ${r.batch} the model is ${r.verdict === 'slower' ? 'SLOWER' : 'not measurably faster'} than the original (b/a ${r.ratio.toFixed(2)}, spread ${r.low.toFixed(2)}–${r.high.toFixed(2)})`);
      }
    }
    runnable.dispose();
    warnings.push(...stepChanges.warnings.map((w) => `step ${i + 1} (${step.pass}): ${w}`));
    stepReports.push(stage);
    at(1);
  }
  const last = stepReports[stepReports.length - 1];
  const profile = baselineProfile ? { baseline: baselineProfile, ...(last ? { final: await profileOf(model) } : {}) } : undefined;
  const finalStage: StageMetrics = last ?? baseline;
  const outputSize = sizeOf(output);
  return {
    model,
    output,
    get bytes() {
      if (output instanceof Uint8Array) return output;
      throw new UnsupportedModelError('the result is too large for one protobuf (2 GB): write it with external data (writeModelFile)');
    },
    report: {
      schemaVersion: 1,
      kind: 'compress',
      createdAt: new Date().toISOString(),
      recipe,
      input: { sha256: sha256Of(input), ...(opts.inputName ? { name: opts.inputName } : {}) },
      samples: {
        source: synthetic ? 'synthetic' : 'data',
        batches: evalSamples.length,
        items: itemsOf(evalSamples),
        ...(evalSamples.length < samples.length ? { given: { batches: samples.length, items: itemsOf(samples) }, budgetSeconds: recipe.evaluate.budgetSeconds } : {}),
        labels: !!opts.labels,
        ...(calibration
          ? {
              calibration: {
                batches: calibrationUsed.length,
                items: itemsOf(calibrationUsed),
                ...(calibrationUsed.length < calibration.length
                  ? { given: { batches: calibration.length, items: itemsOf(calibration) }, budgetSeconds: recipe.evaluate.calibrationBudgetSeconds }
                  : {}),
              },
            }
          : {}),
      },
      ...(timing ? { timing } : {}),
      baseline,
      steps: stepReports,
      final: {
        sizeBytes: finalStage.sizeBytes,
        params: finalStage.params,
        nodes: finalStage.nodes,
        macs: finalStage.macs,
        ...(finalStage.latency ? { latency: finalStage.latency } : {}),
        fidelity: finalStage.fidelity,
        ...(finalStage.task ? { task: finalStage.task } : {}),
        sha256: sha256Of(output),
        sizeRatio: outputSize / baseline.sizeBytes,
        paramsRatio: baseline.params ? finalStage.params / baseline.params : 1,
      },
      ...(profile ? { profile } : {}),
      environment: environment(),
      ...(importNotes.length > 0 ? { importNotes } : {}),
      warnings,
      durationMs: Date.now() - started,
    },
  };
}
