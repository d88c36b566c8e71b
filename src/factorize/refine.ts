// Data-aware refinement: the last node of every factorized chain is refitted by least squares so
// that, on calibration data, it maps the features it actually receives (captured in the factorized
// model) onto the original layer's outputs (captured in the original model). Errors of the earlier
// layers are compensated too, as the features come from the factorized network. A Tucker chain's
// core is refit with its last node: the pair is the best rank-R map from the core's input patches
// (reduced-rank regression), which a fixed core from the weights alone cannot reach. No training.
import { accumulateCross, accumulateGram, mirrorUpper, reducedRankRegression, solveRidge } from '../linalg/index.js';
import { addConstant, getConstant, setConstant } from '../onnx/constants.js';
import type { Model, Node, Value } from '../onnx/ir.js';
import { weightLayerOf } from '../onnx/weight-layers.js';
import { tensorDims } from '../onnx/tensor-data.js';
import { makeFloatTensor, type WeightFloatType } from '../onnx/float-weights.js';
import { FidelityAccumulator, type Fidelity } from '../metrics/fidelity.js';
import { createSession, createSessionForValues, tensorToFloat32, type Feeds } from '../runtime/ort.js';

export interface RefitTarget {
  /** The chain's last node (Conv 1×1 with weight [Cout, R, 1…] or MatMul with weight [R, N]). */
  node: Node;
  /** Axis of the node input holding the R features (1 for Conv, -1 for MatMul). */
  axis: number;
  /** The layer's output value in the factorized model (named as in the original). */
  output: Value;
  /** The same layer's output in the original model: what the refit aims at. */
  reference: Value;
  /**
   * Tucker: the spatial core Conv feeding `node`. The core and `node` are then refit together, as the
   * best rank-R map from the core's input patches to the reference (reduced-rank regression), where
   * its geometry allows (2-D, explicit pads, one group, patches of at most JOINT_MAX_FEATURES).
   */
  core?: Node;
}

/** Patch length (input channels × kernel taps) above which the joint refit costs too much; the last factor alone is refit. */
export const JOINT_MAX_FEATURES = 1152;
/** Output positions sampled for a joint refit (every batch gives its share). */
const JOINT_MAX_ROWS = 8192;

/** A core Conv's patch: input channels, kernel, strides, dilations, leading pads. */
interface CoreGeometry {
  rIn: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  dh: number;
  dw: number;
  top: number;
  left: number;
}

/** The core's patch geometry when a joint refit can read it, else null. */
function coreGeometry(core: Node): CoreGeometry | null {
  const w = core.inputs[1] ? getConstant(core.inputs[1]) : undefined;
  const dims = w ? tensorDims(w) : [];
  if (dims.length !== 4 || core.getInt('group', 1) !== 1 || core.getString('auto_pad', 'NOTSET') !== 'NOTSET' || core.inputs[2]) return null;
  const [, rIn, kh, kw] = dims as [number, number, number, number];
  if (rIn * kh * kw > JOINT_MAX_FEATURES) return null;
  const [sh, sw] = core.getInts('strides', [1, 1]) as [number, number];
  const [dh, dw] = core.getInts('dilations', [1, 1]) as [number, number];
  const [top, left] = core.getInts('pads', [0, 0, 0, 0]) as [number, number];
  return { rIn, kh, kw, sh, sw, dh, dw, top, left };
}

/** Sums of a joint refit: patches of the core's input against the reference output, at sampled positions. */
class PatchEquations {
  readonly gram: Float64Array;
  readonly cross: Float64Array;
  readonly zSum: Float64Array;
  readonly ySum: Float64Array;
  rows = 0;
  constructor(readonly geo: CoreGeometry, readonly features: number, readonly targets: number) {
    this.gram = new Float64Array(features * features);
    this.cross = new Float64Array(features * targets);
    this.zSum = new Float64Array(features);
    this.ySum = new Float64Array(targets);
  }

  /** z: the core's input [N, rIn, H, W]; y: the reference [N, T, Ho, Wo]; about `want` positions, evenly spread. */
  add(z: Float32Array, zDims: readonly number[], y: Float32Array, yDims: readonly number[], want: number): void {
    const { rIn, kh, kw, sh, sw, dh, dw, top, left } = this.geo;
    const [N, , H, W] = zDims as [number, number, number, number];
    const [, T, Ho, Wo] = yDims as [number, number, number, number];
    const positions = N * Ho * Wo;
    const stride = Math.max(1, Math.floor(positions / Math.max(1, want)));
    const F = this.features;
    const block = 64;
    const x = new Float64Array(F * block);
    const ys: Float64Array[] = [];
    let filled = 0;
    const flush = () => {
      if (filled === 0) return;
      // feature-major block for the Gram (x[k·block + s]); short blocks are zero-padded, which adds nothing
      accumulateGram(this.gram, x, F, block);
      const f = new Float64Array(F);
      for (let s = 0; s < filled; s++) {
        for (let k = 0; k < F; k++) f[k] = x[k * block + s]!;
        accumulateCross(this.cross, f, ys[s]!, F, T);
      }
      x.fill(0);
      ys.length = 0;
      filled = 0;
    };
    for (let p = Math.floor(stride / 2); p < positions; p += stride) {
      const n = Math.floor(p / (Ho * Wo));
      const oy = Math.floor(p / Wo) % Ho;
      const ox = p % Wo;
      for (let c = 0; c < rIn; c++) {
        for (let i = 0; i < kh; i++) {
          const iy = oy * sh - top + i * dh;
          for (let j = 0; j < kw; j++) {
            const ix = ox * sw - left + j * dw;
            const v = iy >= 0 && iy < H && ix >= 0 && ix < W ? z[((n * rIn + c) * H + iy) * W + ix]! : 0;
            const k = (c * kh + i) * kw + j;
            x[k * block + filled] = v;
            this.zSum[k]! += v;
          }
        }
      }
      const t = new Float64Array(T);
      for (let o = 0; o < T; o++) {
        t[o] = y[((n * T + o) * Ho + oy) * Wo + ox]!;
        this.ySum[o]! += t[o]!;
      }
      ys.push(t);
      this.rows++;
      if (++filled === block) flush();
    }
    flush();
  }
}

/** Normal equations of one least-squares problem, accumulated batch by batch. */
class NormalEquations {
  readonly gram: Float64Array;
  readonly cross: Float64Array;
  constructor(readonly features: number, readonly targets: number) {
    this.gram = new Float64Array(features * features);
    this.cross = new Float64Array(features * targets);
  }
}

/** Views a tensor as [outer, C, inner] around `axis`. */
function around(dims: readonly number[], axis: number): { outer: number; c: number; inner: number } {
  const a = axis < 0 ? dims.length + axis : axis;
  let outer = 1;
  let inner = 1;
  for (let i = 0; i < a; i++) outer *= dims[i]!;
  for (let i = a + 1; i < dims.length; i++) inner *= dims[i]!;
  return { outer, c: dims[a]!, inner };
}

/** Adds one batch: features z (+ a constant 1 when `bias`) against targets y, both [outer, C, inner]. */
function accumulate(eq: NormalEquations, z: Float32Array, zDims: readonly number[], y: Float32Array, yDims: readonly number[], axis: number, bias: boolean): void {
  const zs = around(zDims, axis);
  const ys = around(yDims, axis);
  const F = eq.features;
  const T = eq.targets;
  const fv = new Float64Array(F);
  const tv = new Float64Array(T);
  for (let o = 0; o < zs.outer; o++) {
    for (let p = 0; p < zs.inner; p++) {
      for (let c = 0; c < zs.c; c++) fv[c] = z[(o * zs.c + c) * zs.inner + p]!;
      if (bias) fv[zs.c] = 1;
      for (let c = 0; c < ys.c; c++) tv[c] = y[(o * ys.c + c) * ys.inner + p]!;
      accumulateGram(eq.gram, fv, F);
      accumulateCross(eq.cross, fv, tv, F, T);
    }
  }
}

/** Solution (features × targets, i.e. Wᵀ) of min ‖W f − t‖² + λ‖W‖², λ small relative to the Gram diagonal. */
function solve(eq: NormalEquations): Float64Array {
  mirrorUpper(eq.gram, eq.features);
  return solveRidge(eq.gram, eq.cross, eq.features, eq.targets, { ridge: relativeRidge(eq.gram, eq.features) });
}

/** Every refit's ridge: 1e-6 of the mean diagonal of its Gram matrix (F×F). */
function relativeRidge(gram: Float64Array, F: number): number {
  let trace = 0;
  for (let i = 0; i < F; i++) trace += gram[i * F + i]!;
  return (1e-6 * trace) / F;
}

const unique = (values: Value[]): Value[] => [...new Set(values)];

export interface RefineResult {
  refitted: number;
  /** Of those, chains whose core was refit with the last factor. */
  jointly: number;
  /** Fidelity of the model outputs to the original's on the calibration data, before and after. */
  before: Fidelity;
  after: Fidelity;
}

/**
 * Refits the targets one after the other in graph order: each refit sees the features produced by
 * the already refitted layers before it, so errors do not compound. onnxruntime runs every node of a
 * session, so each refit's two sessions are cut down to what it reads: the front of each network up
 * to the layer (the first refit also computes the outputs, for the fidelity before). The values a
 * refit reads are its sessions' graph outputs, which no onnxruntime fusion removes, so the sessions run
 * fully optimized (about 1.6× less CPU on ResNet-50 than with optimizations off, same refits).
 * @param original the model before the rewrite (passes never change their input)
 */
export async function refineChains(model: Model, original: Model, targets: RefitTarget[], batches: Feeds[], signal?: AbortSignal): Promise<RefineResult> {
  const order = new Map(model.graph.nodes.map((n, i) => [n, i]));
  const sorted = [...targets].sort((a, b) => order.get(a.node)! - order.get(b.node)!);
  let before: Fidelity | undefined;
  const rowsPerBatch = Math.ceil(JOINT_MAX_ROWS / Math.max(1, batches.length));
  let jointly = 0;
  for (const t of sorted) {
    const geo = t.core ? coreGeometry(t.core) : null;
    if (t.core && geo) {
      before = (await refitJointly(model, original, t, t.core, geo, batches, rowsPerBatch, before === undefined, signal)) ?? before;
      jointly++;
      continue;
    }
    const feature = t.node.inputs[0]!;
    const layer = weightLayerOf(t.node)!;
    const wValue = layer.weight!;
    const dims = tensorDims(getConstant(wValue)!);
    const dtype = getConstant(wValue)!.dataType as WeightFloatType; // the refit is written back in the layer's type
    const hasBias = layer.biasInput !== null;
    const R = dims[layer.inAxis!]!;
    const T = dims[layer.outAxis!]!;
    const eq = new NormalEquations(R + (hasBias ? 1 : 0), T);
    const measured = await captureRefitData(model, original, feature, t.reference, batches, before === undefined, (z, zDims, y, yDims) => accumulate(eq, z, zDims, y, yDims, t.axis, hasBias), signal);
    before ??= measured;
    const sol = solve(eq); // features × T
    const weight = new Float32Array(R * T);
    for (let o = 0; o < T; o++) {
      // stored outputs first (Conv [Cout, R, 1…]) or inputs first (MatMul [R, N])
      for (let r = 0; r < R; r++) weight[layer.outAxis === 0 ? o * R + r : r * T + o] = sol[r * T + o]!;
    }
    setConstant(wValue, makeFloatTensor(wValue.name, dtype, dims, weight));
    if (hasBias) writeBias(model, t.node, layer, dtype, Float32Array.from({ length: T }, (_, o) => sol[R * T + o]!));
  }
  return { refitted: sorted.length, jointly, before: before!, after: await fidelityOf(model, original, batches) };
}

/**
 * The core and the last factor of one chain, refit as the best rank-R map from the core's input
 * patches (in the model as refit so far) to the original layer's output; returns the fidelity
 * before any refit when asked to measure it.
 */
async function refitJointly(model: Model, original: Model, t: RefitTarget, core: Node, geo: CoreGeometry, batches: Feeds[], rowsPerBatch: number, measureBefore: boolean, signal?: AbortSignal): Promise<Fidelity | undefined> {
  const feature = core.inputs[0]!;
  const last = weightLayerOf(t.node)!;
  const lastValue = last.weight!;
  const lastDims = tensorDims(getConstant(lastValue)!);
  const dtype = getConstant(lastValue)!.dataType as WeightFloatType;
  const coreValue = core.inputs[1]!;
  const coreDims = tensorDims(getConstant(coreValue)!);
  const R = coreDims[0]!;
  const T = lastDims[0]!;
  const F = geo.rIn * geo.kh * geo.kw;
  const eq = new PatchEquations(geo, F, T);
  const measured = await captureRefitData(model, original, feature, t.reference, batches, measureBefore, (z, zDims, y, yDims) => eq.add(z, zDims, y, yDims, rowsPerBatch), signal);
  mirrorUpper(eq.gram, F);
  const fit = reducedRankRegression(eq.gram, eq.cross, eq.zSum, eq.ySum, eq.rows, F, T, R, { ridge: relativeRidge(eq.gram, F) });
  // core [R, rIn, kh, kw]: output o reads patch feature k with A[k, o]; last [T, R, 1, 1]: B transposed
  const coreW = new Float32Array(R * F);
  for (let o = 0; o < R; o++) for (let k = 0; k < F; k++) coreW[o * F + k] = fit.A[k * R + o]!;
  const lastW = new Float32Array(T * R);
  for (let o = 0; o < T; o++) for (let r = 0; r < R; r++) lastW[o * R + r] = fit.B[r * T + o]!;
  setConstant(coreValue, makeFloatTensor(coreValue.name, getConstant(coreValue)!.dataType as WeightFloatType, coreDims, coreW));
  setConstant(lastValue, makeFloatTensor(lastValue.name, dtype, lastDims, lastW));
  writeBias(model, t.node, last, dtype, Float32Array.from(fit.intercept));
  return measured;
}

/**
 * Runs the calibration batches through both networks, each cut down to what the refit reads, and
 * hands every batch's features (in the model as refit so far) and targets (in the original) to
 * `add`; with `measureBefore`, also the output fidelity of the model against the original.
 */
async function captureRefitData(
  model: Model,
  original: Model,
  feature: Value,
  reference: Value,
  batches: Feeds[],
  measureBefore: boolean,
  add: (z: Float32Array, zDims: readonly number[], y: Float32Array, yDims: readonly number[]) => void,
  signal?: AbortSignal,
): Promise<Fidelity | undefined> {
  const outputs = model.graph.outputs;
  const fid = measureBefore ? new FidelityAccumulator() : null;
  const orig = await createSessionForValues(original, fid ? unique([reference, ...original.graph.outputs]) : [reference]);
  try {
    const fact = await createSessionForValues(model, fid ? unique([feature, ...outputs]) : [feature]);
    try {
      for (const feeds of batches) {
        if (signal?.aborted) throw signal.reason ?? new Error('aborted');
        const ro = await orig.run(feeds);
        const rf = await fact.run(feeds);
        if (fid) for (const v of outputs) fid.add(tensorToFloat32(ro[v.name]!), tensorToFloat32(rf[v.name]!));
        const z = rf[feature.name]!;
        const y = ro[reference.name]!;
        add(tensorToFloat32(z), z.dims, tensorToFloat32(y), y.dims);
      }
    } finally {
      await fact.release();
    }
  } finally {
    await orig.release();
  }
  return fid?.result();
}

/** The refit bias in the layer's type: into its bias constant, or a new one when the node had none. */
function writeBias(model: Model, node: Node, layer: NonNullable<ReturnType<typeof weightLayerOf>>, dtype: WeightFloatType, b: Float32Array): void {
  if (layer.bias) setConstant(layer.bias, makeFloatTensor(layer.bias.name, dtype, [b.length], b));
  else node.setInput(layer.biasInput!, addConstant(model.graph, `${node.name || 'refit'}_b`, makeFloatTensor('', dtype, [b.length], b)));
}

/** Output fidelity of the model against the original on the batches. */
async function fidelityOf(model: Model, original: Model, batches: Feeds[]): Promise<Fidelity> {
  const outputs = model.graph.outputs;
  const after = new FidelityAccumulator();
  const orig = await createSession(original);
  try {
    const check = await createSession(model);
    try {
      for (const feeds of batches) {
        const ro = await orig.run(feeds);
        const rf = await check.run(feeds);
        for (const v of outputs) after.add(tensorToFloat32(ro[v.name]!), tensorToFloat32(rf[v.name]!));
      }
    } finally {
      await check.release();
    }
  } finally {
    await orig.release();
  }
  return after.result();
}
