// Data-aware weight rounding (the GPTQ / Optimal Brain Quantization idea): instead of rounding
// every weight to its nearest int8 level independently, quantize one input feature (column) at a
// time and push each column's rounding error onto the columns not yet quantized, weighted by the
// inverse of the layer's input Gram matrix H = XᵀX. The layer's OUTPUT error ‖X(W − Ŵ)‖ is what
// shrinks, which nearest rounding ignores. Numbers only here; collection of H on calibration data
// is at the bottom.
import type { Model, Node, Value } from '../onnx/ir.js';
import { accumulateGram, inverseUpperCholesky, mirrorUpper } from '../linalg/index.js';
import { getConstant } from '../onnx/constants.js';
import { elementCount, readFloat32, tensorDims } from '../onnx/tensor-data.js';
import { weightLayerOf } from '../onnx/weight-layers.js';
import { forEachCapture } from '../runtime/capture.js';
import { seededRandom, tensorToFloat32, type Feeds } from '../runtime/ort.js';

export interface GptqResult {
  /** int8 levels, rows × d row-major. */
  q: Int8Array;
  /** Relative output error ‖X(W−Ŵ)‖/‖XW‖ on the Gram matrix, with nearest rounding and with this rounding. */
  errorNearest: number;
  errorGptq: number;
}

/**
 * Rounds `w` (rows × d, row-major: one output channel per row) to int8 levels with a fixed scale
 * per row, minimising the output error for inputs with Gram matrix `H` (d × d). `damp` adds that
 * fraction of the mean diagonal to H (numerical stability, standard 1%).
 */
export function gptqRound(w: Float64Array, rows: number, d: number, H: Float64Array, scales: ArrayLike<number>, qmax: number, damp = 0.01): GptqResult {
  const Hd = Float64Array.from(H);
  const W = Float64Array.from(w);
  let mean = 0;
  for (let i = 0; i < d; i++) mean += Hd[i * d + i]!;
  mean = mean / d || 1;
  // features that never fire carry no information: fix them at 0 and keep H invertible
  for (let i = 0; i < d; i++) {
    if (Hd[i * d + i] === 0) {
      Hd[i * d + i] = mean;
      for (let r = 0; r < rows; r++) W[r * d + i] = 0;
    }
  }
  let U: Float64Array | undefined;
  for (let f = damp; !U && f < 1e3; f *= 10) {
    const Hx = Float64Array.from(Hd);
    for (let i = 0; i < d; i++) Hx[i * d + i]! += f * mean;
    U = inverseUpperCholesky(Hx, d);
  }
  const q = new Int8Array(rows * d);
  const quant = (x: number, s: number) => Math.max(-qmax, Math.min(qmax, Math.round(x / s)));
  if (!U) {
    for (let r = 0; r < rows; r++) for (let j = 0; j < d; j++) q[r * d + j] = quant(w[r * d + j]!, scales[r]!);
  } else {
    for (let r = 0; r < rows; r++) {
      const s = scales[r]!;
      const row = W.subarray(r * d, (r + 1) * d);
      for (let j = 0; j < d; j++) {
        const level = quant(row[j]!, s);
        q[r * d + j] = level;
        const err = (row[j]! - level * s) / U[j * d + j]!;
        if (err === 0) continue;
        const uj = j * d;
        for (let k = j + 1; k < d; k++) row[k]! -= err * U[uj + k]!;
      }
    }
  }
  // the report's error on at most 32 rows spread over the layer (a d² product per row)
  const step = Math.max(1, Math.floor(rows / 32));
  const outErr = (levels: (r: number, j: number) => number) => {
    let num = 0;
    let den = 0;
    const e = new Float64Array(d);
    for (let r = 0; r < rows; r += step) {
      for (let j = 0; j < d; j++) e[j] = w[r * d + j]! - levels(r, j) * scales[r]!;
      num += quadratic(H, e, d);
      den += quadratic(H, w.subarray(r * d, (r + 1) * d), d);
    }
    return Math.sqrt(num / (den || 1));
  };
  return {
    q,
    errorNearest: outErr((r, j) => quant(w[r * d + j]!, scales[r]!)),
    errorGptq: outErr((r, j) => q[r * d + j]!),
  };
}

function quadratic(H: Float64Array, x: ArrayLike<number>, d: number): number {
  let s = 0;
  for (let i = 0; i < d; i++) {
    const xi = x[i]!;
    if (xi === 0) continue;
    let t = 0;
    const hi = i * d;
    for (let j = 0; j < d; j++) t += H[hi + j]! * x[j]!;
    s += xi * t;
  }
  return s;
}

// ---- input Gram matrices on calibration data

/** How a layer's weight maps to rows × features, and where its input features come from. */
export interface LayerLayout {
  node: Node;
  /** The node's constant weight. */
  weight: Value;
  /** Features are im2col patches of the input (a convolution); else rows of a matrix product. */
  convolution: boolean;
  /** Groups (Conv `group`; 1 for MatMul/Gemm). Group g owns rows [g·rows/groups, …) and input channels [g·cin/groups, …). */
  groups: number;
  rows: number;
  /** Features per group: input channels per group × kernel taps (or K for MatMul/Gemm). */
  d: number;
  /** The weight as rows × d (row-major, one output channel per row), and int8 levels back to the weight's layout. */
  toRows(w: Float32Array): Float64Array;
  fromRows(q: Int8Array): Int8Array;
}

/** Layout of a Conv (any rank, any group) or a MatMul/Gemm with a constant 2-D weight; undefined otherwise. */
export function layerLayout(node: Node): LayerLayout | undefined {
  const layer = weightLayerOf(node);
  const weight = layer?.weight;
  const wt = getConstant(weight);
  if (!layer || !weight || !wt) return undefined;
  const dims = tensorDims(wt);
  if (layer.layout === 'conv' && dims.length >= 3) {
    // [M, C/group, k…]: one output channel per row already
    const rows = dims[layer.outAxis!]!;
    return { node, weight, convolution: true, groups: layer.groups, rows, d: elementCount(dims) / rows, toRows: (w) => Float64Array.from(w), fromRows: (q) => q };
  }
  if (layer.layout === 'matmul' && dims.length === 2 && !layer.inputTransposed) {
    // rows are the N outputs: stored [K, N] (transposed here) or [N, K] (Gemm transB=1)
    const transposed = layer.outAxis === 1;
    const rows = dims[layer.outAxis!]!;
    const d = dims[layer.inAxis!]!;
    return {
      node,
      weight,
      convolution: false,
      groups: 1,
      rows,
      d,
      toRows: (w) => {
        if (!transposed) return Float64Array.from(w);
        const out = new Float64Array(w.length);
        for (let k = 0; k < d; k++) for (let n = 0; n < rows; n++) out[n * d + k] = w[k * rows + n]!;
        return out;
      },
      fromRows: (q) => {
        if (!transposed) return q;
        const out = new Int8Array(q.length);
        for (let k = 0; k < d; k++) for (let n = 0; n < rows; n++) out[k * rows + n] = q[n * d + k]!;
        return out;
      },
    };
  }
  return undefined;
}

/**
 * Accumulates each layer's input Gram matrix per group (im2col patches for Conv) over the
 * calibration batches, sampling at most `maxRows` input rows per layer.
 */
export async function collectGrams(model: Model, feeds: Feeds[], layers: LayerLayout[], seed = 11): Promise<Map<Node, Float64Array[]>> {
  const grams = new Map(layers.map((l) => [l.node, Array.from({ length: l.groups }, () => new Float64Array(l.d * l.d))]));
  // a stream per layer: which rows it samples must not depend on how the capture groups the layers
  const rands = new Map(layers.map((l, i) => [l.node, seededRandom(seed + i)]));
  // enough rows for a well-conditioned d×d Gram matrix (2·d, damped), within a fixed budget
  const perBatchOf = (l: LayerLayout) => Math.max(1, Math.ceil(Math.min(4096, Math.max(512, 2 * l.d)) / Math.max(1, feeds.length)));
  const inputs = [...new Set(layers.map((l) => l.node.inputs[0]!))];
  await forEachCapture(model, feeds, inputs, (captured) => {
    for (const l of layers) {
      const t = captured.get(l.node.inputs[0]!);
      if (!t) continue;
      const x = tensorToFloat32(t);
      const dims = t.dims.map(Number);
      const G = grams.get(l.node)!;
      const perBatch = perBatchOf(l);
      const rand = rands.get(l.node)!;
      if (l.convolution) convRows(l, x, dims, perBatch, rand, G);
      else {
        const K = l.d;
        const total = x.length / K;
        const take = Math.min(perBatch, total);
        const cols = new Float64Array(K * take); // feature-major: column k holds feature k of every row
        for (let r = 0; r < take; r++) {
          const idx = take === total ? r : Math.floor(rand() * total);
          for (let k = 0; k < K; k++) cols[k * take + r] = x[idx * K + k]!;
        }
        accumulateGram(G[0]!, cols, K, take);
      }
    }
  });
  for (const l of layers) for (const G of grams.get(l.node)!) mirrorUpper(G, l.d);
  return grams;
}

function convRows(l: LayerLayout, x: Float32Array, dims: number[], perBatch: number, rand: () => number, G: Float64Array[]): void {
  const node = l.node;
  const w = tensorDims(getConstant(l.weight)!);
  const kernel = w.slice(2);
  const r = kernel.length;
  const ones = Array(r).fill(1);
  const pads = node.getString('auto_pad', 'NOTSET') === 'VALID' ? Array(2 * r).fill(0) : node.getInts('pads', Array(2 * r).fill(0));
  const strides = node.getInts('strides', ones);
  const dil = node.getInts('dilations', ones);
  const inSpatial = dims.slice(2);
  const outSpatial = inSpatial.map((n, a) => Math.floor((n + pads[a]! + pads[a + r]! - dil[a]! * (kernel[a]! - 1) - 1) / strides[a]!) + 1);
  const outSize = outSpatial.reduce((a, b) => a * b, 1);
  const inSize = inSpatial.reduce((a, b) => a * b, 1);
  const taps = kernel.reduce((a, b) => a * b, 1);
  const cin = dims[1]!;
  const icg = cin / l.groups;
  const total = dims[0]! * outSize;
  const take = Math.min(perBatch, total);
  const blocks = Array.from({ length: l.groups }, () => new Float64Array(l.d * take)); // feature-major per group
  const oc: number[] = [];
  const kc: number[] = [];
  const offsets = new Int32Array(taps);
  for (let s = 0; s < take; s++) {
    const idx = take === total ? s : Math.floor(rand() * total);
    const item = Math.floor(idx / outSize);
    let p = idx % outSize;
    for (let a = r - 1; a >= 0; a--) {
      oc[a] = p % outSpatial[a]!;
      p = Math.floor(p / outSpatial[a]!);
    }
    for (let k = 0; k < taps; k++) {
      let q = k;
      for (let a = r - 1; a >= 0; a--) {
        kc[a] = q % kernel[a]!;
        q = Math.floor(q / kernel[a]!);
      }
      let off = 0;
      for (let a = 0; a < r; a++) {
        const pos = oc[a]! * strides[a]! - pads[a]! + kc[a]! * dil[a]!;
        if (pos < 0 || pos >= inSpatial[a]!) {
          off = -1;
          break;
        }
        off = off * inSpatial[a]! + pos;
      }
      offsets[k] = off;
    }
    for (let g = 0; g < l.groups; g++) {
      const block = blocks[g]!;
      for (let c = 0; c < icg; c++) {
        const base = (item * cin + g * icg + c) * inSize;
        for (let k = 0; k < taps; k++) block[(c * taps + k) * take + s] = offsets[k]! < 0 ? 0 : x[base + offsets[k]!]!;
      }
    }
  }
  for (let g = 0; g < l.groups; g++) accumulateGram(G[g]!, blocks[g]!, l.d, take);
}

/**
 * GPTQ rounding of one layer given its per-group Gram matrices and per-row scales: int8 levels in
 * the weight's own layout, and the output errors (nearest vs GPTQ) for the report.
 */
export function gptqLayer(l: LayerLayout, w: Float32Array, grams: Float64Array[], scales: Float32Array, qmax: number): { q: Int8Array; errorNearest: number; errorGptq: number } {
  const rowsW = l.toRows(w);
  const q = new Int8Array(rowsW.length);
  const rowsPerGroup = l.rows / l.groups;
  let nearest = 0;
  let gptq = 0;
  for (let g = 0; g < l.groups; g++) {
    const from = g * rowsPerGroup * l.d;
    const sub = rowsW.subarray(from, from + rowsPerGroup * l.d);
    const sc = scales.length === 1 ? new Float32Array(rowsPerGroup).fill(scales[0]!) : scales.subarray(g * rowsPerGroup, (g + 1) * rowsPerGroup);
    const res = gptqRound(sub, rowsPerGroup, l.d, grams[g]!, sc, qmax);
    q.set(res.q, from);
    nearest += res.errorNearest ** 2;
    gptq += res.errorGptq ** 2;
  }
  return { q: l.fromRows(q), errorNearest: Math.sqrt(nearest / l.groups), errorGptq: Math.sqrt(gptq / l.groups) };
}

export interface WeightLevels {
  axis: number | null;
  q: Int8Array;
  scales: Float32Array;
}

/**
 * GPTQ levels for every given layer's weight (keyed by the weight value of `model`, as QdqOptions
 * takes them), scales as nearest rounding would choose them (max |w| per channel / qmax).
 */
export async function gptqWeightLevels(
  model: Model,
  feeds: Feeds[],
  layers: { node: Node; axis: number | null }[],
  qmax: number,
  quantizeNearest: (w: Float32Array, dims: number[], axis: number | null) => { scales: Float32Array },
  maxInputs = Infinity,
): Promise<{ levels: Map<Value, WeightLevels>; errors: { node: Node; nearest: number; gptq: number }[]; tooWide: Node[] }> {
  const layouts = new Map<Node, LayerLayout>();
  const seen = new Set<Value>();
  // the Gram matrix and its inverse factor cost d²·rows and d³ per layer: the widest are left to nearest rounding
  const tooWide: Node[] = [];
  for (const { node } of layers) {
    const l = layerLayout(node);
    if (l && l.d > maxInputs) tooWide.push(node);
    if (!l || l.d > maxInputs || seen.has(l.weight)) continue;
    seen.add(l.weight);
    layouts.set(node, l);
  }
  const grams = await collectGrams(model, feeds, [...layouts.values()]);
  const levels = new Map<Value, WeightLevels>();
  const errors: { node: Node; nearest: number; gptq: number }[] = [];
  for (const { node, axis } of layers) {
    const l = layouts.get(node);
    if (!l) continue;
    const wt = getConstant(l.weight)!;
    const w = readFloat32(wt);
    const { scales } = quantizeNearest(w, tensorDims(wt), axis);
    const res = gptqLayer(l, w, grams.get(node)!, scales, qmax);
    levels.set(l.weight, { axis, q: res.q, scales });
    errors.push({ node, nearest: res.errorNearest, gptq: res.errorGptq });
  }
  return { levels, errors, tooWide };
}
