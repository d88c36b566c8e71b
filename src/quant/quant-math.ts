// Quantization arithmetic: pure functions over typed arrays (no IR, no onnxruntime).

export type ActivationType = 'uint8' | 'int8';

export interface QuantParams {
  scale: number;
  zeroPoint: number;
}

export function qRange(type: ActivationType): [number, number] {
  return type === 'uint8' ? [0, 255] : [-128, 127];
}

/**
 * Scale and zero point for an activation range. The range always contains 0 so that zero (padding,
 * ReLU floor) is exact; symmetric ranges centre the zero point.
 */
export function activationParams(min: number, max: number, type: ActivationType, symmetric: boolean): QuantParams {
  const [qmin, qmax] = qRange(type);
  let lo = Math.min(min, 0);
  let hi = Math.max(max, 0);
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) throw new Error(`non-finite range [${min}, ${max}]`);
  if (symmetric) {
    const a = Math.max(-lo, hi);
    lo = -a;
    hi = a;
  }
  if (hi - lo < 1e-12) return { scale: 1, zeroPoint: type === 'uint8' ? (symmetric ? 128 : 0) : 0 };
  if (symmetric) {
    const scale = (2 * hi) / (qmax - qmin);
    return { scale, zeroPoint: type === 'uint8' ? 128 : 0 };
  }
  const scale = (hi - lo) / (qmax - qmin);
  const zeroPoint = Math.min(qmax, Math.max(qmin, Math.round(qmin - lo / scale)));
  return { scale, zeroPoint };
}

export interface WeightQuantization {
  /** int8 values, same layout as the float weights. */
  q: Int8Array;
  /** One scale per channel along `axis` (one value when per-tensor). */
  scales: Float32Array;
}

/**
 * Symmetric int8 weights (zero point 0), per channel along `axis` of a tensor of shape `dims`, or
 * per tensor. `qmax` 127 is the full range; 63 ("reduce range", 7 bits) keeps u8×s8 products of
 * pairs of inputs inside int16, which AVX2 without VNNI needs (vpmaddubsw saturates otherwise).
 */
export function quantizeWeightsSymmetric(w: Float32Array, dims: readonly number[], axis: number | null, qmax: number): WeightQuantization {
  const channels = axis === null ? 1 : dims[axis]!;
  const inner = axis === null ? 1 : dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const chanOf = (i: number) => (axis === null ? 0 : Math.floor(i / inner) % channels);
  const absmax = new Float64Array(channels);
  for (let i = 0; i < w.length; i++) {
    const c = chanOf(i);
    const a = Math.abs(w[i]!);
    if (a > absmax[c]!) absmax[c] = a;
  }
  const scales = new Float32Array(channels);
  for (let c = 0; c < channels; c++) scales[c] = absmax[c]! > 0 ? absmax[c]! / qmax : 1;
  const q = new Int8Array(w.length);
  for (let i = 0; i < w.length; i++) {
    const s = scales[chanOf(i)]!;
    q[i] = Math.max(-qmax, Math.min(qmax, Math.round(w[i]! / s)));
  }
  return { q, scales };
}

/** The float values symmetric weights stand for: q × scale of their channel along `axis` (or the one scale). */
export function dequantizeWeights(wq: WeightQuantization, dims: readonly number[], axis: number | null): Float32Array {
  const channels = axis === null ? 1 : dims[axis]!;
  const inner = axis === null ? 1 : dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const out = new Float32Array(wq.q.length);
  for (let i = 0; i < out.length; i++) out[i] = wq.q[i]! * wq.scales[axis === null ? 0 : Math.floor(i / inner) % channels]!;
  return out;
}

/** Bias as int32 in the accumulator's scale (input scale × weight scale per output channel). */
export function quantizeBias(b: Float32Array, inputScale: number, weightScales: Float32Array): { q: Int32Array; scales: Float32Array } {
  const scales = new Float32Array(b.length);
  const q = new Int32Array(b.length);
  for (let c = 0; c < b.length; c++) {
    const s = inputScale * weightScales[weightScales.length === 1 ? 0 : c]!;
    scales[c] = s;
    q[c] = Math.max(-2147483648, Math.min(2147483647, Math.round(b[c]! / s)));
  }
  return { q, scales };
}

/** Fake-quantizes values with given params (round, clamp, rescale): what a Q→DQ pair computes. */
export function fakeQuantize(x: Float32Array, p: QuantParams, type: ActivationType): Float32Array {
  const [qmin, qmax] = qRange(type);
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const q = Math.max(qmin, Math.min(qmax, Math.round(x[i]! / p.scale) + p.zeroPoint));
    out[i] = (q - p.zeroPoint) * p.scale;
  }
  return out;
}
