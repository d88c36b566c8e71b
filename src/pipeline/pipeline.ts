// Runs a recipe's steps in order on one model: verify after every pass, measure size, parameters
// and fidelity after every step, report progress, stop on abort.
import { createHash } from 'node:crypto';
import { CanceledError, ModelpressError, PassFailedError, throwIfAborted, toModelpressError } from '../errors.js';
import { countParameters } from '../onnx/constants.js';
import type { Model } from '../onnx/ir.js';
import { decodeModel, encodeModel } from '../onnx/model-io.js';
import { verifyModel } from '../onnx/verify.js';
import { FidelityAccumulator, type Fidelity } from '../metrics/fidelity.js';
import { createSession, syntheticInputs, tensorToFloat32, type Feeds, type SyntheticInputOptions } from '../runtime/ort.js';
import { environment, type Environment } from '../report/environment.js';
import { PASSES } from '../passes/index.js';
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
  /** How to shape synthetic inputs (dynamic dims, fixed values). */
  synthetic?: SyntheticInputOptions;
}

export interface ModelMetrics {
  sizeBytes: number;
  params: number;
  nodes: number;
}

export interface StepReport extends ModelMetrics {
  index: number;
  pass: string;
  config: Record<string, unknown>;
  durationMs: number;
  changes: object;
  /** Per model output: the step's output against the original model's, on the sample inputs. */
  fidelity: Record<string, Fidelity>;
}

export interface PipelineReport {
  schemaVersion: 1;
  createdAt: string;
  recipe: Recipe;
  input: ModelMetrics & { sha256: string };
  samples: { source: 'data' | 'synthetic'; batches: number; items: number };
  steps: StepReport[];
  final: ModelMetrics & {
    sha256: string;
    sizeRatio: number;
    paramsRatio: number;
    fidelity: Record<string, Fidelity>;
  };
  environment: Environment;
  warnings: string[];
  durationMs: number;
}

export interface PipelineResult {
  model: Model;
  bytes: Uint8Array;
  report: PipelineReport;
}

function countNodes(model: Model): number {
  let n = 0;
  for (const g of model.allGraphs()) n += g.nodes.length;
  return n;
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Runs the model on every sample and returns its outputs as Float32Arrays, in sample order. */
async function runOutputs(bytes: Uint8Array, samples: Feeds[], signal?: AbortSignal): Promise<Map<string, Float32Array>[]> {
  const session = await createSession(bytes);
  try {
    const outs: Map<string, Float32Array>[] = [];
    for (const feeds of samples) {
      throwIfAborted(signal);
      const res = await session.run(feeds);
      outs.push(new Map(Object.entries(res).map(([k, t]) => [k, tensorToFloat32(t)])));
    }
    return outs;
  } finally {
    await session.release();
  }
}

function compare(reference: Map<string, Float32Array>[], candidate: Map<string, Float32Array>[]): Record<string, Fidelity> {
  const acc = new Map<string, FidelityAccumulator>();
  reference.forEach((ref, i) => {
    for (const [name, r] of ref) {
      const c = candidate[i]!.get(name);
      if (!c) continue;
      if (!acc.has(name)) acc.set(name, new FidelityAccumulator());
      acc.get(name)!.add(r, c);
    }
  });
  return Object.fromEntries([...acc].map(([k, a]) => [k, a.result()]));
}

export async function runPipeline(inputBytes: Uint8Array, opts: PipelineOptions): Promise<PipelineResult> {
  const started = Date.now();
  const { recipe, signal } = opts;
  const steps = recipe.steps;
  const report = (p: Omit<PipelineProgress, 'percent' | 'steps'>): void => {
    const percent = steps.length === 0 ? 100 : ((Math.max(p.step, 1) - 1 + p.fraction) / steps.length) * 100;
    opts.onProgress?.({ ...p, steps: steps.length, percent: Math.min(100, Math.round(percent * 10) / 10) });
  };
  throwIfAborted(signal);
  const model = decodeModel(inputBytes);
  verifyModel(model, 'input model');
  const inputMetrics: ModelMetrics = { sizeBytes: inputBytes.length, params: countParameters(model), nodes: countNodes(model) };

  const synthetic = !opts.samples || opts.samples.length === 0;
  const samples: Feeds[] = synthetic
    ? [1, 2, 3, 4].map((seed) => syntheticInputs(model, { ...opts.synthetic, seed: (opts.synthetic?.seed ?? 0) + seed }))
    : opts.samples!;
  const warnings: string[] = [];
  if (synthetic) warnings.push('fidelity was measured on synthetic inputs: give representative data (--data) for numbers that mean something');
  report({ step: 0, stepName: 'baseline', fraction: 0, message: 'running the original model' });
  const reference = await runOutputs(inputBytes, samples, signal);

  const stepReports: StepReport[] = [];
  let bytes = inputBytes;
  for (let i = 0; i < steps.length; i++) {
    throwIfAborted(signal);
    const step = steps[i]!;
    const def = PASSES[step.pass]!;
    const changes = new ChangeLog();
    const t0 = Date.now();
    report({ step: i + 1, stepName: step.pass, fraction: 0 });
    try {
      await def.run(model, step as never, {
        ...(signal ? { signal } : {}),
        changes,
        progress: (fraction, message) => report({ step: i + 1, stepName: step.pass, fraction: Math.min(0.95, fraction), ...(message ? { message } : {}) }),
        sampleInputs: async () => samples,
        samplesAreSynthetic: synthetic,
      });
      verifyModel(model, `model after step ${i + 1} (${step.pass})`);
      bytes = encodeModel(model);
    } catch (err) {
      const e = toModelpressError(err);
      if (e instanceof CanceledError) throw e;
      if (e.code === 'internal' || e.code === 'invalid_model') {
        throw new PassFailedError(step.pass, `step ${i + 1} failed: ${e.message}`, { cause: err });
      }
      throw e;
    }
    const durationMs = Date.now() - t0;
    report({ step: i + 1, stepName: step.pass, fraction: 0.97, message: 'measuring fidelity' });
    let fidelity: Record<string, Fidelity>;
    try {
      fidelity = compare(reference, await runOutputs(bytes, samples, signal));
    } catch (err) {
      if (err instanceof ModelpressError && err.code === 'canceled') throw err;
      throw new PassFailedError(step.pass, `the rewritten model does not run in onnxruntime: ${(err as Error).message}`, { cause: err });
    }
    warnings.push(...changes.warnings.map((w) => `step ${i + 1} (${step.pass}): ${w}`));
    stepReports.push({
      index: i + 1,
      pass: step.pass,
      config: step,
      durationMs,
      sizeBytes: bytes.length,
      params: countParameters(model),
      nodes: countNodes(model),
      changes: changes.toJSON(),
      fidelity,
    });
    report({ step: i + 1, stepName: step.pass, fraction: 1 });
  }
  const last = stepReports[stepReports.length - 1];
  return {
    model,
    bytes,
    report: {
      schemaVersion: 1,
      createdAt: new Date().toISOString(),
      recipe,
      input: { ...inputMetrics, sha256: sha256(inputBytes) },
      samples: {
        source: synthetic ? 'synthetic' : 'data',
        batches: samples.length,
        items: samples.reduce((s, f) => s + (Object.values(f)[0]?.dims[0] ?? 1), 0),
      },
      steps: stepReports,
      final: {
        sizeBytes: bytes.length,
        params: last?.params ?? inputMetrics.params,
        nodes: last?.nodes ?? inputMetrics.nodes,
        sha256: sha256(bytes),
        sizeRatio: bytes.length / inputBytes.length,
        paramsRatio: inputMetrics.params ? (last?.params ?? inputMetrics.params) / inputMetrics.params : 1,
        fidelity: last?.fidelity ?? {},
      },
      environment: environment(),
      warnings,
      durationMs: Date.now() - started,
    },
  };
}
