// Layer → chain of smaller layers, for each method. Pure numerics on the layer's weights; the
// graph is not touched here.
import { cpAls, hooi, leadingModeVectors, matrix, randomizedSvd, tensor, transpose, truncatedSvd, type Matrix, type Tensor } from '../linalg/index.js';
import { convGeometry, countWeights, pointwiseStep, type AttrSpec, type ChainStep, type Layer } from './layers.js';
import { rankSelector, roundRank, type RankSpec } from './rank.js';

export interface ChainPlan {
  layer: Layer;
  steps: ChainStep[];
  /** Ranks per decomposed mode (Tucker: [output, input]; SVD and CP: [rank]). */
  ranks: number[];
  paramsBefore: number;
  paramsAfter: number;
  /** Relative Frobenius error of the weight approximation. */
  weightError: number;
}

export interface RankOptions {
  rank: RankSpec;
  roundTo: number;
}

const f32 = (m: Float64Array): Float32Array => Float32Array.from(m);

function layerParams(layer: Layer): number {
  return layer.weight.length + (layer.bias?.data.length ?? 0);
}

/** Singular values of the weight's output (mode 0) and input (mode 1) unfoldings, on demand. */
function modeSpectra(t: Tensor): { out: () => Float64Array; in: () => Float64Array } {
  return { out: () => leadingModeVectors(t, 0, 0).singularValues, in: () => leadingModeVectors(t, 1, 0).singularValues };
}

// ---------------------------------------------------------------- Tucker-2 (Conv 1D/2D/3D)

export function tuckerPlan(layer: Layer, opts: RankOptions & { iterations: number }): ChainPlan | string {
  const [cout, cin, ...kernel] = layer.weightDims as [number, number, ...number[]];
  const K = kernel.reduce((a, b) => a * b, 1);
  const t = tensor(layer.weightDims, layer.weight);
  const selector = rankSelector(opts.rank);
  let [rOut, rIn] = selector.tucker(opts.rank, cout, cin, K, modeSpectra(t));
  rOut = roundRank(rOut, opts.roundTo, cout, selector.rounding);
  rIn = roundRank(rIn, opts.roundTo, cin, selector.rounding);
  const splitOut = rOut < cout;
  const splitIn = rIn < cin;
  if (!splitOut && !splitIn) return `ranks [${rOut}, ${rIn}] equal the channel counts: nothing to factorize`;
  const ranks = new Map<number, number>();
  if (splitOut) ranks.set(0, rOut);
  if (splitIn) ranks.set(1, rIn);
  const dec = hooi(t, ranks, { maxIterations: opts.iterations });
  const geo = convGeometry(layer.node, layer.spatial);
  const spatial = layer.spatial;
  const steps: ChainStep[] = [];
  const bias = layer.bias ?? undefined;
  if (splitIn) {
    const u1 = dec.factors.get(1)!; // cin × rIn → weight [rIn, cin]
    steps.push(pointwiseStep('tucker input projection', rIn, cin, spatial, f32(transpose(u1).data)));
  }
  const coreAttrs: AttrSpec[] = [['kernel_shape', kernel, 'ints'], ['dilations', geo.dilations, 'ints'], ['strides', geo.strides, 'ints']];
  if (geo.autoPad !== 'NOTSET') coreAttrs.push(['auto_pad', geo.autoPad]);
  else coreAttrs.push(['pads', geo.pads, 'ints']);
  steps.push({
    op: 'Conv',
    role: 'tucker core',
    weightDims: dec.core.dims,
    weight: f32(dec.core.data),
    ...(!splitOut && bias ? { bias } : {}),
    attrs: coreAttrs,
    ...(splitOut ? { refitWithLast: true } : {}),
  });
  if (splitOut) {
    const u0 = dec.factors.get(0)!; // cout × rOut = weight [cout, rOut]
    steps.push(pointwiseStep('tucker output projection', cout, rOut, spatial, f32(u0.data), bias));
  }
  return finish(layer, steps, [rOut, rIn], dec.relativeError);
}

function finish(layer: Layer, steps: ChainStep[], ranks: number[], weightError: number): ChainPlan | string {
  const before = layerParams(layer);
  const after = countWeights(steps) + (layer.bias?.data.length ?? 0);
  if (after >= before) return `rank ${ranks.join('×')} does not save parameters (${after} ≥ ${before})`;
  return { layer, steps, ranks, paramsBefore: before, paramsAfter: after, weightError };
}

// ---------------------------------------------------------------- CP (Conv 1D/2D/3D)

export function cpPlan(layer: Layer, opts: RankOptions & { iterations: number; tolerance: number }): ChainPlan | string {
  const [cout, cin, ...kernel] = layer.weightDims as [number, number, ...number[]];
  const t = tensor(layer.weightDims, layer.weight);
  const selector = rankSelector(opts.rank);
  const rank = roundRank(selector.cp(opts.rank, layer.weightDims, modeSpectra(t)), opts.roundTo, Number.MAX_SAFE_INTEGER, selector.rounding);
  if (rank * (cout + cin + kernel.reduce((a, b) => a + b, 0)) >= layerParams(layer)) {
    return `rank ${rank} does not save parameters`;
  }
  const cp = cpAls(t, rank, { maxIterations: opts.iterations, tolerance: opts.tolerance });
  const geo = convGeometry(layer.node, layer.spatial);
  const spatial = layer.spatial;
  const steps: ChainStep[] = [];
  const fin = transpose(cp.factors[1]!); // R × cin
  // an axis with a 1-tap kernel, no stride and no padding is a per-rank scale: fold it into the first pointwise
  const trivial = (a: number) => kernel[a] === 1 && geo.strides[a] === 1 && (geo.autoPad !== 'NOTSET' || (geo.pads[a] === 0 && geo.pads[spatial + a] === 0));
  for (let a = 0; a < spatial; a++) {
    if (!trivial(a)) continue;
    const f = cp.factors[2 + a]!; // 1 × R
    for (let r = 0; r < rank; r++) for (let i = 0; i < cin; i++) fin.data[r * cin + i]! *= f.data[r]!;
  }
  steps.push(pointwiseStep('cp input projection', rank, cin, spatial, f32(fin.data)));
  for (let a = 0; a < spatial; a++) {
    if (trivial(a)) continue;
    const k = kernel[a]!;
    const f = cp.factors[2 + a]!; // k × R
    const shape = new Array(spatial).fill(1);
    shape[a] = k;
    const w = new Float32Array(rank * k);
    for (let r = 0; r < rank; r++) for (let i = 0; i < k; i++) w[r * k + i] = f.data[i * rank + r]!;
    const one = new Array(spatial).fill(1);
    const strides = one.map((_, i) => (i === a ? geo.strides[a]! : 1));
    const dilations = one.map((_, i) => (i === a ? geo.dilations[a]! : 1));
    const pads = new Array(2 * spatial).fill(0);
    if (geo.autoPad === 'NOTSET') {
      pads[a] = geo.pads[a]!;
      pads[spatial + a] = geo.pads[spatial + a]!;
    }
    steps.push({
      op: 'Conv',
      role: `cp depthwise axis ${a}`,
      weightDims: [rank, 1, ...shape],
      weight: w,
      attrs: [['kernel_shape', shape, 'ints'], ['group', rank, 'int'], ['strides', strides, 'ints'], ['dilations', dilations, 'ints'], ['pads', pads, 'ints']],
    });
  }
  const fout = cp.factors[0]!; // cout × R (weights folded in)
  steps.push(pointwiseStep('cp output projection', cout, rank, spatial, f32(fout.data), layer.bias ?? undefined));
  return finish(layer, steps, [rank], cp.relativeError);
}

// ---------------------------------------------------------------- SVD (MatMul, Gemm, Conv 1×1)

/** The layer's weight as the matrix that maps inputs to outputs, K (in) × N (out). */
function inOutMatrix(layer: Layer): Matrix {
  const d = layer.weightDims;
  const m = matrix(d[0]!, d[1]!, layer.weight);
  // stored outputs first (Conv [Cout, Cin, 1…], Gemm with transB [N, K]): transpose
  return layer.weightLayer.outAxis === 0 ? transpose(m) : m;
}

export function svdPlan(layer: Layer, opts: RankOptions): ChainPlan | string {
  const w = inOutMatrix(layer);
  const K = w.rows;
  const N = w.cols;
  const small = Math.min(K, N);
  const selector = rankSelector(opts.rank);
  // the full SVD only when the selector reads the spectrum; the factors are then cut from it
  let full: ReturnType<typeof truncatedSvd> | undefined;
  const spectrum = () => (full ??= truncatedSvd(w, small)).all;
  const r = roundRank(selector.svd(opts.rank, K, N, spectrum), opts.roundTo, small, selector.rounding);
  if (r * (K + N) >= K * N) return `rank ${r} does not save parameters (${r * (K + N)} ≥ ${K * N})`;
  const svd = full
    ? { u: sliceColumns(full.u, r), s: full.s.slice(0, r), v: sliceColumns(full.v, r) }
    : small > 768 && r < small / 4
      ? randomizedSvd(w, r)
      : truncatedSvd(w, r);
  // W ≈ (U√Σ)(√ΣVᵀ): first factor K×r, second r×N
  const first = new Float32Array(K * r);
  const second = new Float32Array(r * N);
  let kept = 0;
  for (let j = 0; j < r; j++) {
    const root = Math.sqrt(svd.s[j]!);
    kept += svd.s[j]! ** 2;
    for (let i = 0; i < K; i++) first[i * r + j] = svd.u.data[i * r + j]! * root;
    for (let i = 0; i < N; i++) second[j * N + i] = svd.v.data[i * r + j]! * root;
  }
  let total = 0;
  for (let i = 0; i < w.data.length; i++) total += w.data[i]! ** 2;
  const weightError = total > 0 ? Math.sqrt(Math.max(0, total - kept) / total) : 0;
  const steps: ChainStep[] = [];
  if (layer.op === 'MatMul') {
    steps.push({ op: 'MatMul', role: 'svd U√Σ', weightDims: [K, r], weight: first, attrs: [] });
    steps.push({ op: 'MatMul', role: 'svd √ΣVᵀ', weightDims: [r, N], weight: second, attrs: [], refitAxis: -1 });
  } else if (layer.op === 'Gemm') {
    const n = layer.node;
    steps.push({ op: 'Gemm', role: 'svd U√Σ', weightDims: [K, r], weight: first, attrs: [['transA', n.getInt('transA', 0), 'int']] });
    const attrs: AttrSpec[] = [['alpha', n.getAttr('alpha', 1) as number, 'float'], ['beta', n.getAttr('beta', 1) as number, 'float']];
    steps.push({ op: 'Gemm', role: 'svd √ΣVᵀ', weightDims: [r, N], weight: second, ...(layer.bias ? { bias: layer.bias } : {}), attrs });
  } else {
    // Conv 1×1: first conv [r, Cin] = (U√Σ)ᵀ carries stride and pads, second [Cout, r] = (√ΣVᵀ)ᵀ adds the bias
    const spatial = layer.spatial;
    const geo = convGeometry(layer.node, spatial);
    const a = pointwiseStep('svd input projection', r, K, spatial, f32(transpose(matrix(K, r, first)).data));
    delete a.refitAxis;
    a.attrs.push(['strides', geo.strides, 'ints'], ['dilations', geo.dilations, 'ints']);
    if (geo.autoPad !== 'NOTSET') a.attrs.push(['auto_pad', geo.autoPad]);
    else a.attrs.push(['pads', geo.pads, 'ints']);
    steps.push(a);
    steps.push(pointwiseStep('svd output projection', N, r, spatial, f32(transpose(matrix(r, N, second)).data), layer.bias ?? undefined));
  }
  return finish(layer, steps, [r], weightError);
}

function sliceColumns(m: Matrix, k: number): Matrix {
  const out = matrix(m.rows, k);
  for (let i = 0; i < m.rows; i++) for (let j = 0; j < k; j++) out.data[i * k + j] = m.data[i * m.cols + j]!;
  return out;
}
