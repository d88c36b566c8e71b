// Bias correction: quantizing a layer's weights shifts the mean of its output (E[(W − Wq)·x] ≠ 0
// when the rounding errors of a channel do not cancel against that channel's typical input).
// Measured on calibration data, per output channel, with the float model's own inputs to each layer
// (so upstream quantization errors do not leak into a layer's correction), and folded into the bias.
//
// measureOutputShift is the analysis: a private copy of the float model gets, next to each target
// node, a twin that reads the same inputs but the dequantized weights; both outputs are captured and
// the per-channel mean of (float − twin) is the shift. applyBiasShift is the graph edit.
import { DataType as DT } from '../onnx/dtypes.js';
import { carryAcross, type Model, type ModelClone, type Node, type Value } from '../onnx/ir.js';
import { addConstant, getConstant } from '../onnx/constants.js';
import { makeTensor, readFloat32, tensorDims } from '../onnx/tensor-data.js';
import { outputChannelAxis, weightLayerOf } from '../onnx/weight-layers.js';
import { forEachCapture } from '../runtime/capture.js';
import { tensorToFloat32, type Feeds } from '../runtime/ort.js';

export interface BiasCorrectionTarget {
  /** A weight layer of the float model (src/onnx/weight-layers.ts) with a constant weight. */
  node: Node;
  /** The weights as the quantized model will compute with them (dequantized), same shape and layout. */
  dequantized: Float32Array;
}

/** Per-channel sums of `x` (shape `dims`) along `axis`, added into `sum` (length dims[axis]); returns the count per channel. */
export function accumulateChannelSums(x: Float32Array, dims: readonly number[], axis: number, sum: Float64Array): number {
  const C = dims[axis]!;
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  for (let i = 0; i < x.length; i++) sum[Math.floor(i / inner) % C]! += x[i]!;
  return x.length / C;
}

/**
 * Mean output shift E[y_float − y_quantized] per output channel of each target, over `feeds`.
 * The model is not changed.
 */
export async function measureOutputShift(model: Model, targets: readonly BiasCorrectionTarget[], feeds: Feeds[], signal?: AbortSignal): Promise<Map<Node, Float32Array>> {
  const { model: copy, nodes } = model.clone();
  const pairs: { target: BiasCorrectionTarget; y: Value; twin: Value }[] = [];
  for (const t of targets) {
    const n = nodes.get(t.node);
    if (n?.graph !== copy.graph) throw new Error(`bias correction: node ${t.node.name} is not in the main graph`);
    const layer = weightLayerOf(n);
    const w = getConstant(layer?.weight);
    if (!layer || !w) throw new Error(`bias correction: ${n.name} has no constant weight`);
    const wq = addConstant(copy.graph, `${layer.weight!.name}_bc_dequantized`, makeTensor('', DT.FLOAT, tensorDims(w), t.dequantized), 'initializer');
    const twinOut = copy.graph.createValue(`${n.outputs[0]!.name}_bc_twin`);
    const inputs = [...n.inputs];
    inputs[layer.weightInput] = wq;
    const twin = copy.graph.addNode(n.opType, inputs, [twinOut], { name: `${n.name || n.opType}_bc_twin`, domain: n.domain });
    for (const a of n.attributes) twin.attributes.push({ proto: a.proto });
    pairs.push({ target: t, y: n.outputs[0]!, twin: twinOut });
  }
  copy.graph.toposort(false);
  // the mean of the difference is the difference of the means
  const means = await channelMeans(copy, pairs.flatMap((p) => [{ value: p.y, opType: p.target.node.opType }, { value: p.twin, opType: p.target.node.opType }]), feeds, signal);
  const out = new Map<Node, Float32Array>();
  for (const p of pairs) {
    const a = means.get(p.y);
    const b = means.get(p.twin);
    if (a && b) out.set(p.target.node, Float32Array.from(a, (x, c) => x - b[c]!));
  }
  return out;
}

/**
 * Adds `shift` (one value per output channel) to the node's bias: its bias input when the op has one
 * (Conv/ConvTranspose B, Gemm's 1-D C; created when absent), else (MatMul) its constant 1-D bias Add
 * when that is the only consumer, otherwise a new Add.
 * The old bias constant is left to its other users. Returns how it was applied.
 */
export function applyBiasShift(node: Node, shift: Float32Array): 'bias' | 'new bias' | 'new Add' {
  const g = node.graph;
  const C = shift.length;
  const base = node.name || node.outputs[0]!.name;
  const plus = (v: Value | null | undefined): Float32Array | undefined => {
    const t = getConstant(v);
    if (!t || t.dataType !== DT.FLOAT || tensorDims(t).length !== 1 || tensorDims(t)[0] !== C) return undefined;
    const b = readFloat32(t);
    return Float32Array.from(b, (x, i) => x + shift[i]!);
  };
  const biasInput = weightLayerOf(node)?.biasInput ?? null;
  if (biasInput !== null) {
    const current = node.inputs[biasInput];
    if (current) {
      const sum = plus(current);
      if (!sum) throw new Error(`bias correction: ${base} has a bias that is not a constant 1-D [${C}] tensor`);
      node.setInput(biasInput, addConstant(g, `${current.name}_corrected`, makeTensor('', DT.FLOAT, [C], sum)));
      return 'bias';
    }
    node.setInput(biasInput, addConstant(g, `${base}_bias_correction`, makeTensor('', DT.FLOAT, [C], shift)));
    return 'new bias';
  }
  const y = node.outputs[0]!;
  if (y.consumers.length === 1 && !g.isOutput(y)) {
    const add = y.consumers[0]!;
    if (add.opType === 'Add' && add.domain === '') {
      const slot = add.inputs[0] === y ? 1 : 0;
      const sum = plus(add.inputs[slot]);
      if (sum) {
        add.setInput(slot, addConstant(g, `${add.inputs[slot]!.name}_corrected`, makeTensor('', DT.FLOAT, [C], sum)));
        return 'bias';
      }
    }
  }
  const raw = g.createValue(`${y.name}_uncorrected`);
  node.setOutput(0, raw);
  const at = g.nodes.indexOf(node) + 1;
  const add = g.addNode('Add', [raw, addConstant(g, `${base}_bias_correction`, makeTensor('', DT.FLOAT, [C], shift))], [], { name: `${base}_bias_correction_Add`, at });
  add.setOutput(0, y);
  return 'new Add';
}

/** Per-channel means of the given outputs of `model` (channels along outputChannelAxis of the op that computes each) over `feeds`. */
export async function channelMeans(model: Model, outputs: readonly { value: Value; opType: string }[], feeds: Feeds[], signal?: AbortSignal): Promise<Map<Value, Float64Array>> {
  const acc = new Map<Value, { sum: Float64Array; count: number }>();
  const opOf = new Map(outputs.map((o) => [o.value, o.opType]));
  await forEachCapture(model, feeds, outputs.map((o) => o.value), (captured) => {
    for (const [v, t] of captured) {
      const op = opOf.get(v);
      if (op === undefined) continue;
      const axis = outputChannelAxis(op, t.dims.length);
      let a = acc.get(v);
      if (!a) acc.set(v, (a = { sum: new Float64Array(t.dims[axis]!), count: 0 }));
      a.count += accumulateChannelSums(tensorToFloat32(t), t.dims, axis, a.sum);
    }
  }, signal ? { signal } : {});
  return new Map([...acc].map(([v, a]) => [v, Float64Array.from(a.sum, (s) => s / a.count)]));
}

/**
 * Empirical bias correction of a statically quantized model: the systematic output shift of each
 * layer, caused by its rounded weights *and* by the quantized activations it reads (clipping, and
 * rounding of the large constant regions images have, e.g. a text line's background, which does
 * not average out), is measured in the quantized model, per output channel.
 *
 * Layer by layer in graph order, each measured with every upstream correction in place: a
 * layer's shift is partly inherited from upstream, so correcting all layers from one measurement
 * overshoots (on PP-OCRv4 rec it took the output from 14.6 dB to 4 dB).
 *
 * `layers` are nodes of `float`, which is never changed: each measurement quantizes a clone of it,
 * and `quantize` rewrites that clone (its maps carry the float model's calibration across) into the
 * quantized model, as the pass will. Returns the shifts to add to each layer's bias
 * (applyBiasShifts), measured with all the returned shifts upstream.
 */
export async function measureQuantizedBiasShifts(
  float: Model,
  layers: readonly Node[],
  quantize: (copy: ModelClone) => void,
  feeds: Feeds[],
  signal?: AbortSignal,
): Promise<Map<Node, Float32Array>> {
  const outputs = layers.map((n) => ({ value: n.outputs[0]!, opType: n.opType }));
  const want = await channelMeans(float, outputs, feeds, signal);
  const shifts = new Map<Node, Float32Array>();
  for (const [k, layer] of layers.entries()) {
    const copy = float.clone();
    const node = copy.nodes.get(layer)!;
    applyBiasShifts(copy.model, carryAcross(shifts, copy.nodes));
    // measured where the layer computes (before a bias Add that applyBiasShift may have put after it)
    const y = node.outputs[0]!;
    quantize(copy);
    const got = (await channelMeans(copy.model, [{ value: y, opType: node.opType }], feeds, signal)).get(y);
    const w = want.get(outputs[k]!.value);
    if (!got || !w || got.length !== w.length) continue;
    shifts.set(layer, Float32Array.from(w, (x, c) => x - got[c]!));
  }
  return shifts;
}

/** Adds each shift to the bias of its node (a node of `model`), except for nodes `skip` names. */
export function applyBiasShifts(model: Model, shifts: ReadonlyMap<Node, Float32Array>, skip: (n: Node) => boolean = () => false): void {
  const targets = [...shifts].map(([node, shift]) => ({ node, shift })).filter((t) => !skip(t.node));
  for (const t of targets) applyBiasShift(t.node, t.shift);
  if (targets.length) {
    model.graph.cleanup(false);
    model.graph.toposort(false);
  }
}
