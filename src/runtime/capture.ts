// Intermediate values of a model as onnxruntime computes them: the analysis half of every
// data-driven pass (calibration ranges, per-layer SQNR, activation importance, least-squares
// recovery). One session per capture, with the requested values exposed as extra graph outputs.
import { InvalidInputError } from '../errors.js';
import type { Model, Value } from '../onnx/ir.js';
import { createSessionWithOutputs, runTensorOutputs, type Feeds, type SessionOptions, type ort } from './ort.js';

export interface CaptureOptions {
  /** Graph optimizations off by default so that no requested value is fused away. */
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  signal?: AbortSignal;
}

/**
 * Runs the model on every batch of `feedList` and hands the requested main-graph values (and the
 * model outputs) of each batch to `onBatch`, one batch at a time so memory stays bounded by a batch:
 * accumulate statistics in the callback rather than keeping tensors.
 */
export async function forEachCapture(
  model: Model,
  feedList: Feeds[],
  values: Value[],
  onBatch: (captured: Map<Value, ort.Tensor>, batchIndex: number, feeds: Feeds) => void | Promise<void>,
  opts: CaptureOptions = {},
): Promise<void> {
  const g = model.graph;
  const original = g.outputs;
  const graphInputs = new Set(g.inputs);
  const extra: Value[] = [];
  const seen = new Set(original);
  for (const v of values) {
    if (seen.has(v) || graphInputs.has(v)) continue;
    if (!v.producer && !g.initializers.includes(v)) {
      throw new InvalidInputError(`cannot capture '${v.name}': it is not computed in the main graph`);
    }
    seen.add(v);
    extra.push(v);
  }
  const session = await sessionWithOutputs(model, extra, { graphOptimizationLevel: opts.graphOptimizationLevel ?? 'disabled' });
  try {
    for (let b = 0; b < feedList.length; b++) {
      if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('aborted');
      const feeds = feedList[b]!;
      const results = await runTensorOutputs(session, feeds);
      const captured = new Map<Value, ort.Tensor>();
      for (const v of [...original, ...extra]) {
        const t = results[v.name];
        if (t) captured.set(v, t);
      }
      for (const v of values) {
        if (graphInputs.has(v) && feeds[v.name]) captured.set(v, feeds[v.name]!);
      }
      await onBatch(captured, b, feeds);
    }
  } finally {
    await session.release();
  }
}

/** A session of the model with extra main-graph values exposed as outputs (the model itself is left unchanged). */
export function sessionWithOutputs(model: Model, values: readonly Value[], opts: SessionOptions = {}): Promise<ort.InferenceSession> {
  const g = model.graph;
  return createSessionWithOutputs(model, [...new Set(values.filter((v) => !g.outputs.includes(v) && !g.inputs.includes(v)))], opts);
}

/** Convenience for small captures: every batch's tensors of the requested values, in batch order. */
export async function captureValues(model: Model, feedList: Feeds[], values: Value[], opts: CaptureOptions = {}): Promise<Map<Value, ort.Tensor[]>> {
  const out = new Map<Value, ort.Tensor[]>(values.map((v) => [v, []]));
  await forEachCapture(model, feedList, values, (captured) => {
    for (const v of values) {
      const t = captured.get(v);
      if (t) out.get(v)!.push(t);
    }
  }, opts);
  return out;
}
