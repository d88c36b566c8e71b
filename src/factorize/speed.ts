// Is the factorized layer faster? Both forms run alone in onnxruntime on the layer's real input
// shape (batch set to the check's batch), side by side in A/B rounds (compareModels).
import { encodeModel } from '../onnx/model-io.js';
import { compareModels } from '../measure/benchmark.js';
import { chainModel, originalLayerModel } from './chain.js';
import type { ChainPlan } from './decompose.js';

export interface SpeedVerdict {
  /** Median of per-round latency ratios factorized / original. */
  ratio: number;
  low: number;
  high: number;
  inputDims: number[];
}

export async function layerSpeed(plan: ChainPlan, opset: number, inputDims: number[], opts: { rounds: number; runs: number; signal?: AbortSignal }): Promise<SpeedVerdict> {
  const a = encodeModel(originalLayerModel(opset, inputDims, plan.layer));
  const b = encodeModel(chainModel(opset, inputDims, plan.layer, plan.steps));
  const cmp = await compareModels(a, b, { rounds: opts.rounds, runs: opts.runs, warmup: 2 * opts.rounds, ...(opts.signal ? { signal: opts.signal } : {}) });
  const r = cmp.ratios[0]!;
  return { ratio: r.ratio, low: r.low, high: r.high, inputDims };
}
