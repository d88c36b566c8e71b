// The one table of how each op moves channels (like Torch-Pruning's per-op pruners, but over
// ONNX nodes). A rule reads its inputs' channel layouts and either propagates them to its
// outputs, opens a new group (a layer that produces channels), couples groups, or blocks them.
// Ops absent from the table block every group reaching them (dependency-graph.ts does that).
import type { Node } from '../onnx/ir.js';
import { getConstant } from '../onnx/constants.js';
import { readNumbers, tensorDims } from '../onnx/tensor-data.js';
import { weightLayerOf } from '../onnx/weight-layers.js';
import { layoutWidth, type Layout, type RuleContext } from './layout.js';

export type ChannelRule = (node: Node, ctx: RuleContext) => void;

const single = (ctx: RuleContext, node: Node, channels: number, rank: number): Layout => ({
  segments: [{ group: ctx.newGroup(channels, node), length: channels, block: 1 }],
  rank,
});

/** Output 0 has the channels of input 0 (elementwise unary ops, pooling over space). */
const passThrough: ChannelRule = (node, ctx) => {
  const l = ctx.layoutOf(node.inputs[0]);
  if (!l) return;
  if (node.outputs.filter((v) => v && v.consumers.length + (ctx.model.graph.isOutput(v) ? 1 : 0) > 0).length > 1) {
    ctx.blockAllInputs(node, `${node.opType} '${node.name}' has several used outputs`);
    return;
  }
  ctx.setLayout(node.outputs[0], l);
};

/** Input slots that must be scalar constants for the op to stay channel-wise. */
const passThroughWithScalars = (...slots: number[]): ChannelRule => (node, ctx) => {
  for (const s of slots) {
    const v = node.inputs[s];
    if (!v) continue;
    const t = getConstant(v);
    if (!t || tensorDims(t).reduce((a, b) => a * b, 1) !== 1) {
      ctx.blockAllInputs(node, `${node.opType} '${node.name}' input ${s} is not a scalar constant`);
      return;
    }
  }
  passThrough(node, ctx);
};

/** Elementwise ops with broadcasting: every computed input shares the output's channels (residual coupling). */
const elementwise: ChannelRule = (node, ctx) => {
  const computed = node.inputs.filter((v) => v && !getConstant(v));
  const layouts = computed.map((v) => ctx.layoutOf(v));
  const known = layouts.filter((l): l is Layout => !!l);
  if (known.length === 0) return;
  if (known.length < computed.length) {
    ctx.blockAllInputs(node, `${node.opType} '${node.name}' mixes channels with a tensor of unknown channel structure`);
    return;
  }
  const out = known[0]!;
  for (const l of known.slice(1)) if (!ctx.unify(out, l, `${node.opType} '${node.name}' couples tensors of different channel structure`)) return;
  // Constant operands: scalars broadcast; per-channel constants are sliced with the channels.
  node.inputs.forEach((v, i) => {
    const t = getConstant(v);
    if (!v || !t) return;
    const dims = tensorDims(t);
    if (dims.reduce((a, b) => a * b, 1) === 1) return;
    const axis = dims.length - (out.rank - 1); // the channel axis, right-aligned broadcasting
    // fewer dims than [C, …spatial]: the constant is the same for every channel
    if (axis < 0) return;
    if (dims[axis] === 1) return;
    if (dims.slice(axis + 1).some((d) => d !== 1) && out.rank !== 2) {
      ctx.blockAllInputs(node, `${node.opType} '${node.name}' has a constant that varies over space`);
      return;
    }
    ctx.edit(node, i, axis, out, 'param');
  });
  ctx.setLayout(node.outputs[0], out);
};

// The four weight layers: which input holds the weight and the bias and which weight axis carries the
// input and output channels come from WEIGHT_LAYERS; what each op can refuse stays here.
const conv: ChannelRule = (node, ctx) => {
  const layer = weightLayerOf(node)!;
  const inLayout = ctx.layoutOf(node.inputs[0]);
  const w = ctx.constantInput(node, layer.weightInput);
  if (!w) {
    ctx.block(inLayout, `Conv '${node.name}' has a computed weight`);
    return;
  }
  const cout = w.dims[layer.outAxis!]!;
  const rank = w.dims.length;
  if (layer.groups === 1) {
    if (inLayout) ctx.edit(node, layer.weightInput, layer.inAxis!, inLayout, 'in');
    const out = single(ctx, node, cout, rank);
    ctx.edit(node, layer.weightInput, layer.outAxis!, out, 'out');
    if (layer.bias) ctx.edit(node, layer.biasInput!, 0, out, 'param');
    ctx.setLayout(node.outputs[0], out);
    return;
  }
  if (w.dims[layer.inAxis!] === 1 && cout === layer.groups && inLayout) {
    // depthwise: channel c of the output reads only channel c of the input
    ctx.edit(node, layer.weightInput, layer.outAxis!, inLayout, 'param');
    if (layer.bias) ctx.edit(node, layer.biasInput!, 0, inLayout, 'param');
    ctx.depthwise.push(node);
    ctx.setLayout(node.outputs[0], inLayout);
    return;
  }
  ctx.block(inLayout, `grouped Conv '${node.name}' (group=${layer.groups}) is not depthwise`);
};

const convTranspose: ChannelRule = (node, ctx) => {
  const layer = weightLayerOf(node)!;
  const inLayout = ctx.layoutOf(node.inputs[0]);
  const w = ctx.constantInput(node, layer.weightInput);
  if (!w || layer.groups !== 1 || node.getInts('output_shape', []).length > 0) {
    ctx.block(inLayout, `ConvTranspose '${node.name}' has ${!w ? 'a computed weight' : layer.groups !== 1 ? `group=${layer.groups}` : 'an explicit output_shape'}`);
    return;
  }
  if (inLayout) ctx.edit(node, layer.weightInput, layer.inAxis!, inLayout, 'in');
  const out = single(ctx, node, w.dims[layer.outAxis!]!, w.dims.length);
  ctx.edit(node, layer.weightInput, layer.outAxis!, out, 'out');
  if (layer.bias) ctx.edit(node, layer.biasInput!, 0, out, 'param');
  ctx.setLayout(node.outputs[0], out);
};

const gemm: ChannelRule = (node, ctx) => {
  const layer = weightLayerOf(node)!;
  const inLayout = ctx.layoutOf(node.inputs[0]);
  const w = ctx.constantInput(node, layer.weightInput);
  if (!w || layer.inputTransposed) {
    ctx.block(inLayout, `Gemm '${node.name}' has ${w ? 'transA' : 'a computed B'}`);
    return;
  }
  if (inLayout) ctx.edit(node, layer.weightInput, layer.inAxis!, inLayout, 'in');
  const n = w.dims[layer.outAxis!]!;
  const out = single(ctx, node, n, 2);
  ctx.edit(node, layer.weightInput, layer.outAxis!, out, 'out');
  const c = ctx.constantInput(node, layer.biasInput!);
  if (c && c.dims.length >= 1 && c.dims[c.dims.length - 1] === n && n > 1) ctx.edit(node, layer.biasInput!, c.dims.length - 1, out, 'param');
  else if (layer.bias && !(c && c.dims.reduce((a, b) => a * b, 1) === 1)) ctx.block(out, `Gemm '${node.name}' bias does not broadcast per output`);
  ctx.setLayout(node.outputs[0], out);
};

const matMul: ChannelRule = (node, ctx) => {
  const layer = weightLayerOf(node)!;
  const inLayout = ctx.layoutOf(node.inputs[0]);
  const w = ctx.constantInput(node, layer.weightInput);
  if (!w || w.dims.length !== 2 || (inLayout && inLayout.rank !== 2)) {
    ctx.block(inLayout, `MatMul '${node.name}' ${!w || w.dims.length !== 2 ? 'has no constant 2-D weight' : 'multiplies a non-flattened channel tensor'}`);
    return;
  }
  if (ctx.layoutOf(node.inputs[layer.weightInput])) ctx.block(ctx.layoutOf(node.inputs[layer.weightInput]), `MatMul '${node.name}' weight is computed`);
  if (inLayout) ctx.edit(node, layer.weightInput, layer.inAxis!, inLayout, 'in');
  const x = node.inputs[0]!.shape;
  if (!inLayout && (!x || x.length !== 2)) return; // output channels are the last axis: only 2-D inputs are tracked
  const out = single(ctx, node, w.dims[layer.outAxis!]!, 2);
  ctx.edit(node, layer.weightInput, layer.outAxis!, out, 'out');
  ctx.setLayout(node.outputs[0], out);
};

const batchNorm: ChannelRule = (node, ctx) => {
  const l = ctx.layoutOf(node.inputs[0]);
  if (!l) return;
  if (node.outputs.length > 1 && node.outputs.slice(1).some((v) => v)) {
    ctx.block(l, `BatchNormalization '${node.name}' in training mode`);
    return;
  }
  for (let i = 1; i <= 4; i++) ctx.edit(node, i, 0, l, 'param');
  ctx.setLayout(node.outputs[0], l);
};

const instanceNorm: ChannelRule = (node, ctx) => {
  const l = ctx.layoutOf(node.inputs[0]);
  if (!l) return;
  ctx.edit(node, 1, 0, l, 'param');
  ctx.edit(node, 2, 0, l, 'param');
  ctx.setLayout(node.outputs[0], l);
};

const prelu: ChannelRule = elementwise;

const flatten: ChannelRule = (node, ctx) => {
  const l = ctx.layoutOf(node.inputs[0]);
  if (!l) return;
  if (node.getInt('axis', 1) !== 1) {
    ctx.block(l, `Flatten '${node.name}' axis ≠ 1 mixes the batch and channel axes`);
    return;
  }
  let spatial = 1;
  const shape = ctx.shapeOf(node.inputs[0]);
  const producer = node.inputs[0]!.producer;
  const pooled = producer && ['GlobalAveragePool', 'GlobalMaxPool'].includes(producer.opType);
  if (!pooled) {
    const dims = shape?.slice(2);
    if (!dims || dims.some((d) => typeof d !== 'number')) {
      ctx.block(l, `Flatten '${node.name}' input has unknown spatial size`);
      return;
    }
    spatial = (dims as number[]).reduce((a, b) => a * b, 1);
  }
  ctx.setLayout(node.outputs[0], { segments: l.segments.map((s) => ({ ...s, block: s.block * spatial })), rank: 2 });
};

/** Reads an int list given as attribute (old opsets) or constant input (new opsets); null if computed. */
function intsOf(node: Node, attr: string, input: number): number[] | null | undefined {
  const a = node.getAttr(attr);
  if (Array.isArray(a)) return (a as (number | bigint)[]).map(Number);
  const v = node.inputs[input];
  if (!v) return undefined;
  const t = getConstant(v);
  return t ? readNumbers(t) : null;
}

const pad: ChannelRule = (node, ctx) => {
  const l = ctx.layoutOf(node.inputs[0]);
  if (!l) return;
  const pads = intsOf(node, 'pads', 1);
  const axes = intsOf(node, '__none__', 3);
  if (!pads || axes === null || (axes && axes.length > 0)) {
    ctx.block(l, `Pad '${node.name}' pads are computed or axis-selective`);
    return;
  }
  const r = pads.length / 2;
  if (pads[1] !== 0 || pads[1 + r] !== 0) {
    ctx.block(l, `Pad '${node.name}' pads the channel axis`);
    return;
  }
  ctx.setLayout(node.outputs[0], l);
};

const slice: ChannelRule = (node, ctx) => {
  const l = ctx.layoutOf(node.inputs[0]);
  if (!l) return;
  const axes = intsOf(node, 'axes', 3);
  const starts = intsOf(node, 'starts', 1);
  if (axes === null || starts === null || (axes === undefined && (starts?.length ?? 0) > 1) || axes?.some((a) => a === 1 || a === 1 - l.rank)) {
    ctx.block(l, `Slice '${node.name}' may cut the channel axis`);
    return;
  }
  ctx.setLayout(node.outputs[0], l);
};

const resize: ChannelRule = (node, ctx) => {
  const l = ctx.layoutOf(node.inputs[0]);
  if (!l) return;
  const sizesSlot = node.opType === 'Upsample' ? -1 : 3;
  if (sizesSlot > 0 && node.inputs[sizesSlot]) {
    const t = getConstant(node.inputs[sizesSlot]);
    if (!t || tensorDims(t)[0] !== 0) {
      ctx.block(l, `Resize '${node.name}' sets output sizes (channel count fixed in the graph)`);
      return;
    }
  }
  const scalesSlot = node.opType === 'Upsample' ? 1 : 2;
  const scales = node.getAttr('scales') ?? (node.inputs[scalesSlot] ? getConstant(node.inputs[scalesSlot]) : undefined);
  const sc = Array.isArray(scales) ? scales.map(Number) : scales ? readNumbers(scales as Parameters<typeof readNumbers>[0]) : [];
  if (node.inputs[scalesSlot] && !scales) {
    ctx.block(l, `${node.opType} '${node.name}' has computed scales`);
    return;
  }
  if (sc.length >= 2 && sc[1] !== 1) {
    ctx.block(l, `${node.opType} '${node.name}' scales the channel axis`);
    return;
  }
  ctx.setLayout(node.outputs[0], l);
};

const concat: ChannelRule = (node, ctx) => {
  const layouts = node.inputs.map((v) => ctx.layoutOf(v));
  if (layouts.every((l) => !l)) return;
  const rank = layouts.find((l) => l)!.rank;
  let axis = node.getInt('axis', 1);
  if (axis < 0) axis += rank;
  if (layouts.some((l) => !l)) {
    ctx.blockAllInputs(node, `Concat '${node.name}' joins a tensor of unknown channel structure`);
    return;
  }
  if (axis === 1) {
    ctx.setLayout(node.outputs[0], { segments: layouts.flatMap((l) => l!.segments), rank });
    return;
  }
  const out = layouts[0]!;
  for (const l of layouts.slice(1)) if (!ctx.unify(out, l!, `Concat '${node.name}' along axis ${axis} couples channels`)) return;
  ctx.setLayout(node.outputs[0], out);
};

const split: ChannelRule = (node, ctx) => {
  const l = ctx.layoutOf(node.inputs[0]);
  if (!l) return;
  let axis = node.getInt('axis', 0);
  if (axis < 0) axis += l.rank;
  if (axis !== 1) {
    node.outputs.forEach((v) => ctx.setLayout(v, l));
    return;
  }
  // channel split: only along segment boundaries
  const sizes = intsOf(node, 'split', 1);
  const n = node.outputs.length;
  const segs = l.segments;
  const total = segs.reduce((s, x) => s + x.length * x.block, 0);
  const want = sizes ?? (sizes === undefined ? Array(n).fill(total / n) : null);
  if (!want) {
    ctx.block(l, `Split '${node.name}' sizes are computed`);
    return;
  }
  const outs: Layout[] = [];
  let k = 0;
  for (const size of want) {
    const part: Layout = { segments: [], rank: l.rank };
    let acc = 0;
    while (acc < size && k < segs.length) {
      acc += segs[k]!.length * segs[k]!.block;
      part.segments.push(segs[k++]!);
    }
    if (acc !== size) {
      ctx.block(l, `Split '${node.name}' cuts inside a channel group`);
      return;
    }
    outs.push(part);
  }
  if (sizes === null || (node.inputs[1] && node.inputs[1].consumers.length > 1)) {
    ctx.block(l, `Split '${node.name}' sizes are shared with other nodes`);
    return;
  }
  ctx.splits.push({ node, layouts: outs });
  node.outputs.forEach((v, i) => ctx.setLayout(v, outs[i]));
};

const globalPool: ChannelRule = passThrough;

/** Reductions over spatial axes keep the channel axis (ReduceMean over H, W after a conv…). */
const reduce: ChannelRule = (node, ctx) => {
  const l = ctx.layoutOf(node.inputs[0]);
  if (!l) return;
  const axes = intsOf(node, 'axes', 1);
  const norm = axes?.map((a) => (a < 0 ? a + l.rank : a));
  if (!norm || norm.length === 0 || norm.includes(0) || norm.includes(1)) {
    ctx.block(l, `${node.opType} '${node.name}' ${!norm ? 'has computed axes' : norm.length === 0 ? 'reduces every axis' : 'reduces the batch or channel axis'}`);
    return;
  }
  const keep = node.getInt('keepdims', 1) === 1;
  ctx.setLayout(node.outputs[0], keep ? l : { segments: l.segments, rank: l.rank - norm.length });
};

/** Reshape to [N, C·spatial] with a constant shape (a flatten written as Reshape): channel blocks as for Flatten. */
const reshape: ChannelRule = (node, ctx) => {
  const l = ctx.layoutOf(node.inputs[0]);
  if (!l) return;
  const shape = intsOf(node, '__none__', 1);
  const inShape = ctx.shapeOf(node.inputs[0]);
  const spatialDims = inShape?.slice(2);
  const known = spatialDims && spatialDims.every((d) => typeof d === 'number');
  const flatLike = shape && shape.length === 2 && (shape[1] === -1 || (known && l.segments.length > 0 && shape[1] === layoutWidth(l) * (spatialDims as number[]).reduce((a, b) => a * b, 1)));
  if (!flatLike || !known || node.getInt('allowzero', 0) === 1 || (shape[0] !== 0 && shape[0] !== -1 && shape[0] !== inShape?.[0])) {
    ctx.block(l, `Reshape '${node.name}' is not a provable flatten of [N, C, …] (shape ${shape ? `[${shape.join(', ')}]` : 'computed'})`);
    return;
  }
  const spatial = (spatialDims as number[]).reduce((a, b) => a * b, 1);
  ctx.setLayout(node.outputs[0], { segments: l.segments.map((s) => ({ ...s, block: s.block * spatial })), rank: 2 });
};

export const CHANNEL_RULES: Record<string, ChannelRule> = {
  Conv: conv,
  ConvTranspose: convTranspose,
  Gemm: gemm,
  MatMul: matMul,
  BatchNormalization: batchNorm,
  InstanceNormalization: instanceNorm,
  Relu: passThrough,
  LeakyRelu: passThrough,
  Elu: passThrough,
  Selu: passThrough,
  Sigmoid: passThrough,
  HardSigmoid: passThrough,
  HardSwish: passThrough,
  Tanh: passThrough,
  Softplus: passThrough,
  Erf: passThrough,
  Abs: passThrough,
  Neg: passThrough,
  Sqrt: passThrough,
  Exp: passThrough,
  Identity: passThrough,
  Cast: passThrough,
  Dropout: passThrough,
  Clip: passThroughWithScalars(1, 2),
  MaxPool: passThrough,
  AveragePool: passThrough,
  LpPool: passThrough,
  GlobalAveragePool: globalPool,
  GlobalMaxPool: globalPool,
  Add: elementwise,
  Sub: elementwise,
  Mul: elementwise,
  Div: elementwise,
  Max: elementwise,
  Min: elementwise,
  PRelu: prelu,
  Flatten: flatten,
  Pad: pad,
  Slice: slice,
  Resize: resize,
  Upsample: resize,
  Concat: concat,
  Split: split,
  ReduceMean: reduce,
  ReduceMax: reduce,
  ReduceMin: reduce,
  ReduceSum: reduce,
  ReduceL1: reduce,
  ReduceL2: reduce,
  Reshape: reshape,
};
