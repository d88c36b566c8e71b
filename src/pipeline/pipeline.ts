// Runs a recipe's steps in order on one model: verify after every pass, measure size, parameters
// and fidelity after every step, report progress, stop on abort.
import { CanceledError, ModelpressError, PassFailedError, UnsupportedModelError, throwIfAborted, toModelpressError } from '../errors.js';
import { countParameters } from '../onnx/constants.js';
import { Model } from '../onnx/ir.js';
import { assertModelFitsBudget } from '../onnx/budget.js';
import { decodeModel } from '../onnx/model-io.js';
import { verifyModel } from '../onnx/verify.js';
import { runtimeSource, sha256Of, sizeOf, syntheticInputs, type Feeds, type ModelSource, type SyntheticInputOptions } from '../runtime/ort.js';
import { environment } from '../report/environment.js';
import type { CompressionReport, LatencyStats, StageMetrics, StepReport } from '../report/schema.js';
import { assertBatchesFit, benchmarkModel, compareModels, inputsForBatch, type BenchmarkOptions } from '../measure/benchmark.js';
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

/** `input`: the model's bytes, or a model already loaded (with its external data, or too large to encode). */
export async function runPipeline(input: ModelSource, opts: PipelineOptions): Promise<PipelineResult> {
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
  verifyModel(model, 'input model');
  // before the first allocation from a declared shape: a tiny model can declare a huge tensor
  assertModelFitsBudget(model);

  const synthetic = !opts.samples || opts.samples.length === 0;
  const samples: Feeds[] = synthetic
    ? [1, 2, 3, 4].map((seed) => syntheticInputs(model, { ...opts.synthetic, seed: (opts.synthetic?.seed ?? 0) + seed }))
    : opts.samples!;
  const calibration = opts.calibration && opts.calibration.length > 0 ? opts.calibration : undefined;
  const warnings: string[] = [];
  if (synthetic) warnings.push('fidelity was measured on synthetic inputs: give representative data (--data) for numbers that mean something');
  const benchOptions: BenchmarkOptions = {
    batchSizes: bench.batchSizes,
    warmup: bench.warmup,
    runs: bench.runs,
    intraOpThreads: bench.intraOpThreads,
    ...(opts.synthetic ? { inputs: opts.synthetic } : {}),
    ...(synthetic ? {} : { data: samples[0]! }),
    ...(signal ? { signal } : {}),
  };

  if (bench.enabled) assertBatchesFit(model, benchOptions); // fail now, not after the baseline is measured
  report({ step: 0, stepName: 'baseline', fraction: 0, message: 'running the original model' });
  const evaluateStage = (candidate: ModelSource) =>
    evaluateModels(input, candidate, samples, {
      source: synthetic ? 'synthetic' : 'data',
      ...(opts.labels ? { labels: opts.labels } : {}),
      ...(opts.labelOutput ? { labelOutput: opts.labelOutput } : {}),
      ...(signal ? { signal } : {}),
    });
  const baselineEval = await evaluateStage(input);
  const macsOf = (m: Model) => estimateMacs(m, inputsForBatch(m, 1, benchOptions)).catch(() => null);
  const baseline: StageMetrics & { latencyAbsolute?: LatencyStats[] } = {
    sizeBytes: sizeOf(input),
    params: countParameters(model),
    nodes: countNodes(model),
    macs: await macsOf(model),
    fidelity: baselineEval.fidelity,
    ...(baselineEval.task ? { task: baselineEval.task.reference } : {}),
  };
  if (bench.enabled) {
    report({ step: 0, stepName: 'baseline', fraction: 0.5, message: 'timing the original model' });
    baseline.latencyAbsolute = (await benchmarkModel(input, benchOptions)).latency;
  }
  const profileOf = (m: Model) =>
    profileModel(m, inputsForBatch(m, 1, benchOptions), { depth: bench.profileDepth, warmup: bench.warmup, runs: bench.runs, intraOpThreads: bench.intraOpThreads });
  let baselineProfile: ProfileReport | undefined;
  if (bench.profile) {
    report({ step: 0, stepName: 'baseline', fraction: 0.8, message: 'profiling the original model' });
    baselineProfile = await profileOf(model);
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
    try {
      // a pass returns a new model and never changes its input: steps hand models on as they are,
      // and bytes are encoded only for onnxruntime and the result
      model = await def.run(model, step as never, {
        ...(signal ? { signal } : {}),
        changes,
        progress: (fraction, message) => at(Math.min(0.7, fraction * 0.7), message),
        sampleInputs: async () => calibration ?? samples,
        samplesAreSynthetic: !calibration && synthetic,
        samplesAreCalibration: !!calibration,
        evaluationInputs: async () => samples,
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
    const durationMs = Date.now() - t0;
    at(0.75, 'measuring fidelity');
    let evaluation: Awaited<ReturnType<typeof evaluateStage>>;
    try {
      evaluation = await evaluateStage(output);
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
      macs: await macsOf(model),
      changes: changes.toJSON(),
      fidelity: evaluation.fidelity,
      ...(evaluation.task ? { task: evaluation.task.candidate } : {}),
    } as StepReport<PassStats>;
    if (bench.enabled) {
      at(0.8, 'timing against the original, side by side');
      stage.latency = (await compareModels(input, output, { ...benchOptions, rounds: bench.rounds })).ratios;
      for (const r of stage.latency) {
        if (r.verdict !== 'faster') warnings.push(`step ${i + 1} (${step.pass}): at batch ${r.batch} the model is ${r.verdict === 'slower' ? 'SLOWER' : 'not measurably faster'} than the original (b/a ${r.ratio.toFixed(2)}, spread ${r.low.toFixed(2)}–${r.high.toFixed(2)})`);
      }
    }
    warnings.push(...changes.warnings.map((w) => `step ${i + 1} (${step.pass}): ${w}`));
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
        batches: samples.length,
        items: samples.reduce((s, f) => s + (Object.values(f)[0]?.dims[0] ?? 1), 0),
        labels: !!opts.labels,
        ...(calibration
          ? { calibration: { batches: calibration.length, items: calibration.reduce((s, f) => s + (Object.values(f)[0]?.dims[0] ?? 1), 0) } }
          : {}),
      },
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
      warnings,
      durationMs: Date.now() - started,
    },
  };
}
