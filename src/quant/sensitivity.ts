// Per-layer SQNR of a quantized model against its float original, and the end-to-end checks the
// sensitivity loop uses to decide whether more layers must stay float.
import type { Model, Value } from '../onnx/ir.js';
import { encodeModel } from '../onnx/model-io.js';
import { encodeWithOutputs } from '../runtime/capture.js';
import { FidelityAccumulator } from '../metrics/fidelity.js';
import { evaluateModels } from '../eval/evaluate.js';
import { createSession, tensorToFloat32, type Feeds } from '../runtime/ort.js';
import type { EvaluationResult } from '../report/schema.js';

export interface LayerPair {
  key: string;
  floatValue: Value;
  quantValue: Value;
}

/**
 * SQNR (dB) of each pair's quantized value against its float value over all batches; the two
 * models run side by side batch by batch so memory stays bounded by one batch of activations.
 */
export async function layerSqnr(floatModel: Model, quantModel: Model, pairs: LayerPair[], feeds: Feeds[]): Promise<Map<string, number>> {
  const fSession = await createSession(encodeWithOutputs(floatModel, pairs.map((p) => p.floatValue)), { graphOptimizationLevel: 'disabled' });
  const qSession = await createSession(encodeWithOutputs(quantModel, pairs.map((p) => p.quantValue)), { graphOptimizationLevel: 'disabled' });
  const acc = new Map(pairs.map((p) => [p.key, new FidelityAccumulator()]));
  try {
    for (const f of feeds) {
      const fr = await fSession.run(f);
      const qr = await qSession.run(f);
      for (const p of pairs) {
        const a = fr[p.floatValue.name] ?? f[p.floatValue.name];
        const b = qr[p.quantValue.name] ?? f[p.quantValue.name];
        if (a && b) acc.get(p.key)!.add(tensorToFloat32(a), tensorToFloat32(b));
      }
    }
  } finally {
    await fSession.release();
    await qSession.release();
  }
  return new Map([...acc].map(([k, a]) => [k, a.result().sqnrDb]));
}

export interface SensitivityTarget {
  minSqnrDb?: number;
  maxAccuracyDrop?: number;
  maxFidelityDrop?: number;
}

export interface TargetCheck {
  met: boolean;
  /** What was measured, for the report. */
  summary: string;
  outputSqnrDb: number;
  accuracyDrop?: number;
  fidelityDrop?: number;
}

/**
 * Checks a candidate against the float reference:
 * - minSqnrDb: SQNR of every model output ≥ this (dB);
 * - maxAccuracyDrop: top-1 against the labels drops by at most this many percentage points;
 * - maxFidelityDrop: at most this % of samples change their decision vs float (top-1 class for
 *   [N, C] outputs, greedy CTC sequence for [N, T, C] outputs).
 */
export async function checkTarget(
  reference: Uint8Array,
  candidate: Uint8Array,
  feeds: Feeds[],
  target: SensitivityTarget,
  labels?: { labels: ArrayLike<number | bigint>; output?: string },
): Promise<TargetCheck> {
  const ev: EvaluationResult = await evaluateModels(reference, candidate, feeds, labels ? { labels: labels.labels, metrics: ['top1'], ...(labels.output ? { labelOutput: labels.output } : {}) } : {});
  const outputs = Object.values(ev.fidelity);
  const outputSqnrDb = Math.min(...outputs.map((f) => f.sqnrDb));
  const parts = [`output SQNR ${outputSqnrDb.toFixed(1)} dB`];
  let met = true;
  if (target.minSqnrDb !== undefined && !(outputSqnrDb >= target.minSqnrDb)) met = false;
  let accuracyDrop: number | undefined;
  if (ev.task) {
    accuracyDrop = 100 * ((ev.task.reference.top1 ?? 0) - (ev.task.candidate.top1 ?? 0));
    parts.push(`top-1 ${(100 * ev.task.candidate.top1!).toFixed(2)}% (float ${(100 * ev.task.reference.top1!).toFixed(2)}%, drop ${accuracyDrop.toFixed(2)} pt)`);
    if (target.maxAccuracyDrop !== undefined && accuracyDrop > target.maxAccuracyDrop) met = false;
  }
  const agreements = outputs.map((f) => f.sequenceAgreement ?? f.top1Agreement).filter((a): a is number => a !== undefined);
  let fidelityDrop: number | undefined;
  if (agreements.length > 0) {
    fidelityDrop = 100 * (1 - Math.min(...agreements));
    parts.push(`${fidelityDrop.toFixed(2)}% of samples decide differently from float`);
    if (target.maxFidelityDrop !== undefined && fidelityDrop > target.maxFidelityDrop) met = false;
  }
  return { met, summary: parts.join(', '), outputSqnrDb, ...(accuracyDrop !== undefined ? { accuracyDrop } : {}), ...(fidelityDrop !== undefined ? { fidelityDrop } : {}) };
}
