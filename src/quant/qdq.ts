// QDQ rewrite: analyse which nodes and values are quantized (by QDQ_OP_RULES), then insert
// QuantizeLinear→DequantizeLinear pairs on activations and DequantizeLinear on int8/int32 constants.
// onnxruntime then fuses DQ → op → Q into its integer kernels (QLinearConv, QLinearAdd, QGemm…).
import { alreadyQuantizedReason } from '../onnx/quantized-forms.js';
import type { TensorProto } from 'onnx-buf';
import { DataType as DT } from '../onnx/dtypes.js';
import type { Model, Node, Value } from '../onnx/ir.js';
import { addConstant, addDequantizedConstant, DEQUANTIZED_NAMES, DEQUANTIZED_NAMES_NO_ZERO_POINT, getConstant, readFloatConstant } from '../onnx/constants.js';
import { inferElemTypes } from '../onnx/elem-types.js';
import { elementCount, makeTensor, readFloat32, tensorDims } from '../onnx/tensor-data.js';
import { weightLayerOf, type WeightLayer } from '../onnx/weight-layers.js';
import { describeNode } from '../pipeline/pass.js';
import { FUSABLE_ACTIVATIONS, QDQ_KEEP_FLOAT, QDQ_OP_RULES, weightScaleAxis, type QdqOpRule } from './qdq-rules.js';
import { activationParams, quantizeBias, quantizeWeightsSymmetric, type ActivationType, type QuantParams } from './quant-math.js';

export interface QdqOptions {
  activationType: ActivationType;
  activationSymmetric: boolean;
  perChannel: boolean;
  reduceRange: boolean;
  /** Op types to quantize (subset of the rule table). */
  opTypes: string[];
  /**
   * Precomputed int8 levels and scales of weights (by weight value of the model being quantized),
   * e.g. from data-aware rounding; used when the axis matches, nearest rounding otherwise.
   */
  weightLevels?: ReadonlyMap<Value, { axis: number | null; q: Int8Array; scales: Float32Array }>;
  /**
   * Layers kept float (excluded) still store their weights as full-range int8 behind DequantizeLinear
   * ('int8': the file stays small, the layer computes in float32 with the dequantized weights), or
   * keep the float32 weights ('float').
   */
  excludedWeights?: 'int8' | 'float';
}

export interface QuantizedNodeInfo {
  /** Stable key of the node (its name, or op→first output): what exclusion lists name. */
  key: string;
  node: Node;
  opType: string;
  /** The activation absorbed into it, if any (e.g. Relu). */
  fused?: string;
  /** The value downstream consumers read before quantization (the node's or its activation's output). */
  floatOutput: Value;
  /** The value in the quantized model that corresponds to it (after Q→DQ when quantized). */
  quantOutput: Value;
}

export interface QdqResult {
  quantized: QuantizedNodeInfo[];
  skipped: { node: Node; reason: string }[];
  warnings: string[];
  qdqPairs: number;
  /** Excluded layers whose weights are stored int8 (computing in float). */
  weightOnly: number;
}

/** Keys of nodes that `quantizeQdq` would consider (for exclusion lists): rule ops and their fused activations. */
export function nodeKey(n: Node): string {
  return describeNode(n);
}

/** The weight layer of a node whose rule quantizes its weight; null otherwise. */
function quantizedLayer(n: Node, rule: QdqOpRule | undefined): WeightLayer | null {
  return rule?.weight ? weightLayerOf(n) : null;
}

/** Float-only ops an output head passes through on its way back to the layer computing the logits. */
const HEAD_FLOAT_OPS = new Set(['Softmax', 'LogSoftmax']);

/** What quantizeQdq will do, before it rewrites anything: the nodes it quantizes and by which rule. */
export interface QdqPlan {
  rules: Map<Node, QdqOpRule>;
  /** Rule ops named in `exclude`. */
  excludedNodes: Set<Node>;
  skipped: { node: Node; reason: string }[];
  warnings: string[];
  /** Outputs of quantized nodes that stay float (the output head's logits). */
  floatOutputs: Set<Value>;
  /** Per-channel weight scales in effect (asked for, and opset ≥ 13). */
  perChannel: boolean;
  /** The Relu/Clip a quantized node absorbs (no Q/DQ between them), if any. */
  absorbedActivation: (n: Node) => Node | undefined;
  isFloat: (v: Value | null | undefined) => v is Value;
}

/** Analysis only (the model is not changed): which nodes are quantized, which are kept float and why. */
export function planQdq(model: Model, opts: QdqOptions, exclude: ReadonlySet<string>): QdqPlan {
  const g = model.graph;
  const types = inferElemTypes(model);
  const isFloat = (v: Value | null | undefined): v is Value => !!v && types.get(v) === DT.FLOAT;
  const opset = model.opset('') ?? 0;
  const warnings: string[] = [];
  const skipped: { node: Node; reason: string }[] = [];
  if (opset < 10) throw new Error(`opset ${opset}: QuantizeLinear needs opset ≥ 10 (upgrade the model first)`);
  const perChannel = opts.perChannel && opset >= 13;
  if (opts.perChannel && !perChannel) warnings.push(`opset ${opset} < 13: per-channel weight scales need DequantizeLinear-13, weights quantized per tensor`);
  const allowed = new Set(opts.opTypes);

  // ---- analysis 1: which nodes are quantized
  const rules = new Map<Node, QdqOpRule>();
  const excludedNodes = new Set<Node>();
  for (const n of g.nodes) {
    const quantized = alreadyQuantizedReason(n);
    if (quantized) {
      skipped.push({ node: n, reason: quantized });
      continue;
    }
    if (n.domain !== '') continue;
    const rule = QDQ_OP_RULES[n.opType];
    if (!rule) {
      if (QDQ_KEEP_FLOAT[n.opType]) skipped.push({ node: n, reason: QDQ_KEEP_FLOAT[n.opType]! });
      continue;
    }
    if (!allowed.has(n.opType)) continue;
    const layer = quantizedLayer(n, rule);
    if (exclude.has(nodeKey(n))) {
      excludedNodes.add(n);
      const weightOnly = opts.excludedWeights === 'int8' && getConstant(layer?.weight)?.dataType === DT.FLOAT;
      skipped.push({ node: n, reason: `excluded (sensitivity or excludeNodes)${weightOnly ? ': computes in float, weights stored int8' : ''}` });
      continue;
    }
    const why = rule.unsupported?.(n);
    if (why) {
      skipped.push({ node: n, reason: why });
      continue;
    }
    if (!isFloat(n.outputs[0])) continue; // integer / shape arithmetic
    const acts = rule.inputs(n).filter((i) => i !== layer?.weightInput || !getConstant(n.inputs[i]));
    if (acts.some((i) => !isFloat(n.inputs[i]))) {
      skipped.push({ node: n, reason: 'non-float input' });
      continue;
    }
    if (layer && !rule.inputs(n).includes(layer.weightInput) && !getConstant(layer.weight)) {
      skipped.push({ node: n, reason: 'weight is computed at run time' });
      continue;
    }
    rules.set(n, rule);
  }

  // ---- analysis 1b: a Mul/Add by a constant that follows a node computing in float stays float.
  // Quantizing it would put a Q→DQ round trip (rounding, clipping) on a tensor that is computed in
  // float anyway, and split the float chain onnxruntime would fuse: the affine after a HardSwish,
  // the epsilon/γ/β steps of a decomposed LayerNorm. The chain's end is quantized where a quantized
  // consumer reads it. Graph order is topological, so chains are followed in one sweep.
  // the activation a quantized op absorbs (Conv→Relu: no Q/DQ between them), if any
  const absorbedActivation = (n: Node): Node | undefined => {
    if (!rules.get(n)?.fusesActivation) return undefined;
    const y = n.outputs[0]!;
    if (y.consumers.length !== 1 || g.isOutput(y)) return undefined;
    const act = y.consumers[0]!;
    if (!FUSABLE_ACTIVATIONS.has(act.opType) || act.domain !== '' || exclude.has(nodeKey(act))) return undefined;
    if (act.opType === 'Clip' && [1, 2].some((i) => act.inputs[i] && !getConstant(act.inputs[i]))) return undefined;
    return act;
  };
  const computesFloat = (p: Node | null): boolean => {
    if (!p || p.opType === 'Constant' || !isFloat(p.outputs[0])) return false;
    if (rules.has(p)) return false;
    const before = p.inputs[0]?.producer;
    return !(before && absorbedActivation(before) === p);
  };
  for (const n of g.nodes) {
    if ((n.opType !== 'Mul' && n.opType !== 'Add') || !rules.has(n)) continue;
    const [a, b] = [n.inputs[0], n.inputs[1]];
    const computed = a && getConstant(a) ? b : b && getConstant(b) ? a : null;
    if (!computed || !computesFloat(computed.producer)) continue;
    rules.delete(n);
    skipped.push({ node: n, reason: `kept float with ${describeNode(computed.producer!)} (${computed.producer!.opType}, float) before it: no requantization inside a float chain` });
  }

  // ---- analysis 1c: the output head stays float. From each graph output back through data movement
  // (Reshape, Flatten…), Softmax/LogSoftmax and bias Add/Mul by a constant, those nodes stay float,
  // and the weight layer that computes the logits keeps int8 inputs but a float output (no Q after it).
  // Rounding logits or probabilities to 8 bits turns a CTC frame's or a class's near-tie into a tie
  // or a flip: one uint8 step of PP-OCRv4 rec's logits is about 0.2, the gap of a 0.52/0.48 frame 0.08.
  const floatOutputs = new Set<Value>();
  for (const out of g.outputs) {
    let v: Value | null | undefined = out;
    for (let p = v.producer; p && p.domain === ''; p = v.producer) {
      const rule = rules.get(p);
      const constSlot = p.opType === 'Add' || p.opType === 'Mul' ? p.inputs.findIndex((x) => !!getConstant(x)) : -1;
      let next: Value | null | undefined;
      if (HEAD_FLOAT_OPS.has(p.opType) || rule?.output === 'shareInput') next = p.inputs[0];
      else if (constSlot >= 0 && p.inputs.length === 2) next = p.inputs[1 - constSlot];
      else {
        if (getConstant(quantizedLayer(p, rule)?.weight)) floatOutputs.add(v);
        break;
      }
      if (rule) {
        rules.delete(p);
        skipped.push({ node: p, reason: 'output head: logits and probabilities stay float' });
      }
      if (!next) break;
      v = next;
    }
  }

  return { rules, excludedNodes, skipped, warnings, floatOutputs, perChannel, absorbedActivation, isFloat };
}

/** The layers whose constant float weight quantizeQdq turns into int8, in graph order, with their weight axis. */
export function quantizedWeightLayers(model: Model, opts: QdqOptions, exclude: ReadonlySet<string>): { node: Node; weight: TensorProto; axis: number | null }[] {
  const plan = planQdq(model, opts, exclude);
  return model.graph.nodes.flatMap((node) => {
    const layer = quantizedLayer(node, plan.rules.get(node));
    const weight = getConstant(layer?.weight);
    if (!layer || !weight || weight.dataType !== DT.FLOAT) return [];
    return [{ node, weight, axis: plan.perChannel ? weightScaleAxis(layer) : null }];
  });
}

/** Rewrites `model` in place; `ranges` are the calibrated ranges of its float activations. */
export function quantizeQdq(model: Model, ranges: ReadonlyMap<Value, [number, number]>, opts: QdqOptions, exclude: ReadonlySet<string>): QdqResult {
  const g = model.graph;
  const { rules, excludedNodes, skipped, warnings, floatOutputs, perChannel, absorbedActivation } = planQdq(model, opts, exclude);

  // ---- analysis 2: fused activations (Conv→Relu: the Q goes after the Relu)
  const fusedInto = new Map<Node, Node>(); // activation → op
  for (const n of rules.keys()) {
    const act = absorbedActivation(n);
    if (act) fusedInto.set(act, n);
  }
  const fusedAct = new Map<Node, Node>([...fusedInto].map(([a, n]) => [n, a]));

  // ---- analysis 3: which values get a Q→DQ pair, grouped by shared scale (union-find)
  const parent = new Map<Value, Value>();
  const find = (v: Value): Value => {
    let r = v;
    while (parent.get(r) !== r) r = parent.get(r)!;
    parent.set(v, r);
    return r;
  };
  const quantValues = new Set<Value>();
  const mark = (v: Value) => {
    if (!parent.has(v)) parent.set(v, v);
    quantValues.add(v);
  };
  const union = (a: Value, b: Value) => parent.set(find(a), find(b));
  const constActs = new Set<Value>(); // constant activation-like inputs (Add/Mul operands)
  for (const [n, rule] of rules) {
    const weightInput = quantizedLayer(n, rule)?.weightInput;
    const actSlots = rule.inputs(n).filter((i) => !(weightInput === i && getConstant(n.inputs[i])));
    // data movement runs on int8 only where its producer already quantized the tensor: float in, float
    // out (a Q→DQ on it would only add rounding; a quantized consumer quantizes the output itself)
    if (rule.output === 'shareInput' && !quantValues.has(n.inputs[0]!)) continue;
    for (const i of actSlots) {
      const v = n.inputs[i]!;
      // a layer kept float keeps its output float too: quantizing it for the consumer would keep
      // the rounding and clipping noise the exclusion is meant to remove
      if (v.producer && excludedNodes.has(v.producer)) continue;
      if (getConstant(v)) constActs.add(v);
      mark(v);
    }
    const act = fusedAct.get(n);
    const out = act ? act.outputs[0]! : n.outputs[0]!;
    if (g.isOutput(out) || floatOutputs.has(out)) continue; // graph outputs and the output head's logits stay float
    mark(out);
    if (rule.output === 'shareInput') union(out, n.inputs[0]!);
    if (rule.sharedScale) for (const i of actSlots) if (quantValues.has(n.inputs[i]!)) union(n.inputs[i]!, out);
  }

  // ---- analysis 4: parameters per group from the union of its members' calibrated ranges
  const rangeOf = (v: Value): [number, number] | undefined => {
    if (getConstant(v)) {
      const d = readFloatConstant(v, v.consumers[0]!);
      let lo = Infinity;
      let hi = -Infinity;
      for (const x of d) {
        lo = Math.min(lo, x);
        hi = Math.max(hi, x);
      }
      return [lo, hi];
    }
    return ranges.get(v);
  };
  const groupRange = new Map<Value, [number, number]>();
  for (const v of quantValues) {
    const r = rangeOf(v);
    if (!r) continue;
    const root = find(v);
    const cur = groupRange.get(root);
    groupRange.set(root, cur ? [Math.min(cur[0], r[0]), Math.max(cur[1], r[1])] : r);
  }
  const params = new Map<Value, QuantParams>();
  for (const v of quantValues) {
    const r = groupRange.get(find(v));
    if (!r) {
      warnings.push(`no calibration range for '${v.name}': left float`);
      continue;
    }
    params.set(v, activationParams(r[0], r[1], opts.activationType, opts.activationSymmetric));
  }

  // ---- rewrite 1: Q→DQ on activations (one pair per value, shared by all its consumers)
  const qType = opts.activationType === 'uint8' ? DT.UINT8 : DT.INT8;
  const QArr = opts.activationType === 'uint8' ? Uint8Array : Int8Array;
  const paramConsts = new Map<string, [Value, Value]>();
  const scaleZp = (p: QuantParams, base: string): [Value, Value] => {
    const key = `${p.scale}:${p.zeroPoint}`;
    let hit = paramConsts.get(key);
    if (!hit) {
      hit = [
        addConstant(g, `${base}_scale`, makeTensor('', DT.FLOAT, [], Float32Array.of(p.scale))),
        addConstant(g, `${base}_zero_point`, makeTensor('', qType, [], QArr.of(p.zeroPoint))),
      ];
      paramConsts.set(key, hit);
    }
    return hit;
  };
  const dqOf = new Map<Value, Value>();
  let qdqPairs = 0;
  for (const v of quantValues) {
    const p = params.get(v);
    if (!p) continue;
    const [s, z] = scaleZp(p, v.name);
    let qv: Value;
    if (constActs.has(v)) {
      // constant operand: stored quantized, only a DequantizeLinear at run time
      const d = readFloatConstant(v, v.consumers[0]!);
      const [qmin, qmax] = opts.activationType === 'uint8' ? [0, 255] : [-128, 127];
      const q = new QArr(d.length);
      for (let i = 0; i < d.length; i++) q[i] = Math.max(qmin, Math.min(qmax, Math.round(d[i]! / p.scale) + p.zeroPoint));
      qv = addConstant(g, `${v.name}_quantized`, makeTensor('', qType, tensorDims(getConstant(v)!), q));
    } else {
      qv = g.createValue(`${v.name}_quantized`);
      g.addNode('QuantizeLinear', [v, s, z], [qv], { name: `${v.name}_QuantizeLinear` });
      qv.setTensorType(qType, v.shape);
      qdqPairs++;
    }
    const dq = g.createValue(`${v.name}_dequantized`);
    g.addNode('DequantizeLinear', [qv, s, z], [dq], { name: `${v.name}_DequantizeLinear` });
    if (v.type) dq.setTensorType(DT.FLOAT, v.shape);
    dqOf.set(v, dq);
  }
  for (const [v, dq] of dqOf) {
    for (const c of [...v.consumers]) {
      if (c.opType === 'QuantizeLinear' && c.inputs[0] === v) continue;
      c.inputs.forEach((x, i) => {
        if (x === v) c.setInput(i, dq);
      });
    }
  }

  const floatOf = new Map<Value, Value>([...dqOf].map(([v, dq]) => [dq, v]));
  // ---- rewrite 2: int8 weights and int32 biases behind DequantizeLinear
  const qmax = opts.reduceRange ? 63 : 127;
  const weightCache = new Map<string, { dq: Value; scales: Float32Array }>();
  for (const [n, rule] of rules) {
    const layer = quantizedLayer(n, rule);
    const wv = layer?.weight;
    const wt = getConstant(wv);
    if (!layer || !wv || !wt || wt.dataType !== DT.FLOAT) continue;
    const dims = tensorDims(wt);
    const axis = perChannel ? weightScaleAxis(layer) : null;
    const names = rule.omitWeightZeroPoint ? DEQUANTIZED_NAMES_NO_ZERO_POINT : DEQUANTIZED_NAMES;
    const key = `${wv.name}:${axis}:${names.zeroPoint}`;
    let hit = weightCache.get(key);
    if (!hit) {
      const pre = opts.weightLevels?.get(wv);
      const { q, scales } = pre && pre.axis === axis && pre.q.length === elementCount(dims) ? pre : quantizeWeightsSymmetric(readFloat32(wt), dims, axis, qmax);
      hit = { dq: addDequantizedConstant(g, wv.name, q, dims, scales, axis, names), scales };
      weightCache.set(key, hit);
    }
    n.setInput(layer.weightInput, hit.dq);
    // bias: int32 in the scale input × weight
    const bv = layer.bias;
    const bt = getConstant(bv);
    const inP = n.inputs[0] ? params.get(floatOf.get(n.inputs[0]) ?? n.inputs[0]) : undefined;
    if (bv && bt && bt.dataType === DT.FLOAT && tensorDims(bt).length === 1 && inP) {
      const b = readFloat32(bt);
      if (hit.scales.length === 1 || hit.scales.length === b.length) {
        const { q, scales } = quantizeBias(b, inP.scale, hit.scales);
        const perC = hit.scales.length > 1;
        n.setInput(layer.biasInput!, addDequantizedConstant(g, bv.name, q, [b.length], perC ? scales : Float32Array.of(scales[0]!), perC ? 0 : null, names));
      }
    }
  }

  // ---- rewrite 3: excluded layers keep float activations; their weights can still be stored int8
  // (full 8-bit range: the layer computes in float, so the u8×s8 int16 limit does not apply)
  let weightOnly = 0;
  if (opts.excludedWeights === 'int8') {
    for (const n of excludedNodes) {
      const layer = quantizedLayer(n, QDQ_OP_RULES[n.opType]);
      const wv = layer?.weight;
      const wt = getConstant(wv);
      if (!layer || !wv || !wt || wt.dataType !== DT.FLOAT || wv.consumers.length !== 1) continue;
      const dims = tensorDims(wt);
      const axis = perChannel ? weightScaleAxis(layer) : null;
      const { q, scales } = quantizeWeightsSymmetric(readFloat32(wt), dims, axis, 127);
      // computed in float: no kernel needs the zero point
      n.setInput(layer.weightInput, addDequantizedConstant(g, wv.name, q, dims, scales, axis, DEQUANTIZED_NAMES_NO_ZERO_POINT));
      weightOnly++;
    }
  }

  // ---- report: what each quantized node's consumers now read
  const quantized: QuantizedNodeInfo[] = [];
  for (const [n] of rules) {
    const act = fusedAct.get(n);
    const out = act ? act.outputs[0]! : n.outputs[0]!;
    quantized.push({
      key: nodeKey(n),
      node: n,
      opType: n.opType,
      ...(act ? { fused: act.opType } : {}),
      floatOutput: out,
      quantOutput: dqOf.get(out) ?? out,
    });
  }
  g.toposort(false);
  g.cleanup(false);
  return { quantized, skipped, warnings, qdqPairs, weightOnly };
}
