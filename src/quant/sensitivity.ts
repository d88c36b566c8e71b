// Per-layer SQNR of a quantized model against its float original, and the end-to-end checks the
// sensitivity loop uses to decide whether more layers must stay float.
import type { Model, Node, Value } from '../onnx/ir.js';
import { getConstant } from '../onnx/constants.js';
import { CaptureSession, captureBytes, planCapture } from '../runtime/capture.js';
import { FidelityAccumulator } from '../metrics/fidelity.js';
import { measureAgainstReference } from '../eval/evaluate.js';
import { tensorToFloat32, type Feeds } from '../runtime/ort.js';

export interface LayerPair {
  key: string;
  floatValue: Value;
  quantValue: Value;
}

/**
 * SQNR (dB) of each pair's quantized value against its float value over all batches; the two
 * models run side by side batch by batch, a group of pairs at a time (planCapture, half the
 * budget each), so memory stays bounded by the capture budget.
 */
export async function layerSqnr(floatModel: Model, quantModel: Model, pairs: LayerPair[], feeds: Feeds[]): Promise<Map<string, number>> {
  const acc = new Map(pairs.map((p) => [p.key, new FidelityAccumulator()]));
  const opts = { graphOptimizationLevel: 'disabled' } as const;
  const plan = await planCapture(floatModel, feeds, pairs.map((p) => p.floatValue), { ...opts, budgetBytes: captureBytes() / 2 });
  for (const group of plan.groups) {
    const inGroup = new Set(group);
    const here = pairs.filter((p) => inGroup.has(p.floatValue));
    const fSession = plan.session ?? (await CaptureSession.open(floatModel, group, opts));
    try {
      const qSession = await CaptureSession.open(quantModel, [...new Set(here.map((p) => p.quantValue))], opts);
      try {
        for (const f of feeds) {
          const fr = await fSession.run(f);
          const qr = await qSession.run(f);
          for (const p of here) {
            const a = fr.get(p.floatValue);
            const b = qr.get(p.quantValue);
            if (a && b) acc.get(p.key)!.add(tensorToFloat32(a), tensorToFloat32(b));
          }
        }
      } finally {
        await qSession.release();
      }
    } finally {
      await fSession.release();
    }
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
  const m = await measureAgainstReference(reference, candidate, feeds, labels);
  const outputSqnrDb = m.sqnrDb;
  const parts = [`output SQNR ${outputSqnrDb.toFixed(1)} dB`];
  let met = true;
  if (target.minSqnrDb !== undefined && !(outputSqnrDb >= target.minSqnrDb)) met = false;
  let accuracyDrop: number | undefined;
  if (m.top1) {
    accuracyDrop = 100 * (m.top1.reference - m.top1.candidate);
    parts.push(`top-1 ${(100 * m.top1.candidate).toFixed(2)}% (float ${(100 * m.top1.reference).toFixed(2)}%, drop ${accuracyDrop.toFixed(2)} pt)`);
    if (target.maxAccuracyDrop !== undefined && accuracyDrop > target.maxAccuracyDrop) met = false;
  }
  let fidelityDrop: number | undefined;
  if (m.agreement !== undefined) {
    fidelityDrop = 100 * (1 - m.agreement);
    parts.push(`${fidelityDrop.toFixed(2)}% of samples decide differently from float`);
    if (target.maxFidelityDrop !== undefined && fidelityDrop > target.maxFidelityDrop) met = false;
  }
  return { met, summary: parts.join(', '), outputSqnrDb, ...(accuracyDrop !== undefined ? { accuracyDrop } : {}), ...(fidelityDrop !== undefined ? { fidelityDrop } : {}) };
}

/** Relative noise power of a value: 10^(−SQNR/10). */
const noiseOf = (db: number) => (Number.isFinite(db) ? 10 ** (-db / 10) : 0);

/**
 * The SQNR (dB) each quantized node *adds*: its output's relative noise minus the largest relative
 * noise of the activations it reads, both against the float model, from the same two runs as
 * `layerSqnr`. Absolute per-layer SQNR ranks late layers worst because noise accumulates down the
 * graph; this ranks by what the layer itself (its weights, its output rounding and clipping) adds.
 * `floatOf` maps the quantized model's values to the float model's (the inverse of the clone's
 * value map); values the quantization added have no float twin. Returns +Infinity for a node that
 * adds nothing measurable.
 */
export async function addedSqnr(floatModel: Model, quantModel: Model, nodes: { key: string; node: Node; floatOutput: Value; quantOutput: Value }[], feeds: Feeds[], floatOf: ReadonlyMap<Value, Value>): Promise<{ added: Map<string, number>; absolute: Map<string, number> }> {
  const pairs = new Map<string, LayerPair>();
  const inputsOf = new Map<string, string[]>();
  for (const r of nodes) {
    const fv = floatOf.get(r.floatOutput);
    if (!fv) continue;
    pairs.set(`out:${r.key}`, { key: `out:${r.key}`, floatValue: fv, quantValue: r.quantOutput });
    const ins: string[] = [];
    for (const v of r.node.inputs) {
      if (!v) continue;
      const dq = v.producer;
      // the float value behind a Q→DQ pair; constants (weights, biases) are not activations
      const q = dq?.opType === 'DequantizeLinear' ? dq.inputs[0]?.producer : undefined;
      const original = dq?.opType === 'DequantizeLinear' ? (q?.opType === 'QuantizeLinear' ? q.inputs[0]! : undefined) : getConstant(v) ? undefined : v;
      const fin = original ? floatOf.get(original) : undefined;
      if (!fin) continue;
      const k = `in:${fin.name}`;
      if (!pairs.has(k)) pairs.set(k, { key: k, floatValue: fin, quantValue: v });
      ins.push(k);
    }
    inputsOf.set(r.key, ins);
  }
  const db = await layerSqnr(floatModel, quantModel, [...pairs.values()], feeds);
  const added = new Map<string, number>();
  const absolute = new Map<string, number>();
  for (const r of nodes) {
    const out = db.get(`out:${r.key}`);
    if (out === undefined) continue;
    absolute.set(r.key, out);
    const inNoise = Math.max(0, ...(inputsOf.get(r.key) ?? []).map((k) => noiseOf(db.get(k) ?? Infinity)));
    const d = noiseOf(out) - inNoise;
    added.set(r.key, d > 0 ? -10 * Math.log10(d) : Infinity);
  }
  return { added, absolute };
}

/**
 * Smallest prefix of `ranked` whose exclusion meets the target, by bisection over the prefix length:
 * the longest allowed prefix is probed first (if even that fails the target is out of reach), then
 * 1 + log2(n) probes in all. Each probe is one re-quantization (calibration ranges are reused) and one
 * evaluation, instead of one full step per excluded layer. Assumes more float layers is not worse;
 * the caller confirms the result on all evaluation data.
 */
export async function searchExclusions(ranked: string[], limit: number, passes: (k: number) => Promise<boolean>): Promise<{ k: number; met: boolean; probes: number }> {
  const max = Math.min(limit, ranked.length);
  let probes = 1;
  if (!(await passes(max))) return { k: max, met: false, probes };
  let lo = 0; // known failing length (0: plain int8, checked by the caller)
  let hi = max;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    probes++;
    if (await passes(mid)) hi = mid;
    else lo = mid;
  }
  return { k: hi, met: true, probes };
}
