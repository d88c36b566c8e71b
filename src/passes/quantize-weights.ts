// quantize.weights: weight-only quantization for size. int8: symmetric per-channel weights behind a
// DequantizeLinear (compute stays float). int4: MatMul with a constant 2-D B → com.microsoft
// MatMulNBits, block-wise 4-bit (block 32/64/128), symmetric or with zero points.
import { narrowUntouchedIslands, noteIslands, widenHalfLayers } from '../quant/float-islands.js';
import { Type, type Static } from '@sinclair/typebox';
import { DataType as DT } from '../onnx/dtypes.js';
import type { Model, Node } from '../onnx/ir.js';
import { addConstant, addDequantizedConstant, DEQUANTIZED_NAMES_NO_ZERO_POINT, getConstant } from '../onnx/constants.js';
import { makeTensor, readFloat32, tensorDims } from '../onnx/tensor-data.js';
import { requireOpsetImport, upgradeOpset } from '../onnx/opset-upgrade.js';
import { weightLayerOf } from '../onnx/weight-layers.js';
import { definePass, skipAlreadyQuantized, statsSchema, type PassContext } from '../pipeline/pass.js';
import { dequantizeWeights, quantizeWeightsSymmetric, type WeightQuantization } from '../quant/quant-math.js';
import { packMatMulNBits, unpackMatMulNBits, type NBitsPacked } from '../quant/int4.js';
import { weightScaleAxis } from '../quant/qdq-rules.js';
import { applyBiasShift, measureOutputShift, type BiasCorrectionTarget } from '../quant/bias-correction.js';

/** The weight layers this pass quantizes (their weights: src/onnx/weight-layers.ts). */
export const WEIGHT_ONLY_OPS = ['Conv', 'ConvTranspose', 'Gemm', 'MatMul'];

export const quantizeWeightsSchema = Type.Object(
  {
    pass: Type.Literal('quantize.weights'),
    bits: Type.Union([Type.Literal(8), Type.Literal(4)], { default: 8 }),
    blockSize: Type.Union([Type.Literal(32), Type.Literal(64), Type.Literal(128)], { default: 32, description: 'int4: values per scale along K.' }),
    symmetric: Type.Boolean({ default: true, description: 'int4: no zero points (onnxruntime uses 8).' }),
    perChannel: Type.Boolean({ default: true, description: 'int8: one scale per output channel.' }),
    opTypes: Type.Array(Type.String({ minLength: 1 }), { default: WEIGHT_ONLY_OPS }),
    excludeNodes: Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'Node names left float.' }),
    minElements: Type.Integer({ default: 1024, minimum: 0, description: 'Weights smaller than this stay float (not worth a node).' }),
    biasCorrection: Type.Boolean({
      default: false,
      description:
        'Measure on the calibration data, per output channel, the mean shift weight quantization causes in each layer output (with float inputs) and add it to the bias (a bias or Add is created when absent).',
    }),
  },
  { additionalProperties: false },
);

export const quantizeWeightsStats = statsSchema({
  opsetUpgradedFrom: Type.Integer({ description: 'int8 per channel: the default-domain opset the model had before it was upgraded to 13.' }),
  weightBytesBefore: Type.Integer({ description: 'Float32 bytes of the weights that were quantized (4 per element).' }),
  weightBytesAfter: Type.Integer({ description: 'Bytes those weights take quantized: levels plus scales (and int4 zero points).' }),
  weightBytesRatio: Type.Number({ description: 'weightBytesAfter / weightBytesBefore, 4 decimals (1 when nothing was quantized).' }),
  biasCorrected: Type.Integer({ description: 'biasCorrection: layers whose bias took the measured output shift (count).' }),
  biasCorrectionMaxShift: Type.Number({ description: 'biasCorrection: the largest |per-channel mean output shift| corrected, in the layer output\'s units (4 significant digits).' }),
  biasCorrectionNodes: Type.String({ description: 'biasCorrection: each corrected layer, how its bias was applied and its largest |shift| ("; "-separated).' }),
});

export const quantizeWeightsPass = definePass({
  calibration: (config) => (config.biasCorrection ? 'used' : undefined),
  name: 'quantize.weights',
  summary: 'weight-only: int8 per-channel behind DequantizeLinear, or int4 block-wise MatMul → MatMulNBits',
  schema: quantizeWeightsSchema,
  stats: quantizeWeightsStats,
  async run(input, config, ctx) {
    const log = ctx.changes;
    // the opset upgrade rewrites before the plan is made: plan and rewrite the copy
    const widened = widenHalfLayers(input);
    const { model } = widened.islands > 0 ? widened : input.clone();
    const g = model.graph;
    if (config.bits === 8 && config.perChannel && (model.opset('') ?? 0) < 13) {
      const from = model.opset('');
      const up = upgradeOpset(model, 13);
      if (up.upgraded) log.stat('opsetUpgradedFrom', from ?? 0);
      else log.warn(`opset not upgraded (${up.reason}): weights quantized per tensor`);
    }
    if (config.bits === 8 && (model.opset('') ?? 0) < 10) throw new Error('quantize.weights int8 needs opset ≥ 10');
    const perChannel = config.perChannel && (model.opset('') ?? 0) >= 13;
    const ops = new Set(config.opTypes.filter((op) => WEIGHT_ONLY_OPS.includes(op)));
    const exclude = new Set(config.excludeNodes);
    let floatBytes = 0;
    let quantBytes = 0;
    // plan: which nodes, and their quantized weights
    type Item = { n: Node; slot: number; dims: number[]; count: number; int4?: NBitsPacked; int8?: WeightQuantization; axis: number | null };
    const plan: Item[] = [];
    const quantized = skipAlreadyQuantized(model, log);
    for (const n of [...g.nodes]) {
      if (quantized.has(n)) continue;
      const layer = n.domain === '' && ops.has(n.opType) ? weightLayerOf(n) : null;
      if (!layer) continue;
      if (exclude.has(n.name)) {
        log.skip(n, 'in excludeNodes');
        continue;
      }
      const wv = layer.weight;
      const wt = getConstant(wv);
      if (!wv || !wt || wt.dataType !== DT.FLOAT) continue;
      const dims = tensorDims(wt);
      const count = dims.reduce((a, b) => a * b, 1);
      if (count < config.minElements) continue;
      const w = readFloat32(wt);
      if (config.bits === 4) {
        if (n.opType !== 'MatMul' || dims.length !== 2) {
          log.skip(n, 'int4 applies to MatMul with a constant 2-D weight');
          continue;
        }
        const [K, N] = dims as [number, number];
        plan.push({ n, slot: layer.weightInput, dims, count, int4: packMatMulNBits(w, K, N, config.blockSize, config.symmetric), axis: null });
        continue;
      }
      const axis = perChannel ? weightScaleAxis(layer) : null;
      plan.push({ n, slot: layer.weightInput, dims, count, int8: quantizeWeightsSymmetric(w, dims, axis, 127), axis });
    }
    if (config.biasCorrection && plan.length > 0) await correctBiases(model, plan.map((it) => ({
      node: it.n,
      dequantized: it.int4 ? unpackMatMulNBits(it.int4, it.dims[0]!, it.dims[1]!, config.blockSize) : dequantizeWeights(it.int8!, it.dims, it.axis),
    })), ctx);
    for (const { n, slot, dims, count, int4: p, int8, axis } of plan) {
      const wv = n.inputs[slot]!;
      if (p) {
        const [K, N] = dims as [number, number];
        const base = n.name || wv.name;
        const inputs = [
          n.inputs[0]!,
          addConstant(g, `${wv.name}_q4`, makeTensor('', DT.UINT8, [N, p.blocks, config.blockSize / 2], p.packed)),
          addConstant(g, `${wv.name}_q4_scales`, makeTensor('', DT.FLOAT, [N * p.blocks], p.scales)),
          ...(p.zeroPoints ? [addConstant(g, `${wv.name}_q4_zero_points`, makeTensor('', DT.UINT8, [p.zeroPoints.length], p.zeroPoints))] : []),
        ];
        const y = n.outputs[0]!;
        const at = g.nodes.indexOf(n);
        g.removeNode(n);
        const q = g.addNode('MatMulNBits', inputs, [y], { name: `${base}_MatMulNBits`, domain: 'com.microsoft', at });
        q.setAttr('K', K, 'int');
        q.setAttr('N', N, 'int');
        q.setAttr('bits', 4, 'int');
        q.setAttr('block_size', config.blockSize, 'int');
        log.rewrite(q, `MatMul → MatMulNBits (4-bit, block ${config.blockSize}${config.symmetric ? ', symmetric' : ''})`);
        floatBytes += count * 4;
        quantBytes += p.packed.length + p.scales.length * 4 + (p.zeroPoints?.length ?? 0);
        continue;
      }
      const { q, scales } = int8!;
      n.setInput(slot, addDequantizedConstant(g, wv.name, q, dims, scales, axis, { ...DEQUANTIZED_NAMES_NO_ZERO_POINT, levels: '_int8' }));
      log.rewrite(n, `int8 weight${axis === null ? ' (per tensor)' : ` (per channel, axis ${axis})`}`);
      floatBytes += count * 4;
      quantBytes += count + scales.length * 5;
    }
    if (config.bits === 4) requireOpsetImport(model, 'com.microsoft', 1);
    g.toposort(false);
    noteIslands(log, widened.islands, narrowUntouchedIslands(model));
    g.cleanup(false);
    log.stat('weightBytesBefore', floatBytes);
    log.stat('weightBytesAfter', quantBytes);
    log.stat('weightBytesRatio', floatBytes ? Number((quantBytes / floatBytes).toFixed(4)) : 1);
    ctx.progress(1);
    return model;
  },
});

/** Bias correction on the float model, before its weights are replaced (see quant/bias-correction.ts). */
async function correctBiases(model: Model, targets: BiasCorrectionTarget[], ctx: PassContext<Static<typeof quantizeWeightsStats>>): Promise<void> {
  const log = ctx.changes;
  if (ctx.samplesAreSynthetic) log.warn('bias correction measured on synthetic inputs: give calibration data for a meaningful correction');
  const shifts = await measureOutputShift(model, targets, await ctx.sampleInputs(), ctx.signal);
  let applied = 0;
  let maxShift = 0;
  const details: string[] = [];
  for (const t of targets) {
    const shift = shifts.get(t.node);
    if (!shift) {
      log.skip(t.node, 'bias correction: output not captured');
      continue;
    }
    try {
      const how = applyBiasShift(t.node, shift);
      applied++;
      const m = shift.reduce((a, b) => Math.max(a, Math.abs(b)), 0);
      maxShift = Math.max(maxShift, m);
      details.push(`${t.node.name || t.node.opType} (${how}, max |shift| ${m.toPrecision(3)})`);
    } catch (err) {
      log.skip(t.node, (err as Error).message);
    }
  }
  log.stat('biasCorrected', applied);
  log.stat('biasCorrectionMaxShift', Number(maxShift.toPrecision(4)));
  if (details.length) log.stat('biasCorrectionNodes', details.join('; '));
}
