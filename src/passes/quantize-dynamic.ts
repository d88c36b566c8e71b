// quantize.dynamic: int8 weights, activations quantized at run time from their own range.
// MatMul/Gemm with a constant weight → com.microsoft DynamicQuantizeMatMul (one node: onnxruntime
// quantizes A per call, runs an integer GEMM, rescales by A's scale × B's per-column scales, adds
// the bias). Conv (1D/2D/3D) → DynamicQuantizeLinear → ConvInteger → Cast → × scales (+ bias).
import { narrowUntouchedIslands, noteIslands, widenHalfLayers } from '../quant/float-islands.js';
import { Type } from '@sinclair/typebox';
import { DataType as DT } from '../onnx/dtypes.js';
import type { Graph, Model, Node, Value } from '../onnx/ir.js';
import { addConstant, addDequantizedConstant, getConstant } from '../onnx/constants.js';
import { inferElemTypes } from '../onnx/elem-types.js';
import { requireOpsetImport } from '../onnx/opset-upgrade.js';
import { makeTensor, readFloat32, tensorDims } from '../onnx/tensor-data.js';
import { weightLayerOf } from '../onnx/weight-layers.js';
import { definePass, skipAlreadyQuantized, statsSchema, type ChangeLog } from '../pipeline/pass.js';
import { quantizeWeightsSymmetric } from '../quant/quant-math.js';

interface DynamicRule {
  /** Why this node can't be quantized dynamically, if it can't. */
  blocker(n: Node): string | undefined;
  rewrite(n: Node, opts: RewriteOptions): void;
}

interface RewriteOptions {
  model: Model;
  qmax: number;
  perChannel: boolean;
  log: ChangeLog;
}

const c = (g: Graph, base: string, dt: DT, dims: number[], data: Float32Array | Int8Array | Uint8Array | BigInt64Array) => addConstant(g, base, makeTensor('', dt, dims, data));

/** The 2-D weight as [K, N] float32 (transposed when stored [N, K]). */
function weightKN(n: Node): { w: Float32Array; K: number; N: number } {
  const layer = weightLayerOf(n)!;
  const t = getConstant(layer.weight)!;
  const [d0, d1] = tensorDims(t) as [number, number];
  const src = readFloat32(t);
  if (layer.outAxis === 0) {
    const w = new Float32Array(d0 * d1);
    for (let i = 0; i < d0; i++) for (let j = 0; j < d1; j++) w[j * d0 + i] = src[i * d1 + j]!;
    return { w, K: d1, N: d0 };
  }
  return { w: src, K: d0, N: d1 };
}

/** A constant 1-D [N] bias: the bias input (Gemm's C) when the op has one, else the constant operand of an Add that is the MatMul's only consumer. */
function biasOf(n: Node, N: number): { value: Value; add?: Node } | undefined {
  const is1dN = (v: Value | null | undefined) => {
    const t = getConstant(v);
    return !!t && t.dataType === DT.FLOAT && tensorDims(t).length === 1 && tensorDims(t)[0] === N;
  };
  const layer = weightLayerOf(n)!;
  if (layer.biasInput !== null) return layer.bias && is1dN(layer.bias) ? { value: layer.bias } : undefined;
  const y = n.outputs[0]!;
  if (y.consumers.length !== 1 || n.graph.isOutput(y)) return undefined;
  const add = y.consumers[0]!;
  if (add.opType !== 'Add' || add.domain !== '') return undefined;
  const other = add.inputs[0] === y ? add.inputs[1] : add.inputs[0];
  return is1dN(other) ? { value: other!, add } : undefined;
}

const matmulRule: DynamicRule = {
  blocker(n) {
    const layer = weightLayerOf(n)!;
    const t = getConstant(layer.weight);
    if (!t) return 'weight is computed at run time (both operands dynamic)';
    if (t.dataType !== DT.FLOAT) return 'weight is not float32';
    if (tensorDims(t).length !== 2) return 'weight is not 2-D';
    if (layer.inputTransposed) return 'transA=1';
    // Gemm's alpha and beta (absent, so 1, on MatMul)
    if (Number(n.getAttr('alpha', 1)) !== 1 || Number(n.getAttr('beta', 1)) !== 1) return 'alpha/beta ≠ 1';
    if (layer.bias) {
      const ct = getConstant(layer.bias);
      if (!ct || tensorDims(ct).length !== 1) return 'bias is not a constant 1-D tensor';
    }
    return undefined;
  },
  rewrite(n, o) {
    const g = n.graph;
    const { w, K, N } = weightKN(n);
    const { q, scales } = quantizeWeightsSymmetric(w, [K, N], o.perChannel ? 1 : null, o.qmax);
    const base = n.name || n.outputs[0]!.name;
    const bias = biasOf(n, N);
    const inputs: (Value | null)[] = [
      n.inputs[0]!,
      c(g, `${base}_B_int8`, DT.INT8, [K, N], q),
      c(g, `${base}_B_scale`, DT.FLOAT, o.perChannel ? [N] : [], scales),
      null, // symmetric weights: the optional zero point defaults to 0 (saves N bytes per node)
      bias ? bias.value : null,
    ];
    const y = bias?.add ? bias.add.outputs[0]! : n.outputs[0]!;
    const at = g.nodes.indexOf(n);
    if (bias?.add) g.removeNode(bias.add);
    g.removeNode(n);
    const q8 = g.addNode('DynamicQuantizeMatMul', inputs, [y], { name: `${base}_DynamicQuantizeMatMul`, domain: 'com.microsoft', at });
    requireOpsetImport(o.model, 'com.microsoft', 1);
    o.log.rewrite(q8, `${n.opType}${bias?.add ? '+Add' : ''} → DynamicQuantizeMatMul (int8 ${o.perChannel ? 'per column' : 'per tensor'})`);
  },
};

const convRule: DynamicRule = {
  blocker(n) {
    const layer = weightLayerOf(n)!;
    const t = getConstant(layer.weight);
    if (!t || t.dataType !== DT.FLOAT) return 'weight is not a float32 constant';
    if (layer.bias && !getConstant(layer.bias)) return 'bias is computed at run time';
    return undefined;
  },
  rewrite(n, o) {
    const g = n.graph;
    const layer = weightLayerOf(n)!;
    const wt = getConstant(layer.weight)!;
    const dims = tensorDims(wt);
    const cout = dims[layer.outAxis!]!;
    const rank = dims.length;
    // ConvInteger takes one weight zero point; per-channel scales are applied after it, in float
    const { q, scales } = quantizeWeightsSymmetric(readFloat32(wt), dims, o.perChannel ? layer.outAxis : null, o.qmax);
    const base = n.name || n.outputs[0]!.name;
    const x = n.inputs[0]!;
    const xq = g.createValue(`${base}_x_uint8`);
    const xs = g.createValue(`${base}_x_scale`);
    const xz = g.createValue(`${base}_x_zero_point`);
    const at = g.nodes.indexOf(n);
    g.addNode('DynamicQuantizeLinear', [x], [xq, xs, xz], { name: `${base}_DynamicQuantizeLinear`, at });
    const acc = g.createValue(`${base}_int32`);
    const ci = g.addNode('ConvInteger', [xq, c(g, `${base}_W_int8`, DT.INT8, dims, q), xz, c(g, `${base}_W_zero_point`, DT.INT8, [], new Int8Array(1))], [acc], { name: `${base}_ConvInteger` });
    for (const a of n.attributes) ci.attributes.push({ proto: a.proto });
    const accF = g.createValue(`${base}_int32_float`);
    g.addNode('Cast', [acc], [accF], { name: `${base}_Cast` }).setAttr('to', DT.FLOAT, 'int');
    const bshape = [cout, ...Array(rank - 2).fill(1)];
    const wsv = c(g, `${base}_W_scale`, DT.FLOAT, scales.length > 1 ? bshape : [], scales);
    const sv = g.createValue(`${base}_scale`);
    g.addNode('Mul', [xs, wsv], [sv], { name: `${base}_scale_Mul` });
    const y = n.outputs[0]!;
    const bias = getConstant(layer.bias);
    g.removeNode(n);
    if (bias) {
      const scaled = g.createValue(`${base}_scaled`);
      g.addNode('Mul', [accF, sv], [scaled], { name: `${base}_Mul` });
      g.addNode('Add', [scaled, c(g, `${base}_bias`, DT.FLOAT, bshape, readFloat32(bias))], [y], { name: `${base}_bias_Add` });
    } else g.addNode('Mul', [accF, sv], [y], { name: `${base}_Mul` });
    o.log.rewrite(ci, `Conv → DynamicQuantizeLinear + ConvInteger (int8 weights${o.perChannel ? ', per-channel scales' : ''})`);
  },
};

/**
 * The model's own float initializers (`candidates`, taken before the rewrite, so the scales this
 * pass adds stay float) with at least `minElements` values that are still read by some node and are
 * not graph outputs: int8 per tensor behind a DequantizeLinear. Returns how many.
 */
function storeOtherWeightsInt8(g: Graph, candidates: readonly Value[], minElements: number, log: ChangeLog): number {
  let count = 0;
  for (const v of candidates) {
    const t = v.initializer;
    if (!t || t.dataType !== DT.FLOAT || g.isOutput(v) || v.consumers.length === 0) continue;
    const dims = tensorDims(t);
    if (dims.reduce((a, b) => a * b, 1) < minElements) continue;
    const { q, scales } = quantizeWeightsSymmetric(readFloat32(t), dims, null, 127);
    const out = addDequantizedConstant(g, v.name, q, dims, scales, null, { levels: '_i8', scale: '_s', zeroPoint: null, output: '_dq', node: '_DQ' });
    const dq = out.producer!;
    for (const consumer of [...v.consumers]) {
      consumer.inputs.forEach((x, i) => {
        if (x === v) consumer.setInput(i, out);
      });
    }
    log.add(dq, `float constant ${v.name} [${dims.join(',')}] stored as int8 (per tensor)`);
    count++;
  }
  return count;
}

/** The one table of what dynamic quantization does per op. */
export const DYNAMIC_OP_RULES: Record<string, DynamicRule> = { MatMul: matmulRule, Gemm: matmulRule, Conv: convRule };

export const quantizeDynamicSchema = Type.Object(
  {
    pass: Type.Literal('quantize.dynamic'),
    opTypes: Type.Array(Type.Union([Type.Literal('MatMul'), Type.Literal('Gemm'), Type.Literal('Conv')]), {
      default: ['MatMul', 'Gemm'],
      description: 'Conv is opt-in: ConvInteger plus run-time quantization of every input is rarely faster than float Conv on CPU.',
    }),
    excludeNodes: Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'Node names left float.' }),
    perChannel: Type.Boolean({ default: true }),
    reduceRange: Type.Boolean({ default: true, description: '7-bit weights (u8×s8 saturation on AVX2 without VNNI).' }),
    minElements: Type.Integer({ default: 1024, minimum: 0, description: 'Smaller weights stay float.' }),
    otherWeights: Type.Union([Type.Literal('float'), Type.Literal('int8')], {
      default: 'float',
      description:
        'int8: the float constants left after the MatMul/Gemm rewrite (positional embeddings, LayerNorm scales, biases) are stored as int8 behind a DequantizeLinear (symmetric, per tensor); compute stays float. For size on small models.',
    }),
    otherMinElements: Type.Integer({ default: 64, minimum: 16, description: 'otherWeights int8: smaller constants stay float.' }),
  },
  { additionalProperties: false },
);

export const quantizeDynamicStats = statsSchema({
  quantizedNodes: Type.Integer({ description: 'MatMul/Gemm/Conv nodes rewritten to run-time-quantized int8 (count).' }),
  otherWeightsInt8: Type.Integer({ description: 'otherWeights int8: further float constants stored as int8 behind a DequantizeLinear (count of tensors).' }),
});

export const quantizeDynamicPass = definePass({
  name: 'quantize.dynamic',
  summary: 'int8 weights, activations quantized at run time: MatMul/Gemm → DynamicQuantizeMatMul, Conv → ConvInteger (opt-in)',
  schema: quantizeDynamicSchema,
  stats: quantizeDynamicStats,
  run(original, config, ctx) {
    const log = ctx.changes;
    const { model: input, islands } = widenHalfLayers(original);
    const types = inferElemTypes(input);
    const exclude = new Set(config.excludeNodes);
    const ops = new Set<string>(config.opTypes);
    // analyse the input
    const todo: [Node, DynamicRule][] = [];
    const quantized = skipAlreadyQuantized(input, log);
    for (const n of input.graph.nodes) {
      if (quantized.has(n)) continue;
      const rule = DYNAMIC_OP_RULES[n.opType];
      if (!rule || n.domain !== '' || !ops.has(n.opType)) continue;
      if (types.get(n.inputs[0]!) !== DT.FLOAT) continue;
      if (exclude.has(n.name)) {
        log.skip(n, 'in excludeNodes');
        continue;
      }
      const t = getConstant(weightLayerOf(n)!.weight);
      if (t && tensorDims(t).reduce((a, b) => a * b, 1) < config.minElements) {
        log.skip(n, `weight smaller than minElements (${config.minElements})`);
        continue;
      }
      const why = rule.blocker(n);
      if (why) log.skip(n, why);
      else todo.push([n, rule]);
    }
    for (const n of input.graph.nodes) if (n.opType === 'Conv' && !ops.has('Conv')) log.skip(n, 'Conv not in opTypes (dynamic ConvInteger is opt-in: usually slower than float Conv)');
    // then rewrite a copy, reaching the chosen nodes through the clone's map
    const { model, nodes } = input.clone();
    const g = model.graph;
    const ownInitializers = [...g.initializers];
    const opts: RewriteOptions = { model, qmax: config.reduceRange ? 63 : 127, perChannel: config.perChannel, log };
    for (const [n, rule] of todo) rule.rewrite(nodes.get(n)!, opts);
    if (todo.some(([n]) => n.opType === 'Conv') && (model.opset('') ?? 0) < 11) throw new Error('ConvInteger/DynamicQuantizeLinear need opset ≥ 11');
    if (config.otherWeights === 'int8') {
      if ((model.opset('') ?? 0) < 10) throw new Error('otherWeights int8 needs opset ≥ 10 (DequantizeLinear)');
      const n = storeOtherWeightsInt8(g, ownInitializers, config.otherMinElements, log);
      log.stat('otherWeightsInt8', n);
    }
    g.toposort(false);
    noteIslands(log, islands, narrowUntouchedIslands(model));
    g.cleanup(false);
    log.stat('quantizedNodes', todo.length);
    ctx.progress(1);
    return model;
  },
});
