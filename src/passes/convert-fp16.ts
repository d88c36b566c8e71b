// convert.fp16: float32 weights and compute to float16, model inputs/outputs kept float32.
// Analyse first (which node computes in which precision, which value ends up in which type),
// then rewrite (convert tensors, retype values, insert the Casts the plan needs).
import { weightLayerTypes } from '../onnx/float-weights.js';
import { Type } from '@sinclair/typebox';
import { DataType as DT } from '../onnx/dtypes.js';
import { carryAcross, type Graph, type Node, type Value } from '../onnx/ir.js';
import { inferElemTypes } from '../onnx/elem-types.js';
import { getConstant, setConstant, addConstant } from '../onnx/constants.js';
import { makeTensor, readFloat32, readTensor, tensorDims } from '../onnx/tensor-data.js';
import { discoverValues, type DiscoveredValue } from '../runtime/capture.js';
import { FLOAT16_MAX, float32ToFloat16Bits } from '../onnx/float16.js';
import { definePass, statsSchema } from '../pipeline/pass.js';
import type { TensorProto } from 'onnx-buf';

type Precision = 16 | 32;

interface Fp16OpRule {
  /** Keep this op in float32 by default, and why. */
  keepFloat32?: string;
  /** Keep this node float32 when its attributes pick a kernel that has no float16 variant (the reason), else undefined. */
  keepFloat32When?: (node: Node) => string | undefined;
  /** Input slots that the operator spec fixes to float32 whatever T is. */
  float32Inputs?: number[];
  /** Input slots that accept any type (no Cast needed whatever their precision). */
  anyTypeInputs?: number[];
  /** Rewrites float32 type attributes to float16 when the node is converted; true if it changed any. */
  retypeAttributes?: (node: Node) => boolean;
}

/** `absent`: what the op takes when the attribute is not set. */
const retypeAttr = (name: string, absent?: DT) => (node: Node) => {
  if ((node.getAttr(name) ?? absent) !== DT.FLOAT) return false;
  node.setAttr(name, DT.FLOAT16, 'int');
  return true;
};

/** Scatter with reduction add/mul/max/min: onnxruntime's CPU kernels reduce in float32 only. */
const reducing = (node: Node) => {
  const r = node.getString('reduction', 'none');
  return r === 'none' ? undefined : `${node.opType} with reduction '${r}': no float16 kernel in onnxruntime (CPU)`;
};
const NO_KERNEL = 'no float16 kernel in onnxruntime (CPU)';
const NOT_IN_SPEC = 'float16 is not in the operator\'s type constraints';

// One table of what each op needs; ops absent from it compute in float16 with all float inputs float16.
// The ops kept float32 for want of a kernel or a type were found empirically: `node
// dist/src/bench/fp16-kernels.js` converts every single-op ONNX backend test model (libonnx-testdata
// node/*) with nothing blocked and lists the ops whose float16 model onnxruntime refuses to load
// or run on the model's own test inputs (onnxruntime-node 1.30: Celu, EyeLike, IsInf,
// MeanVarianceNormalization, NonMaxSuppression, QLinearConv, QLinearMatMul, QuantizeLinear,
// DequantizeLinear, DynamicQuantizeLinear, Range; ScatterND and ScatterElements with a reduction). Re-run
// it after an onnxruntime upgrade.
export const FP16_OP_RULES: Record<string, Fp16OpRule> = {
  Cast: { anyTypeInputs: [0], retypeAttributes: retypeAttr('to') },
  CastLike: { anyTypeInputs: [0] }, // the output type follows `like`; a float input cast to text keeps its digits
  Shape: { anyTypeInputs: [0] },
  Size: { anyTypeInputs: [0] },
  EyeLike: { keepFloat32: NO_KERNEL, anyTypeInputs: [0] },
  Celu: { keepFloat32: NOT_IN_SPEC },
  ScatterND: { keepFloat32When: reducing },
  ScatterElements: { keepFloat32When: reducing },
  IsInf: { keepFloat32: NOT_IN_SPEC },
  MeanVarianceNormalization: { keepFloat32: `${NO_KERNEL}; its function body mixes float16 and float32` },
  QLinearConv: { keepFloat32: NOT_IN_SPEC },
  QLinearMatMul: { keepFloat32: NOT_IN_SPEC },
  ConstantOfShape: {
    retypeAttributes: (node) => {
      const t = node.getAttr('value');
      // no value attribute means a float32 zero
      if (t === undefined) node.setAttr('value', makeTensor('', DT.FLOAT16, [1], Uint16Array.of(0)));
      else if (typeof t === 'object' && 'dataType' in t && t.dataType === DT.FLOAT) node.setAttr('value', toFloat16Tensor(t).tensor);
      else return false;
      return true;
    },
  },
  SequenceEmpty: { retypeAttributes: retypeAttr('dtype', DT.FLOAT) }, // the empty sequence's element type; absent means float32
  Resize: { float32Inputs: [1, 2] }, // roi and scales stay float32 (scales is tensor(float) in every opset)
  Upsample: { float32Inputs: [1] },
  RandomNormal: { keepFloat32: 'random generator (dtype attribute)' },
  RandomUniform: { keepFloat32: 'random generator (dtype attribute)' },
  RandomNormalLike: { keepFloat32: 'random generator (dtype attribute)' },
  RandomUniformLike: { keepFloat32: 'random generator (dtype attribute)' },
  Bernoulli: { keepFloat32: 'random generator' },
  Multinomial: { keepFloat32: 'random generator' },
  NonMaxSuppression: { keepFloat32: 'box coordinates need float32 precision' },
  RoiAlign: { keepFloat32: 'box coordinates need float32 precision' },
  Range: { keepFloat32: 'index arithmetic' },
  CumSum: { keepFloat32: 'long accumulations overflow float16' },
  QuantizeLinear: { keepFloat32: 'quantization scales must stay float32 before opset 19' },
  DequantizeLinear: { keepFloat32: 'quantization scales must stay float32 before opset 19' },
  DynamicQuantizeLinear: { keepFloat32: 'float32-only operator' },
};

export const DEFAULT_FP16_BLOCKED_OPS = Object.entries(FP16_OP_RULES)
  .filter(([, r]) => r.keepFloat32)
  .map(([op]) => op);

export const convertFp16Schema = Type.Object(
  {
    pass: Type.Literal('convert.fp16'),
    keepIoTypes: Type.Boolean({ default: true, description: 'Keep model inputs and outputs float32 (Casts at the boundary).' }),
    opBlockList: Type.Array(Type.String({ minLength: 1 }), {
      default: DEFAULT_FP16_BLOCKED_OPS,
      description: 'Op types that stay float32 (replaces the default list).',
    }),
    extraBlockedOps: Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'Op types added to opBlockList.' }),
    excludeNodes: Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'Node names that stay float32.' }),
    rangeCheck: Type.Boolean({
      default: true,
      description: 'Run the model on sample inputs and keep in float32 every node whose outputs exceed maxAbsActivation.',
    }),
    maxAbsActivation: Type.Number({
      default: 16384,
      exclusiveMinimum: 0,
      maximum: 65504,
      description: 'Largest |activation| allowed in float16 (headroom below the float16 max of 65504).',
    }),
  },
  { additionalProperties: false },
);

export const convertFp16Stats = statsSchema({
  convertedTensors: Type.Integer({ description: 'Float32 constant tensors converted to float16 (count).' }),
  castsInserted: Type.Integer({ description: 'Cast nodes inserted between float16 and float32 values (count).' }),
  valuesClampedToFloat16Max: Type.Integer({ description: 'Weight values beyond the float16 range, clamped to ±65504 (count of elements).' }),
  valuesFlushedToZero: Type.Integer({ description: 'Nonzero weight values too small for float16, which became 0 (count of elements).' }),
  nodesInFloat16: Type.Integer({ description: 'Nodes that compute in float16 (count).' }),
  nodesKeptFloat32: Type.Integer({ description: 'Nodes kept in float32, each with its reason in `skipped` (count).' }),
});

const maxAbsCache = new WeakMap<TensorProto, number>();
function maxAbs(t: TensorProto): number {
  let m = maxAbsCache.get(t);
  if (m === undefined) {
    m = 0;
    for (const x of readFloat32(t)) m = Math.max(m, Math.abs(x));
    maxAbsCache.set(t, m);
  }
  return m;
}

interface ConvertedTensor {
  tensor: TensorProto;
  clamped: number;
  flushed: number;
}

function toFloat16Tensor(t: TensorProto): ConvertedTensor {
  const { data } = readTensor(t);
  const src = data as Float32Array;
  const out = new Uint16Array(src.length);
  let clamped = 0;
  let flushed = 0;
  for (let i = 0; i < src.length; i++) {
    let x = src[i]!;
    if (Math.abs(x) > FLOAT16_MAX) {
      x = Math.sign(x) * FLOAT16_MAX;
      clamped++;
    }
    const h = float32ToFloat16Bits(x);
    if ((h & 0x7fff) === 0 && x !== 0) flushed++;
    out[i] = h;
  }
  const tensor = makeTensor(t.name, DT.FLOAT16, tensorDims(t), out);
  if (t.docString) tensor.docString = t.docString;
  return { tensor, clamped, flushed };
}

interface Use {
  node: Node | null; // null: a graph output
  graph: Graph; // for outputs: the graph listing it
  slot: number;
  want: Precision | 'any';
}

export const convertFp16Pass = definePass({
  calibration: (config) => (config.rangeCheck ? 'used' : undefined),
  name: 'convert.fp16',
  summary: 'float32 weights and compute → float16; float32 inputs/outputs kept with Casts at the boundary',
  schema: convertFp16Schema,
  stats: convertFp16Stats,
  async run(input, config, ctx) {
    const log = ctx.changes;
    const precisions = weightLayerTypes(input);
    if (!precisions.float32 && (precisions.float16 || precisions.bfloat16)) {
      log.warn(`nothing to convert: the model's weight layers are already ${Object.keys(precisions).join('/')} (no float32 weights); the model is returned unchanged`);
      log.stat('convertedTensors', 0);
      return input.clone().model;
    }
    const blockedOps = new Set([...config.opBlockList, ...config.extraBlockedOps]);
    const excludedNodes = new Set(config.excludeNodes);

    // ---- analysis 0: the input's value ranges on sample inputs (main graph only: subgraph values can't be exposed)
    const measured = config.rangeCheck ? await discoverValues(input, await ctx.sampleInputs()) : new Map<Value, DiscoveredValue>();
    // the plan below is made on a copy and rewrites it; the ranges reach its values through the clone's map
    const { model, values } = input.clone();
    const ranges = carryAcross(measured, values);
    const types = inferElemTypes(model);
    const isF32 = (v: Value | null): v is Value => !!v && types.get(v) === DT.FLOAT;
    ctx.progress(0.5, 'ranges measured');
    if (config.rangeCheck && ctx.samplesAreSynthetic) {
      log.warn('float16 range check ran on synthetic inputs; give representative data to make it reliable');
    }
    const overflowReason = (n: Node): string | undefined => {
      for (const v of n.inputs) {
        const t = isF32(v) ? getConstant(v) : undefined;
        if (t && maxAbs(t) > FLOAT16_MAX) return `weight '${v!.name}' exceeds the float16 range (|x| up to ${maxAbs(t).toExponential(2)})`;
      }
      for (const v of n.outputs) {
        const r = v ? ranges.get(v)?.maxAbs : undefined;
        if (r !== undefined && r > config.maxAbsActivation) {
          return `output '${v!.name}' reaches |x| = ${r.toExponential(2)} on sample inputs (limit ${config.maxAbsActivation})`;
        }
      }
      return undefined;
    };

    // ---- analysis 1: which nodes compute in float16
    const opset = model.opset('') ?? 0;
    // Cast-1 (a type name) has no onnxruntime kernel: before opset 6 no value can change precision
    const castless = opset > 0 && opset < 6 ? `opset ${opset}: onnxruntime runs Cast from opset 6 on; upgrade the model's opset to convert it` : undefined;
    if (castless) log.warn(`nothing converted: ${castless}`);
    const mode = new Map<Node, Precision>();
    const graphs = [...model.allGraphs()];
    for (const g of graphs) {
      for (const n of g.nodes) {
        const touchesFloat = [...n.inputs, ...n.outputs].some(isF32) || n.subgraphs().length > 0;
        let reason: string | undefined;
        if (castless) reason = castless;
        else if (n.domain !== '' && n.domain !== 'ai.onnx') reason = `operator domain '${n.domain}' (type constraints unknown)`;
        else if (excludedNodes.has(n.name)) reason = 'in excludeNodes';
        else if (blockedOps.has(n.opType)) reason = FP16_OP_RULES[n.opType]?.keepFloat32 ?? 'op in opBlockList';
        else reason = FP16_OP_RULES[n.opType]?.keepFloat32When?.(n) ?? (n.opType === 'Constant' ? undefined : overflowReason(n));
        if (reason) {
          mode.set(n, 32);
          if (touchesFloat) log.skip(n, reason);
        } else mode.set(n, 16);
      }
    }

    // ---- analysis 2: every use of every float32 value, with the precision it wants
    const uses = new Map<Value, Use[]>();
    const addUse = (v: Value, u: Use): void => {
      if (!uses.has(v)) uses.set(v, []);
      uses.get(v)!.push(u);
    };
    for (const g of graphs) {
      for (const n of g.nodes) {
        const rule = FP16_OP_RULES[n.opType];
        n.inputs.forEach((v, slot) => {
          if (!isF32(v)) return;
          const want: Precision | 'any' = rule?.anyTypeInputs?.includes(slot)
            ? 'any'
            : rule?.float32Inputs?.includes(slot)
              ? 32
              : mode.get(n)!;
          addUse(v, { node: n, graph: g, slot, want });
        });
      }
      const ownerMode = g.ownerNode ? mode.get(g.ownerNode)! : config.keepIoTypes ? 32 : 16;
      g.outputs.forEach((v, slot) => {
        if (isF32(v)) addUse(v, { node: null, graph: g, slot, want: ownerMode });
      });
    }

    // ---- analysis 3: which float32 values become float16
    const precision = new Map<Value, Precision>();
    const constantPlan = new Map<Value, 'convert' | 'keep' | 'split'>();
    for (const g of graphs) {
      const inputMode: Precision = g.ownerNode ? mode.get(g.ownerNode)! : config.keepIoTypes ? 32 : 16;
      for (const v of g.inputs) if (isF32(v)) precision.set(v, inputMode);
      for (const n of g.nodes) {
        for (const v of n.outputs) {
          if (!isF32(v)) continue;
          if (n.opType === 'Constant') continue; // decided by its uses below
          precision.set(v, mode.get(n)!);
        }
      }
    }
    for (const [v, us] of uses) {
      if (precision.has(v)) continue;
      if (!getConstant(v)) continue;
      const wants = new Set(us.map((u) => u.want).filter((w) => w !== 'any'));
      if (wants.size === 0 || (wants.size === 1 && wants.has(16))) {
        precision.set(v, 16);
        constantPlan.set(v, 'convert');
      } else if (wants.has(16)) {
        precision.set(v, 32);
        constantPlan.set(v, 'split');
      } else {
        precision.set(v, 32);
        constantPlan.set(v, 'keep');
      }
    }

    // ---- rewrite 1: node attributes and constant tensors
    for (const [n, m] of mode) {
      const retype = FP16_OP_RULES[n.opType]?.retypeAttributes;
      if (m === 16 && retype?.(n)) log.rewrite(n, 'float32 type attribute → float16');
    }
    const half = new Map<Value, Value>(); // float32 constant → its float16 twin (split plan)
    let convertedTensors = 0;
    let clamped = 0;
    let flushed = 0;
    const convertConstant = (t: TensorProto): TensorProto => {
      const c = toFloat16Tensor(t);
      convertedTensors++;
      clamped += c.clamped;
      flushed += c.flushed;
      return c.tensor;
    };
    for (const [v, plan] of constantPlan) {
      const t = getConstant(v)!;
      if (plan === 'convert') {
        setConstant(v, convertConstant(t));
        if (v.producer) log.rewrite(v.producer, 'float16 constant');
      } else if (plan === 'split') {
        half.set(v, addConstant(v.graph, `${v.name}_fp16`, convertConstant(t)));
      }
    }

    // ---- rewrite 2: retype values, insert Casts where a use wants the other precision
    const castCache = new Map<string, Value>();
    let casts = 0;
    const castOf = (v: Value, to: Precision): Value => {
      if (to === 16 && half.has(v)) return half.get(v)!;
      const key = `${to}:${v.name}`;
      const hit = castCache.get(key);
      if (hit) return hit;
      const g = v.graph;
      const out = g.createValue(`${v.name}_${to === 16 ? 'fp16' : 'fp32'}`);
      const cast = g.addNode('Cast', [v], [out], { name: `${v.name}_cast_fp${to}` });
      cast.setAttr('to', to === 16 ? DT.FLOAT16 : DT.FLOAT, 'int');
      log.add(cast, `Cast to float${to}`);
      casts++;
      castCache.set(key, out);
      return out;
    };
    for (const [v, p] of precision) {
      if (p === 16) v.setElemType(DT.FLOAT16);
    }
    for (const [v, us] of uses) {
      const p = precision.get(v);
      if (p === undefined) continue;
      const other: Precision = p === 16 ? 32 : 16;
      const mainOutputs = us.filter((u) => !u.node && u.graph === model.graph && u.want === other);
      if (mainOutputs.length > 0 && v.producer && v.graph === model.graph) {
        // A model output keeps its name (users feed on names): the producer now writes a twin in
        // precision p, and a Cast writes the original value in the precision the output wants.
        const producer = v.producer;
        const twin = v.graph.createValue(`${v.name}_fp${p}`);
        if (v.type) twin.setTensorType(p === 16 ? DT.FLOAT16 : DT.FLOAT);
        producer.setOutput(producer.outputs.indexOf(v), twin);
        v.graph.replaceAllUses(v, twin);
        for (const u of mainOutputs) u.graph.outputs[u.slot] = v;
        v.setElemType(other === 16 ? DT.FLOAT16 : DT.FLOAT);
        const cast = v.graph.addNode('Cast', [twin], [v], { name: `${v.name}_cast_fp${other}` });
        cast.setAttr('to', other === 16 ? DT.FLOAT16 : DT.FLOAT, 'int');
        log.add(cast, `Cast to float${other} (model output)`);
        casts++;
        // node uses now read the twin (precision p); those wanting the other precision read `v`
        for (const u of us) if (u.node && u.want === other) u.node.setInput(u.slot, v);
        continue;
      }
      for (const u of us) {
        if (u.want === 'any' || u.want === p) continue;
        if (u.node) u.node.setInput(u.slot, castOf(v, u.want));
        else u.graph.outputs[u.slot] = castOf(v, u.want);
      }
    }
    for (const g of graphs) g.toposort(false);
    model.graph.cleanup();

    log.stat('convertedTensors', convertedTensors);
    log.stat('castsInserted', casts);
    log.stat('valuesClampedToFloat16Max', clamped);
    log.stat('valuesFlushedToZero', flushed);
    log.stat('nodesInFloat16', [...mode.values()].filter((m) => m === 16).length);
    log.stat('nodesKeptFloat32', log.skipped.length);
    if (clamped > 0) log.warn(`${clamped} weight values exceeded the float16 range and were clamped to ±${FLOAT16_MAX}`);
    ctx.progress(1);
    return model;
  },
});

