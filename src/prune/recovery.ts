// Training-free recovery on calibration data. (1) Least-squares reconstruction: for each layer
// whose input channels were pruned, solve min ‖X' W' + b − Y‖² + λ‖W' − W‖² where Y is the
// UNPRUNED layer's output and X' the pruned model's input (im2col patches at sampled positions
// for a Conv), so the layer again computes what it computed before. (2) BatchNorm statistics
// re-estimation from the pruned model's own pre-BN activations. Layers are processed in graph
// order, each on the current (already recovered upstream) model.
import type { Model, Node, Value } from '../onnx/ir.js';
import { addConstant, getConstant, setConstant } from '../onnx/constants.js';
import { elementCount, readFloat32, tensorDims } from '../onnx/tensor-data.js';
import { isWeightFloatType, makeFloatTensor, type WeightFloatType } from '../onnx/float-weights.js';
import { weightLayerOf } from '../onnx/weight-layers.js';
import { forEachCapture } from '../runtime/capture.js';
import { seededRandom, tensorToFloat32, type Feeds } from '../runtime/ort.js';
import { solveRidge } from '../linalg/index.js';
import { NormalEquations } from '../runtime/normal-equations.js';

/** Kernel, strides, leading pads and dilations per spatial axis (1-D, 2-D and 3-D convs alike). */
interface ConvGeometry {
  kernel: number[];
  strides: number[];
  pads: number[];
  dilations: number[];
}

/** Sampled outputs of the unpruned layer: rows of Y at (batch, item, flat output position). */
export interface LayerTarget {
  node: Node;
  positions: Int32Array; // 3 ints per row: batch index, item in the batch, flat spatial position
  /** Output spatial dims (empty for Gemm). */
  spatial: number[];
  rows: number;
  cout: number;
  y: Float32Array; // rows × cout
}

/** Conv (1-D/2-D/3-D, explicit padding, group 1) and Gemm (alpha = beta = 1, no transA) with float weights (refit in float32, written back in their type) can be reconstructed. */
export function reconstructible(node: Node): boolean {
  const layer = weightLayerOf(node);
  if (!layer || ![layer.weight, layer.bias].every((v) => !v || isWeightFloatType(getConstant(v)?.dataType))) return false;
  const w = getConstant(layer.weight);
  if (node.opType === 'Conv') {
    const autoPad = node.getString('auto_pad', 'NOTSET');
    const rank = w ? tensorDims(w).length : 0;
    return !!w && rank >= 3 && rank <= 5 && layer.groups === 1 && (autoPad === 'NOTSET' || autoPad === 'VALID');
  }
  if (node.opType === 'Gemm') {
    const alpha = Number(node.getAttr('alpha', 1));
    const beta = Number(node.getAttr('beta', 1));
    return !!w && alpha === 1 && beta === 1 && !layer.inputTransposed;
  }
  return false;
}

function geometry(node: Node): ConvGeometry {
  const kernel = tensorDims(getConstant(weightLayerOf(node)!.weight)!).slice(2);
  const r = kernel.length;
  const ones = Array(r).fill(1);
  const pads = node.getString('auto_pad', 'NOTSET') === 'VALID' ? Array(2 * r).fill(0) : node.getInts('pads', Array(2 * r).fill(0));
  return { kernel, strides: node.getInts('strides', ones), pads: pads.slice(0, r), dilations: node.getInts('dilations', ones) };
}

/** Row-major coordinates of a flat index. */
function unflatten(index: number, dims: readonly number[], out: number[]): void {
  for (let i = dims.length - 1; i >= 0; i--) {
    out[i] = index % dims[i]!;
    index = Math.floor(index / dims[i]!);
  }
}

/** Features of a layer's least-squares refit (inputs × kernel taps, plus the bias). */
export function refitFeatures(node: Node): number {
  const layer = weightLayerOf(node)!;
  const w = tensorDims(getConstant(layer.weight)!);
  // the weights of one output channel
  return elementCount(w) / w[layer.outAxis!]! + 1;
}

/**
 * Captures the unpruned layers' outputs at sampled positions: `rowsFor(node)` rows each at most
 * (fewer when the samples hold fewer output positions).
 */
export async function captureTargets(model: Model, samples: Feeds[], nodes: Node[], rowsFor: (node: Node) => number, seed = 7): Promise<Map<Node, LayerTarget>> {
  const out = new Map<Node, LayerTarget>();
  const perBatchOf = new Map(nodes.map((n) => [n, Math.max(1, Math.ceil(rowsFor(n) / Math.max(1, samples.length)))]));
  // a stream per layer: which rows it samples must not depend on how the capture groups the layers
  const rands = new Map(nodes.map((n, i) => [n, seededRandom(seed + i)]));
  // rows go straight into typed arrays sized for the most a layer can take: number arrays cost 8
  // bytes a float and grow by copying, and ResNet-50's 53 refit layers take ~93M floats
  const acc = new Map<Node, { pos: Int32Array; y: Float32Array; rows: number; cout: number; spatial: number[] }>();
  await forEachCapture(model, samples, nodes.map((n) => n.outputs[0]!), (captured, b) => {
    for (const node of nodes) {
      const t = captured.get(node.outputs[0]!);
      if (!t) continue;
      const dims = t.dims.map(Number);
      const x = tensorToFloat32(t);
      const n = dims[0]!;
      const cout = dims[1]!;
      const perBatch = perBatchOf.get(node)!;
      let a = acc.get(node);
      if (!a) acc.set(node, (a = { pos: new Int32Array(3 * perBatch * samples.length), y: new Float32Array(perBatch * samples.length * cout), rows: 0, cout, spatial: dims.slice(2) }));
      const spatial = dims.slice(2).reduce((p, q) => p * q, 1);
      const take = Math.min(perBatch, n * spatial);
      const rand = rands.get(node)!;
      for (let r = 0; r < take; r++) {
        const idx = take === n * spatial ? r : Math.floor(rand() * n * spatial);
        const item = Math.floor(idx / spatial);
        const sp = idx % spatial;
        a.pos[3 * a.rows] = b;
        a.pos[3 * a.rows + 1] = item;
        a.pos[3 * a.rows + 2] = sp;
        for (let c = 0; c < cout; c++) a.y[a.rows * cout + c] = x[(item * cout + c) * spatial + sp]!;
        a.rows++;
      }
    }
  });
  for (const [node, a] of acc) {
    const full = a.rows * a.cout === a.y.length;
    out.set(node, { node, positions: full ? a.pos : a.pos.slice(0, 3 * a.rows), spatial: a.spatial, rows: a.rows, cout: a.cout, y: full ? a.y : a.y.slice(0, a.rows * a.cout) });
  }
  return out;
}

export interface ReconstructionResult {
  node: Node;
  rows: number;
  features: number;
  /** Relative error ‖XW−Y‖/‖Y‖ before and after the solve, on up to ERROR_ROWS of the sampled rows, evenly spread. */
  errorBefore: number;
  errorAfter: number;
}

/**
 * Re-fits one layer of the (pruned) model to its unpruned outputs. `keptOut` maps the layer's
 * current output channels to the target's channels (null: all).
 */
export async function reconstructLayer(model: Model, samples: Feeds[], target: LayerTarget, keptOut: number[] | null, ridge: number): Promise<ReconstructionResult> {
  const node = target.node;
  const layer = weightLayerOf(node)!;
  const wv = layer.weight!;
  const wt = getConstant(wv)!;
  const wdims = tensorDims(wt);
  const w = readFloat32(wt);
  const dtype = wt.dataType as WeightFloatType;
  const m = wdims[layer.outAxis!]!;
  const cin = wdims[layer.inAxis!]!;
  // stored outputs first: Conv [m, cin, k…], Gemm with transB [m, cin]; else Gemm [cin, m]
  const outputsFirst = layer.outAxis === 0;
  const g = layer.layout === 'conv' ? geometry(node) : undefined;
  const k = g ? g.kernel.reduce((a, b) => a * b, 1) : 1;
  const d = cin * k; // features without the bias
  const D = d + 1;
  const bias = layer.bias ? readFloat32(getConstant(layer.bias)!) : undefined;
  // current weights as a D×m matrix (row = feature, column = output), the ridge prior
  const W0 = new Float64Array(D * m);
  for (let o = 0; o < m; o++) {
    for (let f = 0; f < d; f++) W0[f * m + o] = outputsFirst ? w[o * d + f]! : w[f * m + o]!;
    W0[d * m + o] = bias ? (bias.length === 1 ? bias[0]! : bias[o]!) : 0;
  }
  const outIdx = keptOut ?? Array.from({ length: m }, (_, i) => i);
  // the relative errors before and after are diagnostics: measured on an even spread of rows
  const errorStride = Math.max(1, Math.ceil(target.rows / ERROR_ROWS));
  const errorRows: { features: Float64Array; y: Float64Array }[] = [];
  const rowsByBatch = new Map<number, number[]>();
  for (let r = 0; r < target.rows; r++) {
    const b = target.positions[r * 3]!;
    const list = rowsByBatch.get(b);
    if (list) list.push(r);
    else rowsByBatch.set(b, [r]);
  }
  const inputValue = node.inputs[0]!;
  const normal = await NormalEquations.open(D, m);
  let G: Float64Array;
  let C: Float64Array;
  try {
    await forEachCapture(model, samples, [inputValue], async (captured, b) => {
      const rowsHere = rowsByBatch.get(b);
      if (!rowsHere) return;
      const t = captured.get(inputValue)!;
      const dims = t.dims.map(Number);
      const x = tensorToFloat32(t);
      const R = rowsHere.length;
      const feats = new Float64Array(R * D);
      const ys = new Float64Array(R * m);
      const inSpatial = dims.slice(2);
      const inSize = inSpatial.reduce((a, b) => a * b, 1);
      const outCoord: number[] = [];
      const kCoord: number[] = [];
      rowsHere.forEach((r, i) => {
        const item = target.positions[r * 3 + 1]!;
        const row = feats.subarray(i * D, (i + 1) * D);
        if (g) {
          unflatten(target.positions[r * 3 + 2]!, target.spatial, outCoord);
          // im2col of one output position: every kernel tap that lands inside the input
          for (let kk = 0; kk < k; kk++) {
            unflatten(kk, g.kernel, kCoord);
            let offset = 0;
            let inside = true;
            for (let a = 0; a < inSpatial.length; a++) {
              const pos = outCoord[a]! * g.strides[a]! - g.pads[a]! + kCoord[a]! * g.dilations[a]!;
              if (pos < 0 || pos >= inSpatial[a]!) {
                inside = false;
                break;
              }
              offset = offset * inSpatial[a]! + pos;
            }
            if (!inside) continue;
            for (let c = 0; c < cin; c++) row[c * k + kk] = x[(item * cin + c) * inSize + offset]!;
          }
        } else {
          for (let c = 0; c < cin; c++) row[c] = x[item * cin + c]!;
        }
        row[d] = 1;
        const yRow = ys.subarray(i * m, (i + 1) * m);
        for (let o = 0; o < m; o++) yRow[o] = target.y[r * target.cout + outIdx[o]!]!;
        if (r % errorStride === 0) errorRows.push({ features: Float64Array.from(row), y: Float64Array.from(yRow) });
      });
      await normal.add(feats, ys, R);
    });
    ({ G, C } = normal);
  } finally {
    await normal.release();
  }
  // λ relative to the mean feature energy; pulls the solution toward the current weights
  let trace = 0;
  for (let i = 0; i < d; i++) trace += G[i * D + i]!;
  const lambda = ridge * (trace / d || 1);
  for (let f = 0; f < d; f++) for (let o = 0; o < m; o++) C[f * m + o]! += lambda * W0[f * m + o]!;
  const X = solveRidge(G, C, D, m, { ridge: lambda, ridgeCount: d });
  const newW = new Float32Array(m * d);
  for (let o = 0; o < m; o++) for (let f = 0; f < d; f++) newW[outputsFirst ? o * d + f : f * m + o] = X[f * m + o]!;
  setConstant(wv, makeFloatTensor(wt.name, dtype, wdims, newW));
  const newB = new Float32Array(m);
  for (let o = 0; o < m; o++) newB[o] = X[d * m + o]!;
  if (layer.bias) {
    const bt = getConstant(layer.bias)!;
    setConstant(layer.bias, makeFloatTensor(bt.name, bt.dataType as WeightFloatType, [m], newB));
  } else {
    node.setInput(layer.biasInput!, addConstant(node.graph, `${wv.name}_bias`, makeFloatTensor('', dtype, [m], newB)));
  }
  return {
    node,
    rows: target.rows,
    features: D,
    errorBefore: relativeError(errorRows, W0, m),
    errorAfter: relativeError(errorRows, X, m),
  };
}

/** Rows the relative errors of a refit are measured on (each costs features × outputs). */
const ERROR_ROWS = 256;

/** ‖XW−Y‖/‖Y‖ over `rows`, W being features × outputs (row = feature); zero features skipped (ReLU inputs, padding taps). */
function relativeError(rows: readonly { features: Float64Array; y: Float64Array }[], W: Float64Array, m: number): number {
  let err = 0;
  let norm = 0;
  const pred = new Float64Array(m);
  for (const { features, y } of rows) {
    pred.fill(0);
    for (let f = 0; f < features.length; f++) {
      const v = features[f]!;
      if (v === 0) continue;
      const base = f * m;
      for (let o = 0; o < m; o++) pred[o]! += v * W[base + o]!;
    }
    for (let o = 0; o < m; o++) {
      err += (pred[o]! - y[o]!) ** 2;
      norm += y[o]! ** 2;
    }
  }
  return Math.sqrt(err / (norm || 1));
}

/** Recomputes a BatchNormalization's running mean and variance from its input on the samples. */
export async function reestimateBatchNorm(model: Model, samples: Feeds[], bn: Node): Promise<boolean> {
  const x: Value = bn.inputs[0]!;
  let sum: Float64Array | undefined;
  let sq: Float64Array | undefined;
  let count = 0;
  await forEachCapture(model, samples, [x], (captured) => {
    const t = captured.get(x)!;
    const dims = t.dims.map(Number);
    const data = tensorToFloat32(t);
    const c = dims[1]!;
    const inner = dims.slice(2).reduce((a, b) => a * b, 1);
    sum ??= new Float64Array(c);
    sq ??= new Float64Array(c);
    for (let n = 0; n < dims[0]!; n++) {
      for (let ch = 0; ch < c; ch++) {
        const base = (n * c + ch) * inner;
        let s = 0;
        let s2 = 0;
        for (let i = 0; i < inner; i++) {
          const v = data[base + i]!;
          s += v;
          s2 += v * v;
        }
        sum[ch]! += s;
        sq[ch]! += s2;
      }
    }
    count += dims[0]! * inner;
  });
  if (!sum || !sq || count === 0) return false;
  const mean = new Float32Array(sum.length);
  const variance = new Float32Array(sum.length);
  for (let ch = 0; ch < sum.length; ch++) {
    const mu = sum[ch]! / count;
    mean[ch] = mu;
    variance[ch] = Math.max(0, sq[ch]! / count - mu * mu);
  }
  const mt = getConstant(bn.inputs[3])!;
  const vt = getConstant(bn.inputs[4])!;
  if (!isWeightFloatType(mt.dataType) || !isWeightFloatType(vt.dataType)) return false;
  setConstant(bn.inputs[3]!, makeFloatTensor(mt.name, mt.dataType, [mean.length], mean));
  setConstant(bn.inputs[4]!, makeFloatTensor(vt.name, vt.dataType, [variance.length], variance));
  return true;
}
